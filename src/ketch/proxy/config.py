"""Typed, frozen proxy config compiled once from Envoy v3 protos.

`compile_listener`, `compile_cluster`, `compile_endpoints` and `compile_route_config`
(routing.py) turn one xDS resource into immutable settings, raising `Unsupported(reason)`
for anything this proxy cannot honour; the ADS client NACKs with that reason. Raw protos
never reach the data path except the few policy messages handed to their policy modules.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm_pb2
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2
from google.protobuf.message import Message

from ketch.proxy.filters import HttpFilters, compile_http_filters
from ketch.proxy.outlier import OutlierConfig
from ketch.proxy.protoutil import Unsupported, check_fields, dur, opt_dur, uint
from ketch.proxy.routing import RouteTable, compile_route_config

HCM_URL = "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
TCP_URL = "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy"
HPO_KEY = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"


# ---------------------------------------------------------------- clusters and endpoints


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Envoy's circuit-breaker thresholds (defaults as Envoy's)."""

    max_connections: int = 1024
    max_pending_requests: int = 1024
    max_requests: int = 1024
    max_retries: int = 3


@dataclass(frozen=True, slots=True)
class EndpointConfig:
    address: str
    port: int
    weight: int = 1
    healthy: bool = True
    priority: int = 0

    @property
    def key(self) -> str:
        return f"{self.address}:{self.port}"


@dataclass(frozen=True, slots=True, eq=False)
class ClusterConfig:
    name: str
    kind: str  # STATIC | EDS | ORIGINAL_DST | STRICT_DNS | LOGICAL_DNS
    connect_timeout: float = 5.0
    lb_policy: str = "ROUND_ROBIN"
    thresholds: Thresholds = Thresholds()
    outlier: OutlierConfig | None = None
    http2: bool = False
    idle_timeout: float | None = 3600.0
    max_requests_per_connection: int | None = None
    eds_service_name: str = ""
    endpoints: tuple[EndpointConfig, ...] = ()
    panic_threshold: float = 50.0
    lb_options: tuple[tuple[str, float], ...] = ()  # ring/maglev/least-request settings for lb.py
    proto: Message | None = field(default=None, repr=False)


_LB = {0: "ROUND_ROBIN", 1: "LEAST_REQUEST", 2: "RING_HASH", 3: "RANDOM", 5: "MAGLEV"}
_HEALTHY = {0, 1, 5}  # UNKNOWN, HEALTHY, DEGRADED serve traffic


def compile_endpoints(cla: endpoint_pb2.ClusterLoadAssignment, where: str) -> tuple[EndpointConfig, ...]:
    check_fields(cla, ("cluster_name", "endpoints", "policy", "named_endpoints"), where)
    out = []
    for li, loc in enumerate(cla.endpoints):
        lw = f"{where}.endpoints[{li}]"
        check_fields(loc, ("locality", "lb_endpoints", "load_balancing_weight", "priority", "metadata"), lw)
        for ei, lbe in enumerate(loc.lb_endpoints):
            ew = f"{lw}.lb_endpoints[{ei}]"
            check_fields(lbe, ("endpoint", "health_status", "metadata", "load_balancing_weight", "endpoint_name"), ew)
            sa = lbe.endpoint.address.socket_address
            if not lbe.endpoint.address.HasField("socket_address"):
                raise Unsupported(f"{ew}: only socket addresses are supported")
            out.append(EndpointConfig(
                sa.address, sa.port_value, uint(lbe, "load_balancing_weight", 1),
                lbe.health_status in _HEALTHY, loc.priority))
    return tuple(out)


def _protocol_options(c: cluster_pb2.Cluster, where: str) -> tuple[bool, float | None, int | None]:
    http2 = c.HasField("http2_protocol_options")
    idle = 3600.0
    max_rpc = c.max_requests_per_connection.value if c.HasField("max_requests_per_connection") else None
    if c.HasField("common_http_protocol_options"):
        idle = opt_dur(c.common_http_protocol_options, "idle_timeout", idle)
    for key, any_msg in c.typed_extension_protocol_options.items():
        if key != HPO_KEY:
            raise Unsupported(f"{where}.typed_extension_protocol_options[{key}] is not supported")
        hpo = http_protocol_options_pb2.HttpProtocolOptions()
        any_msg.Unpack(hpo)
        check_fields(hpo, ("common_http_protocol_options", "explicit_http_config", "use_downstream_protocol_config"),
                     f"{where}.{key}")
        cho = hpo.common_http_protocol_options
        check_fields(cho, ("idle_timeout", "max_requests_per_connection", "max_connection_duration",
                           "headers_with_underscores_action"), f"{where}.{key}.common_http_protocol_options")
        idle = opt_dur(cho, "idle_timeout", idle)
        if cho.HasField("max_requests_per_connection"):
            max_rpc = cho.max_requests_per_connection.value
        if hpo.HasField("explicit_http_config"):
            http2 = hpo.explicit_http_config.HasField("http2_protocol_options")
        if hpo.HasField("use_downstream_protocol_config"):
            raise Unsupported(f"{where}.{key}: use_downstream_protocol_config is not supported")
    return http2, (idle or None), (max_rpc or None)


def compile_cluster(c: cluster_pb2.Cluster) -> ClusterConfig:
    where = f"Cluster {c.name}"
    check_fields(c, ("name", "alt_stat_name", "type", "eds_cluster_config", "connect_timeout",
                     "per_connection_buffer_limit_bytes", "lb_policy", "load_assignment",
                     "max_requests_per_connection", "circuit_breakers", "common_http_protocol_options",
                     "http_protocol_options", "http2_protocol_options", "typed_extension_protocol_options",
                     "dns_refresh_rate", "respect_dns_ttl", "dns_lookup_family", "outlier_detection",
                     "cleanup_interval", "ring_hash_lb_config", "maglev_lb_config", "least_request_lb_config",
                     "original_dst_lb_config", "round_robin_lb_config", "common_lb_config", "metadata",
                     "transport_socket", "filters"), where)
    if c.HasField("transport_socket") and not c.transport_socket.name.endswith("raw_buffer"):
        raise Unsupported(f"{where}.transport_socket: {c.transport_socket.name} (TLS upstream) is not supported yet")
    if len(c.filters):
        names = [f.name for f in c.filters]
        if any(n != "istio.metadata_exchange" for n in names):
            raise Unsupported(f"{where}.filters: {names} are not supported")
    kind = cluster_pb2.Cluster.DiscoveryType.Name(c.type)
    lb = _LB.get(c.lb_policy)
    if c.lb_policy == cluster_pb2.Cluster.CLUSTER_PROVIDED and kind == "ORIGINAL_DST":
        lb = "ROUND_ROBIN"  # Envoy requires CLUSTER_PROVIDED here; the original destination picks the host
    if lb is None:
        raise Unsupported(f"{where}.lb_policy: {c.lb_policy} is not supported")
    thresholds = Thresholds()
    for t in c.circuit_breakers.thresholds:
        check_fields(t, ("priority", "max_connections", "max_pending_requests", "max_requests", "max_retries",
                         "track_remaining", "retry_budget"), f"{where}.circuit_breakers")
        if t.priority == 0:
            thresholds = Thresholds(uint(t, "max_connections", 1024), uint(t, "max_pending_requests", 1024),
                                    uint(t, "max_requests", 1024), uint(t, "max_retries", 3))
    panic = 50.0
    if c.HasField("common_lb_config"):
        cl = c.common_lb_config
        check_fields(cl, ("healthy_panic_threshold", "locality_weighted_lb_config", "zone_aware_lb_config",
                          "update_merge_window"), f"{where}.common_lb_config")
        if cl.HasField("healthy_panic_threshold"):
            panic = cl.healthy_panic_threshold.value
    lb_options: list[tuple[str, float]] = []
    if c.HasField("ring_hash_lb_config"):
        rh = c.ring_hash_lb_config
        check_fields(rh, ("minimum_ring_size", "maximum_ring_size", "hash_function"), f"{where}.ring_hash_lb_config")
        if rh.hash_function != 0:
            raise Unsupported(f"{where}.ring_hash_lb_config.hash_function: only XX_HASH is supported")
        if rh.HasField("minimum_ring_size"):
            lb_options.append(("min_ring_size", rh.minimum_ring_size.value))
        if rh.HasField("maximum_ring_size"):
            lb_options.append(("max_ring_size", rh.maximum_ring_size.value))
    if c.HasField("maglev_lb_config") and c.maglev_lb_config.HasField("table_size"):
        lb_options.append(("table_size", c.maglev_lb_config.table_size.value))
    if c.HasField("least_request_lb_config"):
        lr = c.least_request_lb_config
        check_fields(lr, ("choice_count", "active_request_bias"), f"{where}.least_request_lb_config")
        if lr.HasField("choice_count"):
            lb_options.append(("choice_count", lr.choice_count.value))
        if lr.HasField("active_request_bias"):
            lb_options.append(("active_request_bias", lr.active_request_bias.default_value))
    if lb not in ("RING_HASH",):
        lb_options = [o for o in lb_options if o[0] not in ("min_ring_size", "max_ring_size")]
    if lb != "MAGLEV":
        lb_options = [o for o in lb_options if o[0] != "table_size"]
    if lb != "LEAST_REQUEST":
        lb_options = [o for o in lb_options if o[0] not in ("choice_count", "active_request_bias")]
    http2, idle, max_rpc = _protocol_options(c, where)
    eds_name = ""
    if kind == "EDS":
        eds_name = c.eds_cluster_config.service_name or c.name
    endpoints: tuple[EndpointConfig, ...] = ()
    if c.HasField("load_assignment"):
        endpoints = compile_endpoints(c.load_assignment, f"{where}.load_assignment")
    return ClusterConfig(
        name=c.name, kind=kind, connect_timeout=dur(c.connect_timeout) if c.HasField("connect_timeout") else 5.0,
        lb_policy=lb, thresholds=thresholds,
        outlier=OutlierConfig.from_proto(c.outlier_detection, f"{where}.outlier_detection")
        if c.HasField("outlier_detection") else None,
        http2=http2, idle_timeout=idle, max_requests_per_connection=max_rpc, eds_service_name=eds_name,
        endpoints=endpoints, panic_threshold=panic, lb_options=tuple(lb_options), proto=c)


# ---------------------------------------------------------------- listeners


@dataclass(frozen=True, slots=True)
class ChainMatch:
    destination_port: int | None = None
    prefix_ranges: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    server_names: tuple[str, ...] = ()
    transport_protocol: str = ""
    application_protocols: tuple[str, ...] = ()
    source_prefix_ranges: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()

    @property
    def needs_inspection(self) -> bool:
        return bool(self.server_names or self.transport_protocol or self.application_protocols)


@dataclass(frozen=True, slots=True, eq=False)
class HttpManager:
    stat_prefix: str
    rds_name: str | None
    route_table: RouteTable | None
    filters: HttpFilters
    use_remote_address: bool = False
    xff_num_trusted_hops: int = 0
    skip_xff_append: bool = False
    generate_request_id: bool = True
    preserve_external_request_id: bool = False
    stream_idle_timeout: float | None = 300.0
    request_timeout: float | None = None
    max_request_headers_kb: int = 60
    websocket: bool = False
    server_name: str = "envoy"
    codec: str = "AUTO"
    access_log: bool = False
    normalize_path: bool = False
    merge_slashes: bool = False
    idle_timeout: float | None = 3600.0  # downstream connection idle (common_http_protocol_options)
    server_header: str = "OVERWRITE"  # server_header_transformation: OVERWRITE | APPEND_IF_ABSENT | PASS_THROUGH
    request_id_in_response: bool = False
    strip_host_port: str = ""  # "" | "any" | "matching"
    # Derived once: the response head's fixed tail (server header) for the express path, and
    # whether that path applies at all (no listener-wide fault, server header not conditional).
    server_tail: bytes = field(init=False, default=b"")
    express: bool = field(init=False, default=False)

    def response_tail(self, service_ms: float) -> bytes:
        """The express path's end of a response head: Envoy's x-envoy-upstream-service-time
        (whole milliseconds), the server header (OVERWRITE) and the blank line."""
        return b"\r\nx-envoy-upstream-service-time: %d%b" % (service_ms, self.server_tail)

    def __post_init__(self) -> None:
        tail = f"\r\nserver: {self.server_name}\r\n\r\n" if self.server_header == "OVERWRITE" else "\r\n\r\n"
        object.__setattr__(self, "server_tail", tail.encode("latin-1", "replace"))
        object.__setattr__(self, "express", self.server_header != "APPEND_IF_ABSENT" and not self.request_id_in_response
                           and not (self.filters.fault_enabled and self.filters.fault is not None))


@dataclass(frozen=True, slots=True)
class TcpProxy:
    stat_prefix: str
    cluster: str | None
    weighted: tuple[tuple[str, int], ...] = ()
    idle_timeout: float | None = 3600.0


@dataclass(frozen=True, slots=True, eq=False)
class FilterChain:
    name: str
    match: ChainMatch
    http: HttpManager | None = None
    tcp: TcpProxy | None = None


@dataclass(frozen=True, slots=True, eq=False)
class ListenerConfig:
    name: str
    host: str
    port: int
    bind_to_port: bool = True
    use_original_dst: bool = False
    filter_chains: tuple[FilterChain, ...] = ()
    default_chain: FilterChain | None = None
    inspect: bool = False  # peek at the first bytes (tls/http inspectors) before choosing a chain
    original_dst_filter: bool = False  # envoy.filters.listener.original_dst: match on the original destination
    proto: Message | None = field(default=None, repr=False)

    @property
    def rds_names(self) -> set[str]:
        chains = self.filter_chains + ((self.default_chain,) if self.default_chain else ())
        return {c.http.rds_name for c in chains if c.http and c.http.rds_name}


def _nets(ranges, where: str) -> tuple:
    out = []
    for r in ranges:
        try:
            out.append(ipaddress.ip_network(f"{r.address_prefix}/{r.prefix_len.value if r.HasField('prefix_len') else (32 if ':' not in r.address_prefix else 128)}", strict=False))
        except ValueError as exc:
            raise Unsupported(f"{where}: bad prefix range: {exc}") from None
    return tuple(out)


def compile_hcm(h: hcm_pb2.HttpConnectionManager, where: str) -> HttpManager:
    check_fields(h, ("codec_type", "stat_prefix", "rds", "route_config", "http_filters", "tracing",
                     "common_http_protocol_options", "http_protocol_options", "http2_protocol_options",
                     "server_name", "stream_idle_timeout", "request_timeout", "drain_timeout",
                     "delayed_close_timeout", "access_log", "use_remote_address", "xff_num_trusted_hops",
                     "skip_xff_append", "via", "generate_request_id", "preserve_external_request_id",
                     "forward_client_cert_details", "set_current_client_cert_details", "upgrade_configs",
                     "normalize_path", "merge_slashes", "path_with_escaped_slashes_action",
                     "request_id_extension", "max_request_headers_kb", "internal_address_config",
                     "always_set_request_id_in_response", "stream_error_on_invalid_http_message",
                     "server_header_transformation", "proxy_100_continue", "strip_any_host_port",
                     "strip_matching_host_port", "add_user_agent", "request_headers_timeout"), where)
    if h.codec_type == 3:
        raise Unsupported(f"{where}.codec_type: HTTP3 is not supported")
    if h.via:
        raise Unsupported(f"{where}.via is not supported")
    rds_name, table = None, None
    if h.HasField("rds"):
        rds_name = h.rds.route_config_name
    elif h.HasField("route_config"):
        table = compile_route_config(h.route_config)
    else:
        raise Unsupported(f"{where}: neither rds nor route_config")
    idle = 3600.0
    if h.HasField("common_http_protocol_options"):
        cho = h.common_http_protocol_options
        check_fields(cho, ("idle_timeout", "headers_with_underscores_action"), f"{where}.common_http_protocol_options")
        if cho.headers_with_underscores_action != 0:
            raise Unsupported(f"{where}.common_http_protocol_options.headers_with_underscores_action is not supported")
        idle = opt_dur(cho, "idle_timeout", idle) or None
    if h.proxy_100_continue:
        raise Unsupported(f"{where}.proxy_100_continue is not supported (the proxy answers 100-continue itself)")
    if h.path_with_escaped_slashes_action not in (0, 1):  # default / KEEP_UNCHANGED
        raise Unsupported(f"{where}.path_with_escaped_slashes_action is not supported")
    websocket = any(u.upgrade_type.lower() == "websocket" and (not u.HasField("enabled") or u.enabled.value)
                    for u in h.upgrade_configs)
    return HttpManager(
        stat_prefix=h.stat_prefix, rds_name=rds_name, route_table=table,
        filters=compile_http_filters(h.http_filters, where),
        use_remote_address=h.HasField("use_remote_address") and h.use_remote_address.value,
        xff_num_trusted_hops=h.xff_num_trusted_hops, skip_xff_append=h.skip_xff_append,
        generate_request_id=not h.HasField("generate_request_id") or h.generate_request_id.value,
        preserve_external_request_id=h.preserve_external_request_id,
        stream_idle_timeout=opt_dur(h, "stream_idle_timeout", 300.0) or None,
        request_timeout=opt_dur(h, "request_timeout", None) or None,
        max_request_headers_kb=uint(h, "max_request_headers_kb", 60), websocket=websocket,
        server_name=h.server_name or "envoy", codec=hcm_pb2.HttpConnectionManager.CodecType.Name(h.codec_type),
        access_log=len(h.access_log) > 0,
        normalize_path=h.HasField("normalize_path") and h.normalize_path.value, merge_slashes=h.merge_slashes,
        idle_timeout=idle,
        server_header=("OVERWRITE", "APPEND_IF_ABSENT", "PASS_THROUGH")[h.server_header_transformation],
        request_id_in_response=h.always_set_request_id_in_response,
        strip_host_port="any" if h.strip_any_host_port else ("matching" if h.strip_matching_host_port else ""))


def compile_tcp_proxy(t: tcp_proxy_pb2.TcpProxy, where: str) -> TcpProxy:
    check_fields(t, ("stat_prefix", "cluster", "weighted_clusters", "idle_timeout", "access_log",
                     "max_connect_attempts", "metadata_match"), where)
    if t.HasField("metadata_match"):
        raise Unsupported(f"{where}.metadata_match is not supported")
    weighted = tuple((c.name, c.weight) for c in t.weighted_clusters.clusters)
    if not t.cluster and not weighted:
        raise Unsupported(f"{where}: no cluster")
    return TcpProxy(t.stat_prefix, t.cluster or None, weighted, opt_dur(t, "idle_timeout", 3600.0) or None)


def _compile_chain(fc, where: str) -> FilterChain | None:
    check_fields(fc, ("filter_chain_match", "filters", "metadata", "transport_socket", "name"), where)
    if fc.HasField("transport_socket") and not fc.transport_socket.name.endswith("raw_buffer"):
        return None  # TLS-terminating chain: only TLS connections could match; see README (not served yet)
    m = fc.filter_chain_match
    check_fields(m, ("destination_port", "prefix_ranges", "server_names", "transport_protocol",
                     "application_protocols", "source_prefix_ranges", "direct_source_prefix_ranges"), f"{where}.match")
    match = ChainMatch(
        destination_port=m.destination_port.value if m.HasField("destination_port") else None,
        prefix_ranges=_nets(m.prefix_ranges, where), server_names=tuple(s.lower() for s in m.server_names),
        transport_protocol=m.transport_protocol, application_protocols=tuple(m.application_protocols),
        source_prefix_ranges=_nets(m.source_prefix_ranges, where) + _nets(m.direct_source_prefix_ranges, where))
    http = tcp = None
    for i, f in enumerate(fc.filters):
        fw = f"{where}.filters[{i}]({f.name})"
        url = f.typed_config.type_url.rsplit("/", 1)[-1]
        if url == HCM_URL:
            msg = hcm_pb2.HttpConnectionManager()
            f.typed_config.Unpack(msg)
            http = compile_hcm(msg, fw)
        elif url == TCP_URL:
            msg2 = tcp_proxy_pb2.TcpProxy()
            f.typed_config.Unpack(msg2)
            tcp = compile_tcp_proxy(msg2, fw)
        elif f.name in ("istio.metadata_exchange", "istio.stats"):
            continue  # telemetry-only network filters: no effect on traffic
        else:
            raise Unsupported(f"{fw}: network filter {url or f.name} is not supported")
    if http is None and tcp is None:
        raise Unsupported(f"{where}: no http_connection_manager or tcp_proxy filter")
    return FilterChain(fc.name, match, http, tcp)


def compile_listener(lst: listener_pb2.Listener) -> ListenerConfig:
    where = f"Listener {lst.name}"
    check_fields(lst, ("name", "address", "stat_prefix", "filter_chains", "use_original_dst", "default_filter_chain",
                       "per_connection_buffer_limit_bytes", "metadata", "drain_type", "listener_filters",
                       "listener_filters_timeout", "continue_on_listener_filters_timeout", "traffic_direction",
                       "bind_to_port", "access_log", "socket_options", "transparent", "reuse_port",
                       "enable_reuse_port"), where)
    if not lst.address.HasField("socket_address"):
        raise Unsupported(f"{where}.address: only socket addresses are supported")
    sa = lst.address.socket_address
    inspect = od_filter = False
    for lf in lst.listener_filters:
        if lf.name in ("envoy.filters.listener.tls_inspector", "envoy.filters.listener.http_inspector"):
            inspect = True
        elif lf.name == "envoy.filters.listener.original_dst":
            od_filter = True
        else:
            raise Unsupported(f"{where}.listener_filters: {lf.name} is not supported")
    chains = tuple(c for i, fc in enumerate(lst.filter_chains)
                   if (c := _compile_chain(fc, f"{where}.filter_chains[{i}]")) is not None)
    default = None
    if lst.HasField("default_filter_chain"):
        default = _compile_chain(lst.default_filter_chain, f"{where}.default_filter_chain")
    return ListenerConfig(
        name=lst.name, host=sa.address, port=sa.port_value,
        bind_to_port=not lst.HasField("bind_to_port") or lst.bind_to_port.value,
        use_original_dst=lst.HasField("use_original_dst") and lst.use_original_dst.value,
        filter_chains=chains, default_chain=default,
        inspect=inspect and any(c.match.needs_inspection for c in chains), original_dst_filter=od_filter,
        proto=lst)


def _ip(value: str):
    try:
        return ipaddress.ip_address(value.split("%")[0]) if value else None
    except ValueError:  # a host name (explicit proxy to an unresolvable name)
        return None


def select_chain(lc: ListenerConfig, dst_ip: str, dst_port: int, src_ip: str,
                 sni: str = "", transport: str = "raw_buffer", alpn: tuple[str, ...] = ()) -> FilterChain | None:
    """Envoy's filter chain match: most specific wins, criterion by criterion, in Envoy's order."""
    cands = list(lc.filter_chains)

    def narrow(pred_specific, pred_any):
        nonlocal cands
        spec = [c for c in cands if pred_specific(c)]
        cands = spec if spec else [c for c in cands if pred_any(c)]

    narrow(lambda c: c.match.destination_port == dst_port, lambda c: c.match.destination_port is None)
    if cands:
        ip = _ip(dst_ip)

        def best_prefix(c):
            return max((n.prefixlen for n in c.match.prefix_ranges if ip is not None and ip in n), default=-1)
        spec = [c for c in cands if best_prefix(c) >= 0]
        if spec:
            top = max(best_prefix(c) for c in spec)
            cands = [c for c in spec if best_prefix(c) == top]
        else:
            cands = [c for c in cands if not c.match.prefix_ranges]
    if cands:
        sni = sni.lower()

        def sni_ok(c):
            return any(sni == s or (s.startswith("*.") and sni.endswith(s[1:])) for s in c.match.server_names)
        narrow(lambda c: bool(sni) and sni_ok(c), lambda c: not c.match.server_names)
    narrow(lambda c: c.match.transport_protocol == transport, lambda c: not c.match.transport_protocol)
    narrow(lambda c: any(a in c.match.application_protocols for a in alpn), lambda c: not c.match.application_protocols)
    if cands:
        sip = _ip(src_ip)
        narrow(lambda c: sip is not None and any(sip in n for n in c.match.source_prefix_ranges),
               lambda c: not c.match.source_prefix_ranges)
    return cands[0] if cands else lc.default_chain
