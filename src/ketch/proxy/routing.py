"""Route tables with Envoy's matching semantics, compiled once per RouteConfiguration.

`RouteTable.from_proto(route_configuration)` validates (raising `Unsupported` with a reason,
which becomes the NACK) and precompiles every matcher; `table.match(authority, path, method,
headers)` returns the first matching `Route` of the selected virtual host, or None (404 NR).

Virtual host selection follows Envoy: exact domain, then the longest `*.suffix` wildcard,
then the longest `prefix.*` wildcard, then `*`; case-insensitive; the port is part of the
host unless `ignore_port_in_host_matching`.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from envoy.config.route.v3 import route_pb2
from google.protobuf.message import Message

from ketch.proxy.lb import HashPolicy
from ketch.proxy.retry import RetryPolicy
from ketch.proxy.filters import compile_cors, compile_per_filter
from ketch.proxy.matchers import HeaderMatch, HeaderOps, QueryMatch, compile_regex, parse_query
from ketch.proxy.protoutil import Unsupported, check_fields, dur, fraction

ENVOY_DEFAULT_ROUTE_TIMEOUT = 15.0


@dataclass(frozen=True, slots=True)
class WeightedCluster:
    name: str
    weight: int
    request_ops: HeaderOps = HeaderOps()
    response_ops: HeaderOps = HeaderOps()
    host_rewrite: str | None = None


@dataclass(frozen=True, slots=True)
class Mirror:
    cluster: str
    fraction: float = 1.0
    shadow_suffix: bool = True


@dataclass(frozen=True, slots=True)
class RouteAction:
    cluster: str | None = None
    weighted_clusters: tuple[WeightedCluster, ...] = ()
    total_weight: int = 0
    prefix_rewrite: str | None = None
    regex_rewrite: tuple[re.Pattern[str], str] | None = None
    host_rewrite: str | None = None
    auto_host_rewrite: bool = False
    timeout: float | None = ENVOY_DEFAULT_ROUTE_TIMEOUT  # None: disabled
    idle_timeout: float | None = None
    retry_policy: RetryPolicy = RetryPolicy.NONE  # route's, else the virtual host's
    mirrors: tuple[Mirror, ...] = ()
    hash_policy: tuple[HashPolicy, ...] = ()
    websocket: bool = False
    grpc_timeout_header: bool = False  # the request's grpc-timeout replaces the route timeout
    grpc_timeout_max: float | None = None  # cap on it (None: uncapped)
    max_stream_duration: float | None = None

    def pick(self, rand: Callable[[], float]) -> WeightedCluster | None:
        """The weighted cluster for one request (None for a plain `cluster` route)."""
        if not self.weighted_clusters:
            return None
        point = rand() * self.total_weight
        for wc in self.weighted_clusters:
            point -= wc.weight
            if point < 0:
                return wc
        return self.weighted_clusters[-1]


@dataclass(frozen=True, slots=True)
class Redirect:
    scheme: str | None = None
    host: str | None = None
    port: int | None = None
    path: str | None = None
    prefix_rewrite: str | None = None
    regex_rewrite: tuple[re.Pattern[str], str] | None = None
    status: int = 301
    strip_query: bool = False


@dataclass(frozen=True, slots=True)
class DirectResponse:
    status: int
    body: bytes = b""


_REDIRECT_CODES = {0: 301, 1: 302, 2: 303, 3: 307, 4: 308}


@dataclass(frozen=True, slots=True, eq=False)
class Route:
    name: str
    vhost: str
    action: RouteAction | Redirect | DirectResponse
    path_kind: str = "prefix"  # prefix | path | regex | separated | any
    path_value: str = "/"
    path_regex: re.Pattern[str] | None = None
    case_sensitive: bool = True
    headers: tuple[HeaderMatch, ...] = ()
    query: tuple[QueryMatch, ...] = ()
    runtime_fraction: float | None = None
    grpc_only: bool = False
    request_ops: tuple[HeaderOps, ...] = ()  # most specific first: route, vhost, route config
    response_ops: tuple[HeaderOps, ...] = ()
    per_filter: Mapping[str, object] = field(default_factory=dict)
    include_attempt_count: bool = False
    plain: bool = field(init=False, default=False)  # forwards with no rewrite or request header operation
    # ... and with nothing on the response side or in filters either (stream.py's express path)
    express: bool = field(init=False, default=False)

    def __post_init__(self) -> None:
        a = self.action
        plain = (isinstance(a, RouteAction) and a.prefix_rewrite is None and a.regex_rewrite is None
                 and not a.host_rewrite and not a.auto_host_rewrite and not self.request_ops
                 and all(not wc.request_ops and not wc.host_rewrite for wc in a.weighted_clusters))
        object.__setattr__(self, "plain", plain)
        object.__setattr__(self, "express", plain and not a.mirrors and not a.hash_policy  # type: ignore[union-attr]
                           and not self.response_ops and not self.per_filter
                           and all(not wc.response_ops for wc in a.weighted_clusters))  # type: ignore[union-attr]

    @property
    def cluster(self) -> str | None:
        return self.action.cluster if isinstance(self.action, RouteAction) else None

    def matches(self, path: str, headers: Mapping[str, str], rand: Callable[[], float]) -> bool:
        kind = self.path_kind
        if kind == "prefix":
            p = path if self.case_sensitive else path.lower()
            if not p.startswith(self.path_value):
                return False
        elif kind != "any":
            p = path.partition("?")[0]
            if not self.case_sensitive:
                p = p.lower()
            if kind == "path":
                if p != self.path_value:
                    return False
            elif kind == "regex":
                if self.path_regex.fullmatch(p) is None:  # type: ignore[union-attr]
                    return False
            else:  # separated
                v = self.path_value
                if not (p == v or (p.startswith(v) and p[len(v)] == "/")):
                    return False
        if self.grpc_only and not headers.get("content-type", "").startswith("application/grpc"):
            return False
        for h in self.headers:
            if not h.matches(headers):
                return False
        if self.query:
            q = parse_query(path.partition("?")[2])
            for qm in self.query:
                if not qm.matches(q):
                    return False
        if self.runtime_fraction is not None and rand() >= self.runtime_fraction:
            return False
        return True


@dataclass(frozen=True, slots=True, eq=False)
class VirtualHost:
    name: str
    domains: tuple[str, ...]
    routes: tuple[Route, ...]

    def match(self, path: str, headers: Mapping[str, str], rand: Callable[[], float]) -> Route | None:
        for r in self.routes:
            if r.matches(path, headers, rand):
                return r
        return None


class RouteTable:
    """An immutable, precompiled RouteConfiguration."""

    __slots__ = ("name", "vhosts", "_exact", "_suffix", "_prefix", "_default", "_ignore_port",
                 "_cache", "rand")

    def __init__(self, name: str, vhosts: tuple[VirtualHost, ...], ignore_port: bool = False,
                 rand: Callable[[], float] = random.random) -> None:
        self.name = name
        self.vhosts = vhosts
        self._ignore_port = ignore_port
        self.rand = rand
        self._exact: dict[str, VirtualHost] = {}
        suffix: list[tuple[str, VirtualHost]] = []
        prefix: list[tuple[str, VirtualHost]] = []
        self._default: VirtualHost | None = None
        for vh in vhosts:
            for d in vh.domains:
                d = d.lower()
                if d == "*":
                    self._default = vh
                elif d.startswith("*"):
                    suffix.append((d[1:], vh))
                elif d.endswith("*"):
                    prefix.append((d[:-1], vh))
                else:
                    self._exact.setdefault(d, vh)
        self._suffix = sorted(suffix, key=lambda x: -len(x[0]))
        self._prefix = sorted(prefix, key=lambda x: -len(x[0]))
        self._cache: dict[str, VirtualHost | None] = {}

    @classmethod
    def from_proto(cls, rc: route_pb2.RouteConfiguration, rand: Callable[[], float] = random.random) -> RouteTable:
        return compile_route_config(rc, rand)

    def virtual_host(self, authority: str) -> VirtualHost | None:
        vh = self._cache.get(authority, False)
        if vh is not False:
            return vh  # type: ignore[return-value]
        host = authority.lower()
        if self._ignore_port:
            host = _strip_port(host)
        vh = self._exact.get(host)
        if vh is None:
            for suf, v in self._suffix:
                if host.endswith(suf) and len(host) > len(suf):
                    vh = v
                    break
        if vh is None:
            for pre, v in self._prefix:
                if host.startswith(pre) and len(host) > len(pre):
                    vh = v
                    break
        if vh is None:
            vh = self._default
        if len(self._cache) < 4096:
            self._cache[authority] = vh
        return vh

    def match(self, authority: str, path: str, method: str = "GET",
              headers: Mapping[str, str] | None = None) -> Route | None:
        vh = self.virtual_host(authority)
        if vh is None:
            return None
        h = dict(headers or {})
        h.setdefault(":authority", authority)
        h.setdefault(":path", path)
        h.setdefault(":method", method)
        h.setdefault(":scheme", "http")
        return vh.match(path, h, self.rand)

    def __repr__(self) -> str:
        return f"<RouteTable {self.name!r} vhosts={[v.name for v in self.vhosts]}>"


def _strip_port(host: str) -> str:
    if host.startswith("["):
        end = host.find("]")
        return host[: end + 1] if end >= 0 else host
    h, sep, port = host.rpartition(":")
    return h if sep and port.isdigit() else host


def _rewrite(rr: Message, where: str) -> tuple[re.Pattern[str], str]:
    check_fields(rr, ("pattern", "substitution"), where)
    sub = re.sub(r"\\(\d)", r"\\g<\1>", rr.substitution)
    return compile_regex(rr.pattern, where), sub


def _compile_action(ra: Message, vh: Message, where: str) -> RouteAction:
    check_fields(ra, ("cluster", "weighted_clusters", "prefix_rewrite", "regex_rewrite",
                      "host_rewrite_literal", "auto_host_rewrite", "timeout", "idle_timeout",
                      "retry_policy", "request_mirror_policies", "hash_policy",
                      "max_stream_duration", "upgrade_configs", "cors", "priority",
                      "max_grpc_timeout", "cluster_not_found_response_code"), where)
    kw: dict = {}
    if ra.HasField("weighted_clusters"):
        wcs = []
        for i, c in enumerate(ra.weighted_clusters.clusters):
            w = f"{where}.weighted_clusters.clusters[{i}]"
            check_fields(c, ("name", "weight", "request_headers_to_add", "request_headers_to_remove",
                             "response_headers_to_add", "response_headers_to_remove",
                             "host_rewrite_literal"), w)
            wcs.append(WeightedCluster(
                c.name, c.weight.value if c.HasField("weight") else 0,
                HeaderOps.from_protos(c.request_headers_to_add, c.request_headers_to_remove, w),
                HeaderOps.from_protos(c.response_headers_to_add, c.response_headers_to_remove, w),
                c.host_rewrite_literal or None))
        kw["weighted_clusters"] = tuple(w for w in wcs if w.weight > 0) or tuple(wcs[:1])
        kw["total_weight"] = sum(w.weight for w in kw["weighted_clusters"]) or 1
        if ra.weighted_clusters.HasField("total_weight"):
            kw["total_weight"] = ra.weighted_clusters.total_weight.value
    elif ra.cluster:
        kw["cluster"] = ra.cluster
    else:
        raise Unsupported(f"{where}: route action without cluster or weighted_clusters")
    if ra.prefix_rewrite:
        kw["prefix_rewrite"] = ra.prefix_rewrite
    if ra.HasField("regex_rewrite"):
        kw["regex_rewrite"] = _rewrite(ra.regex_rewrite, f"{where}.regex_rewrite")
    if ra.host_rewrite_literal:
        kw["host_rewrite"] = ra.host_rewrite_literal
    if ra.HasField("auto_host_rewrite"):
        kw["auto_host_rewrite"] = ra.auto_host_rewrite.value
    if ra.HasField("timeout"):
        t = dur(ra.timeout)
        kw["timeout"] = t if t else None
    if ra.HasField("idle_timeout"):
        kw["idle_timeout"] = dur(ra.idle_timeout) or None
    if ra.HasField("retry_policy"):
        kw["retry_policy"] = RetryPolicy.from_proto(ra.retry_policy, f"{where}.retry_policy")
    elif vh.HasField("retry_policy"):
        kw["retry_policy"] = RetryPolicy.from_proto(vh.retry_policy, f"{where}(vhost).retry_policy")
    mirrors = []
    for i, m in enumerate(ra.request_mirror_policies):
        w = f"{where}.request_mirror_policies[{i}]"
        check_fields(m, ("cluster", "runtime_fraction", "trace_sampled", "disable_shadow_host_suffix_append"), w)
        frac = fraction(m.runtime_fraction.default_value) if m.HasField("runtime_fraction") else 1.0
        mirrors.append(Mirror(m.cluster, frac, not m.disable_shadow_host_suffix_append))
    kw["mirrors"] = tuple(mirrors)
    hps = []
    for i, hp in enumerate(ra.hash_policy):
        w = f"{where}.hash_policy[{i}]"
        check_fields(hp, ("header", "cookie", "connection_properties", "query_parameter", "terminal"), w)
        if hp.HasField("cookie") and (hp.cookie.HasField("ttl") or hp.cookie.path):
            raise Unsupported(f"{w}.cookie: generated cookies (ttl/path) are not supported")
        try:
            hps.append(HashPolicy.from_proto(hp))
        except ValueError as exc:
            raise Unsupported(f"{w}: {exc}") from None
    kw["hash_policy"] = tuple(hps)
    if ra.HasField("max_stream_duration"):
        msd = ra.max_stream_duration
        check_fields(msd, ("max_stream_duration", "grpc_timeout_header_max"), f"{where}.max_stream_duration")
        if msd.HasField("max_stream_duration"):
            kw["max_stream_duration"] = dur(msd.max_stream_duration) or None
        if msd.HasField("grpc_timeout_header_max"):
            kw["grpc_timeout_header"] = True
            kw["grpc_timeout_max"] = dur(msd.grpc_timeout_header_max) or None
    elif ra.HasField("max_grpc_timeout"):
        kw["grpc_timeout_header"] = True
        kw["grpc_timeout_max"] = dur(ra.max_grpc_timeout) or None
    for i, uc in enumerate(ra.upgrade_configs):
        if uc.upgrade_type.lower() == "websocket":
            kw["websocket"] = not uc.HasField("enabled") or uc.enabled.value
    return RouteAction(**kw)


def _compile_route(r: Message, vh: Message, rc: Message, where: str,
                   vh_ops: tuple[HeaderOps, HeaderOps], rc_ops: tuple[HeaderOps, HeaderOps],
                   vh_filters: dict[str, object]) -> Route:
    check_fields(r, ("name", "match", "route", "redirect", "direct_response", "metadata", "decorator",
                     "typed_per_filter_config", "request_headers_to_add", "request_headers_to_remove",
                     "response_headers_to_add", "response_headers_to_remove", "tracing", "stat_prefix"),
                 where)
    m = r.match
    mw = f"{where}.match"
    check_fields(m, ("prefix", "path", "safe_regex", "path_separated_prefix", "case_sensitive",
                     "runtime_fraction", "headers", "query_parameters", "grpc"), mw)
    kind = m.WhichOneof("path_specifier")
    case_sensitive = not m.HasField("case_sensitive") or m.case_sensitive.value
    kw: dict = {"case_sensitive": case_sensitive}
    if kind == "prefix":
        kw["path_kind"], kw["path_value"] = ("any", "") if m.prefix == "" else ("prefix", m.prefix)
    elif kind == "path":
        kw["path_kind"], kw["path_value"] = "path", m.path
    elif kind == "safe_regex":
        kw["path_kind"] = "regex"
        kw["path_regex"] = compile_regex(m.safe_regex, f"{mw}.safe_regex")
        if not case_sensitive:
            kw["path_regex"] = re.compile(m.safe_regex.regex, re.IGNORECASE)
            kw["case_sensitive"] = True
    elif kind == "path_separated_prefix":
        kw["path_kind"], kw["path_value"] = "separated", m.path_separated_prefix
    else:
        raise Unsupported(f"{mw}: path specifier {kind} is not supported")
    if not kw["case_sensitive"]:
        kw["path_value"] = kw["path_value"].lower()
    kw["headers"] = tuple(HeaderMatch.from_proto(h, f"{mw}.headers") for h in m.headers)
    kw["query"] = tuple(QueryMatch.from_proto(q, f"{mw}.query_parameters") for q in m.query_parameters)
    if m.HasField("runtime_fraction"):
        kw["runtime_fraction"] = fraction(m.runtime_fraction.default_value)
    kw["grpc_only"] = m.HasField("grpc")
    act = r.WhichOneof("action")
    if act == "route":
        action: RouteAction | Redirect | DirectResponse = _compile_action(r.route, vh, f"{where}.route")
    elif act == "redirect":
        rd = r.redirect
        check_fields(rd, ("https_redirect", "scheme_redirect", "host_redirect", "port_redirect", "path_redirect",
                          "prefix_rewrite", "regex_rewrite", "response_code", "strip_query"), f"{where}.redirect")
        action = Redirect(
            scheme="https" if rd.https_redirect else (rd.scheme_redirect or None),
            host=rd.host_redirect or None, port=rd.port_redirect or None,
            path=rd.path_redirect or None, prefix_rewrite=rd.prefix_rewrite or None,
            regex_rewrite=_rewrite(rd.regex_rewrite, f"{where}.redirect.regex_rewrite") if rd.HasField("regex_rewrite") else None,
            status=_REDIRECT_CODES.get(rd.response_code, 301), strip_query=rd.strip_query)
    elif act == "direct_response":
        dr = r.direct_response
        body = b""
        if dr.HasField("body"):
            src = dr.body.WhichOneof("specifier")
            if src == "inline_string":
                body = dr.body.inline_string.encode()
            elif src == "inline_bytes":
                body = dr.body.inline_bytes
            else:
                raise Unsupported(f"{where}.direct_response.body: {src} is not supported")
        action = DirectResponse(dr.status, body)
    else:
        raise Unsupported(f"{where}: route action {act} is not supported")
    per_filter = dict(vh_filters)
    per_filter.update(compile_per_filter(r.typed_per_filter_config, where))
    if act == "route" and r.route.HasField("cors"):
        per_filter.setdefault("envoy.filters.http.cors", compile_cors(r.route.cors, f"{where}.route.cors"))
    kw["request_ops"] = tuple(o for o in (
        HeaderOps.from_protos(r.request_headers_to_add, r.request_headers_to_remove, where),
        vh_ops[0], rc_ops[0]) if o)
    kw["response_ops"] = tuple(o for o in (
        HeaderOps.from_protos(r.response_headers_to_add, r.response_headers_to_remove, where),
        vh_ops[1], rc_ops[1]) if o)
    kw["per_filter"] = per_filter
    kw["include_attempt_count"] = vh.include_request_attempt_count
    return Route(r.name, vh.name, action, **kw)


def compile_route_config(rc: route_pb2.RouteConfiguration, rand: Callable[[], float] = random.random) -> RouteTable:
    where = f"RouteConfiguration {rc.name}"
    check_fields(rc, ("name", "virtual_hosts", "validate_clusters", "request_headers_to_add",
                      "request_headers_to_remove", "response_headers_to_add", "response_headers_to_remove",
                      "max_direct_response_body_size_bytes", "ignore_port_in_host_matching",
                      "internal_only_headers", "most_specific_header_mutations_wins"), where)
    rc_ops = (HeaderOps.from_protos(rc.request_headers_to_add, rc.request_headers_to_remove, where),
              HeaderOps.from_protos(rc.response_headers_to_add, rc.response_headers_to_remove, where))
    vhosts = []
    seen: set[str] = set()
    for vi, vh in enumerate(rc.virtual_hosts):
        vw = f"{where}.virtual_hosts[{vi}]({vh.name})"
        check_fields(vh, ("name", "domains", "routes", "require_tls", "request_headers_to_add",
                          "request_headers_to_remove", "response_headers_to_add", "response_headers_to_remove",
                          "cors", "typed_per_filter_config", "include_request_attempt_count",
                          "include_attempt_count_in_response", "retry_policy", "metadata"), vw)
        if vh.require_tls:
            raise Unsupported(f"{vw}: require_tls is not supported")
        for d in vh.domains:
            if d.lower() in seen:
                raise Unsupported(f"{vw}: duplicate domain {d!r} in route configuration")
            seen.add(d.lower())
        vh_ops = (HeaderOps.from_protos(vh.request_headers_to_add, vh.request_headers_to_remove, vw),
                  HeaderOps.from_protos(vh.response_headers_to_add, vh.response_headers_to_remove, vw))
        vh_filters = compile_per_filter(vh.typed_per_filter_config, vw)
        if vh.HasField("cors"):
            vh_filters.setdefault("envoy.filters.http.cors", compile_cors(vh.cors, f"{vw}.cors"))
        routes = tuple(_compile_route(r, vh, rc, f"{vw}.routes[{ri}]", vh_ops, rc_ops, vh_filters)
                       for ri, r in enumerate(vh.routes))
        vhosts.append(VirtualHost(vh.name, tuple(vh.domains), routes))
    ignore_port = rc.ignore_port_in_host_matching
    return RouteTable(rc.name, tuple(vhosts), ignore_port, rand)
