"""Messages shared by several Istio kinds (istio.networking.v1 / istio.type.v1beta1)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from annotated_types import Ge, Le
from pydantic import Field

from ketch.model.base import Spec

Duration = str  # kept as written ("1.5s"); see ketch.model.duration
Struct = dict[str, Any]  # google.protobuf.Struct
# proto integer widths: protobuf's unmarshal rejects values outside them
Int32 = Annotated[int, Ge(-(2**31)), Le(2**31 - 1)]
UInt32 = Annotated[int, Ge(0), Le(2**32 - 1)]
UInt64 = Annotated[int, Ge(0), Le(2**64 - 1)]


class StringMatch(Spec):
    exact: str | None = None
    prefix: str | None = None
    regex: str | None = None


class PortSelector(Spec):
    number: UInt32 | None = None


class Percent(Spec):
    value: float | None = None


class Destination(Spec):
    host: str | None = None
    subset: str | None = None
    port: PortSelector | None = None


class WorkloadSelector(Spec):
    """istio.networking.v1 WorkloadSelector (Sidecar, DestinationRule, ServiceEntry)."""

    labels: dict[str, str] = {}


class TypeWorkloadSelector(Spec):
    """istio.type.v1beta1.WorkloadSelector (security, telemetry, extensions)."""

    match_labels: dict[str, str] = {}


class PolicyTargetReference(Spec):
    group: str | None = None
    kind: str | None = None
    name: str | None = None
    namespace: str | None = None


class Port(Spec):
    """Gateway server port, ServiceEntry port and Sidecar port share this shape."""

    number: UInt32 | None = None
    protocol: str | None = None
    name: str | None = None
    target_port: UInt32 | None = None


TLSProtocol = Literal["TLS_AUTO", "TLSV1_0", "TLSV1_1", "TLSV1_2", "TLSV1_3"]


class TLSCertificate(Spec):
    server_certificate: str | None = None
    private_key: str | None = None
    ca_certificates: str | None = None


class ServerTLSSettings(Spec):
    https_redirect: bool | None = None
    mode: Literal["PASSTHROUGH", "SIMPLE", "MUTUAL", "AUTO_PASSTHROUGH", "ISTIO_MUTUAL", "OPTIONAL_MUTUAL"] | None = None
    server_certificate: str | None = None
    private_key: str | None = None
    ca_certificates: str | None = None
    ca_crl: str | None = None
    credential_name: str | None = None
    credential_names: tuple[str, ...] = ()
    tls_certificates: tuple[TLSCertificate, ...] = ()
    subject_alt_names: tuple[str, ...] = ()
    verify_certificate_spki: tuple[str, ...] = ()
    verify_certificate_hash: tuple[str, ...] = ()
    min_protocol_version: TLSProtocol | None = None
    max_protocol_version: TLSProtocol | None = None
    cipher_suites: tuple[str, ...] = ()


class ClientTLSSettings(Spec):
    mode: Literal["DISABLE", "SIMPLE", "MUTUAL", "ISTIO_MUTUAL"] | None = None
    client_certificate: str | None = None
    private_key: str | None = None
    ca_certificates: str | None = None
    credential_name: str | None = None
    subject_alt_names: tuple[str, ...] = ()
    sni: str | None = None
    insecure_skip_verify: bool | None = None
    ca_crl: str | None = None


class TCPKeepalive(Spec):
    probes: UInt32 | None = None
    time: Duration | None = None
    interval: Duration | None = None


class TCPSettings(Spec):
    max_connections: Int32 | None = None
    connect_timeout: Duration | None = None
    tcp_keepalive: TCPKeepalive | None = None
    max_connection_duration: Duration | None = None
    idle_timeout: Duration | None = None


class HTTPSettings(Spec):
    http1_max_pending_requests: Int32 | None = None
    http2_max_requests: Int32 | None = None
    max_requests_per_connection: Int32 | None = None
    max_retries: Int32 | None = None
    idle_timeout: Duration | None = None
    h2_upgrade_policy: Literal["DEFAULT", "DO_NOT_UPGRADE", "UPGRADE"] | None = None
    use_client_protocol: bool | None = None
    max_concurrent_streams: Int32 | None = None


class ConnectionPoolSettings(Spec):
    tcp: TCPSettings | None = None
    http: HTTPSettings | None = None


class Distribute(Spec):
    from_: str | None = Field(default=None, alias="from")
    to: dict[str, UInt32] = {}


class Failover(Spec):
    from_: str | None = Field(default=None, alias="from")
    to: str | None = None


class LocalityLoadBalancerSetting(Spec):
    distribute: tuple[Distribute, ...] = ()
    failover: tuple[Failover, ...] = ()
    failover_priority: tuple[str, ...] = ()
    enabled: bool | None = None
