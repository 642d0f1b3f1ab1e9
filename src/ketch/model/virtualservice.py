"""VirtualService (networking.istio.io): every field of istio.networking.v1 VirtualService."""

from __future__ import annotations

from typing import Literal

from ketch.model.base import Spec
from ketch.model.common import (
    Destination,
    Duration,
    Int32,
    Percent,
    StringMatch,
    UInt32,
)


class HeaderOperations(Spec):
    set: dict[str, str] = {}
    add: dict[str, str] = {}
    remove: tuple[str, ...] = ()


class Headers(Spec):
    request: HeaderOperations | None = None
    response: HeaderOperations | None = None


class HTTPMatchRequest(Spec):
    name: str | None = None
    uri: StringMatch | None = None
    scheme: StringMatch | None = None
    method: StringMatch | None = None
    authority: StringMatch | None = None
    headers: dict[str, StringMatch] = {}
    port: UInt32 | None = None
    source_labels: dict[str, str] = {}
    gateways: tuple[str, ...] = ()
    query_params: dict[str, StringMatch] = {}
    ignore_uri_case: bool | None = None
    without_headers: dict[str, StringMatch] = {}
    source_namespace: str | None = None
    stat_prefix: str | None = None


class HTTPRouteDestination(Spec):
    destination: Destination | None = None
    weight: Int32 | None = None
    headers: Headers | None = None


class RouteDestination(Spec):
    destination: Destination | None = None
    weight: Int32 | None = None


class HTTPRedirect(Spec):
    uri: str | None = None
    authority: str | None = None
    port: UInt32 | None = None
    derive_port: Literal["FROM_PROTOCOL_DEFAULT", "FROM_REQUEST_PORT"] | None = None
    scheme: str | None = None
    redirect_code: UInt32 | None = None


class HTTPBody(Spec):
    string: str | None = None
    bytes: str | None = None  # base64, as protobuf JSON writes bytes


class HTTPDirectResponse(Spec):
    status: UInt32 | None = None
    body: HTTPBody | None = None


class Delegate(Spec):
    name: str | None = None
    namespace: str | None = None


class RegexRewrite(Spec):
    match: str | None = None
    rewrite: str | None = None


class HTTPRewrite(Spec):
    uri: str | None = None
    authority: str | None = None
    uri_regex_rewrite: RegexRewrite | None = None


class HTTPRetry(Spec):
    attempts: Int32 | None = None
    per_try_timeout: Duration | None = None
    retry_on: str | None = None
    retry_remote_localities: bool | None = None
    retry_ignore_previous_hosts: bool | None = None
    backoff: Duration | None = None


class CorsPolicy(Spec):
    allow_origins: tuple[StringMatch, ...] = ()
    allow_origin: tuple[str, ...] = ()  # deprecated by allowOrigins
    allow_methods: tuple[str, ...] = ()
    allow_headers: tuple[str, ...] = ()
    expose_headers: tuple[str, ...] = ()
    max_age: Duration | None = None
    allow_credentials: bool | None = None
    unmatched_preflights: Literal["UNSPECIFIED", "FORWARD", "IGNORE"] | None = None


class Delay(Spec):
    fixed_delay: Duration | None = None
    exponential_delay: Duration | None = None
    percentage: Percent | None = None
    percent: Int32 | None = None  # deprecated by percentage


class Abort(Spec):
    http_status: Int32 | None = None
    grpc_status: str | None = None
    http2_error: str | None = None
    percentage: Percent | None = None


class HTTPFaultInjection(Spec):
    delay: Delay | None = None
    abort: Abort | None = None


class HTTPMirrorPolicy(Spec):
    destination: Destination | None = None
    percentage: Percent | None = None


class HTTPRoute(Spec):
    name: str | None = None
    match: tuple[HTTPMatchRequest, ...] = ()
    route: tuple[HTTPRouteDestination, ...] = ()
    redirect: HTTPRedirect | None = None
    direct_response: HTTPDirectResponse | None = None
    delegate: Delegate | None = None
    rewrite: HTTPRewrite | None = None
    timeout: Duration | None = None
    retries: HTTPRetry | None = None
    fault: HTTPFaultInjection | None = None
    mirror: Destination | None = None
    mirrors: tuple[HTTPMirrorPolicy, ...] = ()
    mirror_percent: UInt32 | None = None  # deprecated by mirrorPercentage
    mirror_percentage: Percent | None = None
    cors_policy: CorsPolicy | None = None
    headers: Headers | None = None


class TLSMatchAttributes(Spec):
    sni_hosts: tuple[str, ...] = ()
    destination_subnets: tuple[str, ...] = ()
    port: UInt32 | None = None
    source_labels: dict[str, str] = {}
    gateways: tuple[str, ...] = ()
    source_namespace: str | None = None


class L4MatchAttributes(Spec):
    destination_subnets: tuple[str, ...] = ()
    port: UInt32 | None = None
    source_labels: dict[str, str] = {}
    gateways: tuple[str, ...] = ()
    source_namespace: str | None = None


class TLSRoute(Spec):
    match: tuple[TLSMatchAttributes, ...] = ()
    route: tuple[RouteDestination, ...] = ()


class TCPRoute(Spec):
    match: tuple[L4MatchAttributes, ...] = ()
    route: tuple[RouteDestination, ...] = ()


class VirtualService(Spec):
    hosts: tuple[str, ...] = ()
    gateways: tuple[str, ...] = ()
    http: tuple[HTTPRoute, ...] = ()
    tls: tuple[TLSRoute, ...] = ()
    tcp: tuple[TCPRoute, ...] = ()
    export_to: tuple[str, ...] = ()
