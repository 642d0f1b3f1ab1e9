"""Per-proxy assembly for sidecars and routers: which listeners, route configurations,
clusters and load assignments a proxy gets."""

from __future__ import annotations

from typing import Any

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.config.route.v3 import route_pb2

from ketch.controlplane.node import InterceptionMode
from ketch.controlplane.translate import listener as lds
from ketch.controlplane.translate import route as rds
from ketch.controlplane.translate.cluster import (
    BLACKHOLE, PASSTHROUGH, inbound_cluster, outbound_clusters, passthrough_clusters,
)
from ketch.controlplane.translate.endpoint import load_assignment
from ketch.controlplane.translate.policy import policy_for, subset_labels, subset_names
from ketch.controlplane.translate.route_match import MatchContext, applies, gateway_names
from ketch.controlplane.translate.scope import ProxyScope, gateway_key, servers_by_port
from ketch.controlplane.translate.service import Protocol, Resolution, Service, ServicePort
from ketch.controlplane.translate import tls_route
from ketch.controlplane.translate.util import (
    attr, cluster_name, duration, enum_name, host_matches, seq,
)

C = cluster_pb2.Cluster


def _dr_key(dr: Any) -> tuple | None:
    return None if dr is None else (dr.metadata.namespace, dr.metadata.name)


# -- CDS / EDS -------------------------------------------------------------------------
_GRPC_LB = {C.ROUND_ROBIN, C.RING_HASH, C.LEAST_REQUEST}


def _grpc_compatible(built: list[cluster_pb2.Cluster], grpc: bool) -> list[cluster_pb2.Cluster]:
    """gRPC clients NACK load balancers they lack: Maglev hashes on a ring, RANDOM is
    round robin."""
    if not grpc:
        return built
    for c in built:
        if c.lb_policy == C.MAGLEV:
            c.lb_policy = C.RING_HASH
            c.ClearField("maglev_lb_config")
        elif c.lb_policy not in _GRPC_LB:
            c.lb_policy = C.ROUND_ROBIN
    return built

def clusters(scope: ProxyScope, grpc: bool = False) -> dict[str, cluster_pb2.Cluster]:
    snap = scope.snapshot
    out: dict[str, cluster_pb2.Cluster] = {}
    default_lb = C.ROUND_ROBIN if grpc else C.LEAST_REQUEST
    for svc in scope.services:
        dr = scope.destination_rule(svc)
        for port in svc.ports:
            if port.protocol is Protocol.UDP:
                continue
            key = ("clusters", svc.kind, svc.namespace, svc.hostname, port.number,
                   _dr_key(dr), grpc)
            built = snap.memo(key, lambda: _grpc_compatible(outbound_clusters(
                svc, port, dr, snap.endpoints(svc, port), snap.mesh, default_lb), grpc))
            for c in built:
                if grpc and c.type not in (C.EDS, C.LOGICAL_DNS):
                    continue  # gRPC's xDS client rejects other discovery types
                out.setdefault(c.name, c)
    if grpc:
        return out
    for c in passthrough_clusters(snap.mesh):
        out[c.name] = c
    for ib in scope.inbound():
        c = inbound_cluster(ib.port, ib.endpoint_port, snap.mesh, http2=ib.protocol.is_http2,
                            ip=ib.endpoint_ip)
        out.setdefault(c.name, c)
    return out


def load_assignments(scope: ProxyScope) -> dict[str, endpoint_pb2.ClusterLoadAssignment]:
    snap = scope.snapshot
    out: dict[str, endpoint_pb2.ClusterLoadAssignment] = {}
    for svc in scope.services:
        if svc.resolution is not Resolution.CLIENT_SIDE_LB:
            continue
        dr = scope.destination_rule(svc)
        for port in svc.ports:
            if port.protocol is Protocol.UDP:
                continue
            for subset in (None, *subset_names(dr)):
                name = cluster_name("outbound", port.number, subset, svc.hostname)
                if name in out:
                    continue
                labels = subset_labels(dr, subset)
                # load_assignment reads exactly: the name, the subset labels and the
                # endpoints (each one's instance fields and port, compared whole)
                key = ("cla", name, tuple(sorted(labels.items())))
                eps = snap.endpoints(svc, port)
                out[name] = snap.memo_inputs(key, eps, lambda: load_assignment(name, eps, labels))
    return out


# -- sidecar LDS / RDS -----------------------------------------------------------------
def _http_ports(scope: ProxyScope) -> dict[int, list[tuple[Service, ServicePort]]]:
    ports: dict[int, list[tuple[Service, ServicePort]]] = {}
    for svc in scope.services:
        for port in svc.ports:
            if port.protocol.is_http:
                ports.setdefault(port.number, []).append((svc, port))
    return ports


def tcp_route(scope: ProxyScope, svc: Service, port: ServicePort,
              gateways: frozenset[str] = frozenset({"mesh"})) -> list[tuple[str, int]]:
    """Weighted clusters of the first applicable VirtualService TCP rule, else the service."""
    ctx = scope.match_context(port.number, gateways)
    vs = rds.virtual_service_for(scope.snapshot, svc.hostname, ctx)
    if vs is not None:
        weighted = _tcp_rule(vs, ctx, scope, port.number)
        if weighted:
            return weighted
    return [(cluster_name("outbound", port.number, None, svc.hostname), 1)]


def _tcp_rule(vs: Any, ctx: MatchContext, scope: ProxyScope, port: int) -> list[tuple[str, int]]:
    ns = vs.metadata.namespace or "default"
    for rule in seq(attr(vs.spec, "tcp")):
        matches = seq(attr(rule, "match"))
        if matches and not any(applies(m, ctx, ns) for m in matches):
            continue
        out = []
        rctx = rds.RouteContext(scope.snapshot, ctx)
        dests = seq(attr(rule, "route"))
        for d in dests:
            weight = int(attr(d, "weight") or (100 if len(dests) == 1 else 0))
            if weight > 0:
                out.append((rds.destination_cluster(d.destination, ns, rctx), weight))
        if out:
            return out
    return []


def sidecar_listeners(scope: ProxyScope) -> dict[str, listener_pb2.Listener]:
    out: list[listener_pb2.Listener] = []
    catch_all = PASSTHROUGH if scope.allow_any else BLACKHOLE
    # Process mode has no capture: the app's HTTP_PROXY points at 127.0.0.1:15001 and the
    # proxy hands each absolute-form request or CONNECT tunnel to the same per-port
    # listeners a redirected connection would reach.
    explicit = scope.proxy.interception_mode is InterceptionMode.NONE
    out.append(lds.virtual_outbound(catch_all, "127.0.0.1" if explicit else "0.0.0.0"))
    http_ports = _http_ports(scope)
    for port in sorted(http_ports):
        out.append(lds.outbound_http_listener(port))
    for svc in scope.services:
        for port in svc.ports:
            if port.protocol.is_http or port.protocol is Protocol.UDP:
                continue
            if svc.resolution is Resolution.PASSTHROUGH and not svc.vip:
                continue
            ip = svc.vip or "0.0.0.0"
            if ip == "0.0.0.0" and port.number in http_ports:
                continue  # the HTTP listener owns the wildcard address of this port
            out.append(_opaque_listener(scope, svc, port, ip))
    inbound = [(ib.port, ib.protocol.is_http) for ib in scope.inbound()]
    out.append(lds.virtual_inbound(inbound))
    result: dict[str, listener_pb2.Listener] = {}
    for lis in out:
        result.setdefault(lis.name, lis)  # two services on one VIP:port: the first wins
    return result


def _opaque_listener(scope: ProxyScope, svc: Service, port: ServicePort,
                     ip: str) -> listener_pb2.Listener:
    """tcp_proxy for an opaque port; TLS ports with VirtualService `tls` rules route by SNI."""
    default = tcp_route(scope, svc, port)
    if port.protocol in (Protocol.TLS, Protocol.HTTPS):
        ctx = scope.match_context(port.number)
        vs = rds.virtual_service_for(scope.snapshot, svc.hostname, ctx)
        rules = tls_route.sni_rules(vs, ctx, scope) if vs is not None else []
        if rules:
            return tls_route.sni_listener(f"{ip}_{port.number}", ip, port.number, rules,
                                          default, bind=False)
    # DestinationRule connectionPool.tcp.idleTimeout bounds an idle tunnel (Istio ≥ 1.21)
    idle = attr(policy_for(scope.destination_rule(svc), port.number).connection_pool,
                "tcp", "idle_timeout")
    return lds.outbound_tcp_listener(ip, port.number, default, duration(idle) if idle else None)


def sidecar_routes(scope: ProxyScope) -> dict[str, route_pb2.RouteConfiguration]:
    out: dict[str, route_pb2.RouteConfiguration] = {}
    for port, members in sorted(_http_ports(scope).items()):
        rctx = rds.RouteContext(scope.snapshot, scope.match_context(port))
        vhosts = [rds.service_virtual_host(svc, p, rctx) for svc, p in members]
        vhosts.append(rds.fallback_virtual_host(scope.allow_any))
        out[str(port)] = rds.route_configuration(str(port), vhosts)
    return out


# -- router (gateway) LDS / RDS --------------------------------------------------------
_HTTP = {"HTTP", "HTTP2", "GRPC", "GRPC-WEB"}


def _server_protocol(server: Any) -> str:
    return (enum_name(attr(server, "port", "protocol")) or "HTTP").upper()


def router_listeners(scope: ProxyScope) -> dict[str, listener_pb2.Listener]:
    out: dict[str, listener_pb2.Listener] = {}
    for port, servers in sorted(servers_by_port(scope.gateways()).items()):
        protocols = {_server_protocol(s) for _, s in servers}
        tls_modes = {enum_name(attr(s, "tls", "mode")) for _, s in servers}
        if protocols & _HTTP:
            lis = lds.gateway_http_listener(port)
        elif protocols & {"TLS", "HTTPS"} and tls_modes & {"PASSTHROUGH", "AUTO_PASSTHROUGH"}:
            gws = frozenset(gateway_key(gw) for gw, _ in servers)
            sni = tls_route.gateway_passthrough(scope, port, servers, gws)
            if sni is None:
                continue
            lis = sni
        elif protocols & {"TCP", "MONGO", "MYSQL", "REDIS"}:
            weighted = _gateway_tcp(scope, port, servers)
            if not weighted:
                continue
            lis = lds.gateway_tcp_listener(port, weighted)
        else:
            continue  # HTTPS/TLS servers need certificates: the security work adds them
        out[lis.name] = lis
    return out


def _gateway_tcp(scope: ProxyScope, port: int, servers: list) -> list[tuple[str, int]]:
    gws = frozenset(gateway_key(gw) for gw, _ in servers)
    ctx = scope.match_context(port, gws)
    for vs in scope.snapshot.virtual_services:
        if gateway_names(vs) & gws and scope.snapshot.vs_visible(vs, scope.proxy.namespace):
            weighted = _tcp_rule(vs, ctx, scope, port)
            if weighted:
                return weighted
    return []


def router_routes(scope: ProxyScope) -> dict[str, route_pb2.RouteConfiguration]:
    out: dict[str, route_pb2.RouteConfiguration] = {}
    for port, servers in sorted(servers_by_port(scope.gateways()).items()):
        http_servers = [(gw, s) for gw, s in servers if _server_protocol(s) in _HTTP]
        if not http_servers:
            continue
        name = f"http.{port}"
        out[name] = rds.route_configuration(name, _gateway_vhosts(scope, port, http_servers))
    return out


def _gateway_vhosts(scope: ProxyScope, port: int, servers: list) -> list[rc.VirtualHost]:
    gws = frozenset(gateway_key(gw) for gw, _ in servers)
    rctx = rds.RouteContext(scope.snapshot, scope.match_context(port, gws))
    by_host: dict[str, list[rc.Route]] = {}
    redirect: set[str] = set()
    for vs in scope.snapshot.virtual_services:
        vs_ns = vs.metadata.namespace or "default"
        bound = gateway_names(vs) & gws
        if not bound or not scope.snapshot.vs_visible(vs, scope.proxy.namespace):
            continue
        for h in seq(attr(vs.spec, "hosts")):
            host = str(h)
            allowing = [s for gw, s in servers
                        if gateway_key(gw) in bound and _server_allows(gw, s, vs_ns, host)]
            if not allowing:
                continue
            by_host.setdefault(host, []).extend(rds.vs_routes(vs, rctx))
            if any(attr(s, "tls", "https_redirect") for s in allowing):
                redirect.add(host)
    vhosts = []
    for host in sorted(by_host, key=lambda h: (h == "*", h)):
        domains = ["*"] if host == "*" else [host, f"{host}:{port}"]
        vh = rc.VirtualHost(name=f"{host}:{port}", domains=domains, routes=by_host[host],
                            include_request_attempt_count=True)
        if host in redirect:
            vh.require_tls = rc.VirtualHost.ALL  # Gateway tls.httpsRedirect: 301 to https
        vhosts.append(vh)
    if not vhosts:
        vhosts.append(rc.VirtualHost(name=f"blackhole:{port}", domains=["*"], routes=[rc.Route(
            name="default", match=rc.RouteMatch(prefix="/"),
            direct_response=rc.DirectResponseAction(status=404))]))
    return vhosts


def _server_allows(gw: Any, server: Any, vs_ns: str, host: str) -> bool:
    gw_ns = gw.metadata.namespace or "default"
    for entry in seq(attr(server, "hosts")):
        ns, _, pattern = str(entry).partition("/")
        if not pattern:
            ns, pattern = "*", ns
        if ns == "." and vs_ns != gw_ns:
            continue
        if ns not in ("*", ".") and ns != vs_ns:
            continue
        if host_matches(pattern, host) or host_matches(host, pattern):
            return True
    return False


__all__ = [
    "clusters", "load_assignments", "sidecar_listeners", "sidecar_routes",
    "router_listeners", "router_routes", "tcp_route",
]
