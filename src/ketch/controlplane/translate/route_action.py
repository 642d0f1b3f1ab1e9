"""Small converters for the parts of a VirtualService `HTTPRoute` (one per field group,
in the manner of pilot's route/retry): retries, fault, CORS, mirrors, headers, hashing."""

from __future__ import annotations

from typing import Any

from envoy.config.core.v3 import base_pb2, extension_pb2
from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.extensions.filters.common.fault.v3 import fault_pb2 as common_fault
from envoy.extensions.filters.http.cors.v3 import cors_pb2
from envoy.extensions.filters.http.fault.v3 import fault_pb2
from envoy.extensions.retry.host.previous_hosts.v3 import previous_hosts_pb2
from envoy.type.matcher.v3 import regex_pb2
from envoy.type.v3 import percent_pb2

from ketch.controlplane.translate.route_match import string_matcher
from ketch.controlplane.translate.util import attr, duration, enum_name, pack, seconds, seq

FAULT = "envoy.filters.http.fault"
CORS = "envoy.filters.http.cors"
ROUTER = "envoy.filters.http.router"
DEFAULT_RETRY_ON = "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes"
HVO = base_pb2.HeaderValueOption


def default_retry_policy() -> rc.RetryPolicy:
    """Istio's retry policy for a route without one: 2 retries, never the same host twice."""
    return rc.RetryPolicy(
        retry_on=DEFAULT_RETRY_ON,
        num_retries=_u32(2),
        retriable_status_codes=[503],
        retry_host_predicate=[_previous_hosts()],
        host_selection_retry_max_attempts=5,
    )


def _u32(n: int) -> Any:
    from google.protobuf import wrappers_pb2

    return wrappers_pb2.UInt32Value(value=n)


def _previous_hosts() -> rc.RetryPolicy.RetryHostPredicate:
    return rc.RetryPolicy.RetryHostPredicate(
        name="envoy.retry_host_predicates.previous_hosts",
        typed_config=pack(previous_hosts_pb2.PreviousHostsPredicate()),
    )


def retry_policy(retries: Any, mesh_default: Any = None) -> rc.RetryPolicy | None:
    """`attempts: N` is N retries after the first try; `attempts: 0` turns retries off.
    Without one, MeshConfig's `defaultHttpRetryPolicy`, else Istio's built-in default."""
    if retries is None:
        if mesh_default is None:
            return default_retry_policy()
        retries = mesh_default
    attempts = attr(retries, "attempts")
    if attempts is not None and int(attempts) == 0:
        return None
    policy = default_retry_policy()
    if attempts is not None:
        policy.num_retries.value = int(attempts)
    if attr(retries, "per_try_timeout"):
        policy.per_try_timeout.CopyFrom(duration(retries.per_try_timeout))
    retry_on = attr(retries, "retry_on")
    if retry_on:
        conditions, codes = [], []
        for part in (p.strip() for p in str(retry_on).split(",")):
            if part.isdigit():
                codes.append(int(part))
            elif part:
                conditions.append(part)
        if codes and "retriable-status-codes" not in conditions:
            conditions.append("retriable-status-codes")
        policy.retry_on = ",".join(conditions)
        del policy.retriable_status_codes[:]
        policy.retriable_status_codes.extend(codes)
    if attr(retries, "retry_ignore_previous_hosts") is False:
        del policy.retry_host_predicate[:]
        policy.host_selection_retry_max_attempts = 0
    if attr(retries, "backoff"):
        policy.retry_back_off.base_interval.CopyFrom(duration(retries.backoff))
    return policy


def fractional(percentage: Any, legacy_percent: Any = None) -> common_fault.FractionalPercent | Any:
    """Istio's `percentage.value` (0–100, fractional) as a per-million fraction."""
    value = attr(percentage, "value")
    if value is None:
        value = legacy_percent if legacy_percent is not None else 100.0
    return percent_pb2.FractionalPercent(
        numerator=int(round(float(value) * 10000)),
        denominator=percent_pb2.FractionalPercent.MILLION,
    )


def http_fault(fault: Any) -> fault_pb2.HTTPFault | None:
    if fault is None:
        return None
    out = fault_pb2.HTTPFault()
    delay = attr(fault, "delay")
    if delay is not None:
        fixed = attr(delay, "fixed_delay")
        if fixed:
            out.delay.fixed_delay.CopyFrom(duration(fixed))
            out.delay.percentage.CopyFrom(fractional(attr(delay, "percentage"),
                                                     attr(delay, "percent")))
    abort = attr(fault, "abort")
    if abort is not None:
        if attr(abort, "http_status") is not None:
            out.abort.http_status = int(abort.http_status)
        elif attr(abort, "grpc_status") is not None:
            out.abort.grpc_status = _grpc_code(abort.grpc_status)
        out.abort.percentage.CopyFrom(fractional(attr(abort, "percentage")))
    return out if out.ByteSize() else None


_GRPC_CODES = {
    "OK": 0, "CANCELLED": 1, "UNKNOWN": 2, "INVALID_ARGUMENT": 3, "DEADLINE_EXCEEDED": 4,
    "NOT_FOUND": 5, "ALREADY_EXISTS": 6, "PERMISSION_DENIED": 7, "RESOURCE_EXHAUSTED": 8,
    "FAILED_PRECONDITION": 9, "ABORTED": 10, "OUT_OF_RANGE": 11, "UNIMPLEMENTED": 12,
    "INTERNAL": 13, "UNAVAILABLE": 14, "DATA_LOSS": 15, "UNAUTHENTICATED": 16,
}


def _grpc_code(value: Any) -> int:
    text = str(enum_name(value))
    return int(text) if text.isdigit() else _GRPC_CODES.get(text.upper(), 2)


def cors_policy(cors: Any) -> cors_pb2.CorsPolicy | None:
    if cors is None:
        return None
    out = cors_pb2.CorsPolicy()
    for origin in seq(attr(cors, "allow_origins")):
        m = string_matcher(origin)
        if m is not None:
            out.allow_origin_string_match.append(m)
    for origin in seq(attr(cors, "allow_origin")):  # deprecated exact-origin list
        out.allow_origin_string_match.add(exact=str(origin))
    if attr(cors, "allow_methods"):
        out.allow_methods = ",".join(cors.allow_methods)
    if attr(cors, "allow_headers"):
        out.allow_headers = ",".join(cors.allow_headers)
    if attr(cors, "expose_headers"):
        out.expose_headers = ",".join(cors.expose_headers)
    if attr(cors, "max_age"):
        out.max_age = str(int(seconds(cors.max_age) or 0))
    if attr(cors, "allow_credentials") is not None:
        out.allow_credentials.value = bool(cors.allow_credentials)
    return out


def header_options(ops: Any) -> tuple[list[HVO], list[str]]:
    """`set` overwrites, `add` appends, `remove` removes (Istio's HeaderOperations)."""
    adds: list[HVO] = []
    for key, value in sorted((attr(ops, "set") or {}).items()):
        adds.append(HVO(header=base_pb2.HeaderValue(key=key, value=str(value)),
                        append_action=HVO.OVERWRITE_IF_EXISTS_OR_ADD))
    for key, value in sorted((attr(ops, "add") or {}).items()):
        adds.append(HVO(header=base_pb2.HeaderValue(key=key, value=str(value)),
                        append_action=HVO.APPEND_IF_EXISTS_OR_ADD))
    return adds, [str(h) for h in seq(attr(ops, "remove"))]


def apply_headers(target: Any, headers: Any) -> None:
    """Request/response header ops onto a Route or a WeightedCluster.ClusterWeight."""
    if headers is None:
        return
    add, remove = header_options(attr(headers, "request"))
    target.request_headers_to_add.extend(add)
    target.request_headers_to_remove.extend(remove)
    add, remove = header_options(attr(headers, "response"))
    target.response_headers_to_add.extend(add)
    target.response_headers_to_remove.extend(remove)


def rewrite(action: rc.RouteAction, rw: Any, regex_rw: Any) -> None:
    if attr(rw, "uri") is not None:
        action.prefix_rewrite = rw.uri
    if attr(rw, "authority"):
        action.host_rewrite_literal = rw.authority
    if regex_rw is not None and attr(regex_rw, "match"):
        action.regex_rewrite.CopyFrom(regex_pb2.RegexMatchAndSubstitute(
            pattern=regex_pb2.RegexMatcher(regex=regex_rw.match),
            substitution=attr(regex_rw, "rewrite") or ""))


_REDIRECT_CODES = {301: rc.RedirectAction.MOVED_PERMANENTLY, 302: rc.RedirectAction.FOUND,
                   303: rc.RedirectAction.SEE_OTHER, 307: rc.RedirectAction.TEMPORARY_REDIRECT,
                   308: rc.RedirectAction.PERMANENT_REDIRECT}


def redirect(rd: Any) -> rc.RedirectAction:
    out = rc.RedirectAction()
    if attr(rd, "uri"):
        out.path_redirect = rd.uri
    if attr(rd, "authority"):
        out.host_redirect = rd.authority
    if attr(rd, "port"):
        out.port_redirect = int(rd.port)
    if attr(rd, "scheme"):
        out.scheme_redirect = rd.scheme
    code = int(attr(rd, "redirect_code") or 301)
    out.response_code = _REDIRECT_CODES.get(code, rc.RedirectAction.MOVED_PERMANENTLY)
    return out


def direct_response(dr: Any) -> rc.DirectResponseAction:
    out = rc.DirectResponseAction(status=int(dr.status))
    body = attr(dr, "body")
    if attr(body, "string") is not None:
        out.body.inline_string = body.string
    elif attr(body, "bytes") is not None:
        raw = body.bytes
        out.body.inline_bytes = raw if isinstance(raw, bytes) else __import__("base64").b64decode(raw)
    return out


def mirror_policy(cluster: str, percentage: Any) -> rc.RouteAction.RequestMirrorPolicy:
    policy = rc.RouteAction.RequestMirrorPolicy(cluster=cluster)
    policy.runtime_fraction.default_value.CopyFrom(fractional(percentage))
    return policy


def hash_policies(lb: Any) -> list[rc.RouteAction.HashPolicy]:
    """consistentHash in a DestinationRule becomes the route's hash policy, as in Istio."""
    ch = attr(lb, "consistent_hash")
    if ch is None:
        return []
    HP = rc.RouteAction.HashPolicy
    if attr(ch, "http_header_name"):
        return [HP(header=HP.Header(header_name=ch.http_header_name))]
    cookie = attr(ch, "http_cookie")
    if cookie is not None:
        c = HP.Cookie(name=cookie.name, path=attr(cookie, "path") or "")
        if attr(cookie, "ttl"):
            c.ttl.CopyFrom(duration(cookie.ttl))
        return [HP(cookie=c)]
    if attr(ch, "use_source_ip"):
        return [HP(connection_properties=HP.ConnectionProperties(source_ip=True))]
    if attr(ch, "http_query_parameter_name"):
        return [HP(query_parameter=HP.QueryParameter(name=ch.http_query_parameter_name))]
    return []


def typed_filter_config(route: rc.Route, http_route: Any, grpc: bool = False) -> None:
    """Per-route fault and CORS. gRPC clients have no CORS filter and NACK overrides for
    filters they lack, so proxyless routes carry the fault override only."""
    fault = http_fault(attr(http_route, "fault"))
    if fault is not None:
        route.typed_per_filter_config[FAULT].CopyFrom(pack(fault))
    if grpc:
        return
    cors = cors_policy(attr(http_route, "cors_policy"))
    if cors is not None:
        route.typed_per_filter_config[CORS].CopyFrom(pack(cors))


def typed_extension(name: str, message: Any) -> extension_pb2.TypedExtensionConfig:
    return extension_pb2.TypedExtensionConfig(name=name, typed_config=pack(message))
