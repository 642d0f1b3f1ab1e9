"""HTTP filters before the router: fault injection and CORS (config compile + per-request logic).

Like Envoy: a factory compiles the filter's proto into immutable settings once; a route's
`typed_per_filter_config` under the filter's name replaces the listener-level settings for
that route. The per-request decision takes its randomness as an argument so tests can drive it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.extensions.filters.http.cors.v3 import cors_pb2
from envoy.extensions.filters.http.fault.v3 import fault_pb2
from envoy.extensions.filters.http.router.v3 import router_pb2
from google.protobuf import any_pb2

from ketch.proxy.matchers import HeaderMatch, StringMatch
from ketch.proxy.protoutil import Unsupported, check_fields, dur, fraction

FAULT = "envoy.filters.http.fault"
CORS = "envoy.filters.http.cors"
ROUTER = "envoy.filters.http.router"


@dataclass(frozen=True, slots=True)
class FaultConfig:
    delay_s: float | None = None
    delay_fraction: float = 0.0
    abort_status: int | None = None
    abort_grpc_status: int | None = None
    abort_fraction: float = 0.0
    headers: tuple[HeaderMatch, ...] = ()
    max_active_faults: int | None = None

    def decide(self, headers: dict[str, str], rand: Callable[[], float]) -> tuple[float | None, int | None, int | None]:
        """(delay seconds or None, abort http status or None, abort grpc status or None)."""
        if self.headers and not all(h.matches(headers) for h in self.headers):
            return None, None, None
        delay = None
        if self.delay_s is not None and rand() < self.delay_fraction:
            delay = self.delay_s
        if (self.abort_status is not None or self.abort_grpc_status is not None) and rand() < self.abort_fraction:
            return delay, self.abort_status, self.abort_grpc_status
        return delay, None, None


def compile_fault(msg: fault_pb2.HTTPFault, where: str) -> FaultConfig:
    check_fields(msg, ("delay", "abort", "headers", "max_active_faults"), where)
    cfg: dict = {}
    if msg.HasField("delay"):
        d = msg.delay
        check_fields(d, ("fixed_delay", "percentage"), f"{where}.delay")
        cfg["delay_s"] = dur(d.fixed_delay)
        cfg["delay_fraction"] = fraction(d.percentage) if d.HasField("percentage") else 1.0
    if msg.HasField("abort"):
        a = msg.abort
        check_fields(a, ("http_status", "grpc_status", "percentage"), f"{where}.abort")
        kind = a.WhichOneof("error_type")
        if kind == "http_status":
            if not 200 <= a.http_status < 600:
                raise Unsupported(f"{where}.abort: http_status {a.http_status} out of range")
            cfg["abort_status"] = a.http_status
        elif kind == "grpc_status":
            cfg["abort_grpc_status"] = a.grpc_status
        cfg["abort_fraction"] = fraction(a.percentage) if a.HasField("percentage") else 1.0
    cfg["headers"] = tuple(HeaderMatch.from_proto(h, f"{where}.headers") for h in msg.headers)
    if msg.HasField("max_active_faults"):
        cfg["max_active_faults"] = msg.max_active_faults.value
    return FaultConfig(**cfg)


@dataclass(frozen=True, slots=True)
class CorsConfig:
    origins: tuple[StringMatch, ...]
    allow_methods: str = ""
    allow_headers: str = ""
    expose_headers: str = ""
    max_age: str = ""
    allow_credentials: bool = False
    enabled: bool = True

    def allowed_origin(self, origin: str) -> bool:
        return any(m.matches(origin) for m in self.origins)

    def preflight_headers(self, origin: str) -> list[tuple[str, str]]:
        out = [("access-control-allow-origin", origin)]
        if self.allow_methods:
            out.append(("access-control-allow-methods", self.allow_methods))
        if self.allow_headers:
            out.append(("access-control-allow-headers", self.allow_headers))
        if self.max_age:
            out.append(("access-control-max-age", self.max_age))
        if self.allow_credentials:
            out.append(("access-control-allow-credentials", "true"))
        return out

    def response_headers(self, origin: str) -> list[tuple[str, str]]:
        out = [("access-control-allow-origin", origin)]
        if self.allow_credentials:
            out.append(("access-control-allow-credentials", "true"))
        if self.expose_headers:
            out.append(("access-control-expose-headers", self.expose_headers))
        return out


def compile_cors(msg, where: str) -> CorsConfig:
    check_fields(msg, ("allow_origin_string_match", "allow_methods", "allow_headers", "expose_headers",
                       "max_age", "allow_credentials", "filter_enabled", "shadow_enabled"), where)
    enabled = True
    if msg.HasField("filter_enabled"):
        fe = msg.filter_enabled.default_value
        enabled = fraction(fe) >= 1.0
        if 0.0 < fraction(fe) < 1.0:
            raise Unsupported(f"{where}: partial filter_enabled is not supported")
    return CorsConfig(
        origins=tuple(StringMatch.from_proto(s, f"{where}.allow_origin_string_match")
                      for s in msg.allow_origin_string_match),
        allow_methods=msg.allow_methods, allow_headers=msg.allow_headers,
        expose_headers=msg.expose_headers, max_age=msg.max_age,
        allow_credentials=msg.HasField("allow_credentials") and msg.allow_credentials.value,
        enabled=enabled,
    )


_PER_ROUTE = {
    "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault": (fault_pb2.HTTPFault, compile_fault),
    "type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy": (cors_pb2.CorsPolicy, compile_cors),
}


def compile_per_filter(configs, where: str) -> dict[str, object]:
    """typed_per_filter_config map → {filter name: compiled settings}."""
    out: dict[str, object] = {}
    for name, any_msg in configs.items():
        optional = False
        if any_msg.type_url.endswith("envoy.config.route.v3.FilterConfig"):
            fc = rc.FilterConfig()
            any_msg.Unpack(fc)
            optional = fc.is_optional
            if fc.disabled:
                out[name] = None
                continue
            any_msg = fc.config
        entry = _PER_ROUTE.get(any_msg.type_url)
        if entry is None:
            if optional:
                continue
            raise Unsupported(f"{where}.typed_per_filter_config[{name}]: {any_msg.type_url} is not supported")
        cls, compile_fn = entry
        msg = cls()
        any_msg.Unpack(msg)
        out[name] = compile_fn(msg, f"{where}.typed_per_filter_config[{name}]")
    return out


@dataclass(frozen=True, slots=True)
class HttpFilters:
    """The listener-level HTTP filter chain: which filters run, and their default settings."""

    fault: FaultConfig | None = None
    fault_enabled: bool = False
    cors_enabled: bool = False


def compile_http_filters(filters, where: str) -> HttpFilters:
    fault, fault_enabled, cors_enabled, saw_router = None, False, False, False
    for i, f in enumerate(filters):
        w = f"{where}.http_filters[{i}]({f.name})"
        check_fields(f, ("name", "typed_config", "is_optional", "disabled"), w)
        if saw_router:
            raise Unsupported(f"{w}: filter after the router")
        tc: any_pb2.Any = f.typed_config
        url = tc.type_url.rsplit("/", 1)[-1]
        if url == "envoy.extensions.filters.http.fault.v3.HTTPFault" or (not url and f.name == FAULT):
            msg = fault_pb2.HTTPFault()
            if url:
                tc.Unpack(msg)
            fault, fault_enabled = compile_fault(msg, w), not f.disabled
        elif url == "envoy.extensions.filters.http.cors.v3.Cors" or (not url and f.name == CORS):
            cors_enabled = not f.disabled
        elif url == "envoy.extensions.filters.http.router.v3.Router" or (not url and f.name == ROUTER):
            msg = router_pb2.Router()
            if url:
                tc.Unpack(msg)
            check_fields(msg, ("suppress_envoy_headers", "start_child_span", "dynamic_stats"), w)
            saw_router = True
        elif f.is_optional:
            continue
        else:
            raise Unsupported(f"{w}: HTTP filter {url or f.name} is not supported")
    if not saw_router:
        raise Unsupported(f"{where}: no envoy.filters.http.router filter")
    return HttpFilters(fault, fault_enabled, cors_enabled)
