"""LDS builders: the HTTP connection manager, tcp_proxy, and the sidecar and router
listeners in Istio's shapes (contracts §4)."""

from __future__ import annotations

from typing import Any, Iterable

from envoy.config.core.v3 import base_pb2
from envoy.config.listener.v3 import listener_components_pb2 as lc
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.config.route.v3 import route_pb2
from envoy.extensions.filters.http.cors.v3 import cors_pb2
from envoy.extensions.filters.http.fault.v3 import fault_pb2
from envoy.extensions.filters.http.router.v3 import router_pb2
from envoy.extensions.filters.listener.original_dst.v3 import original_dst_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2
from google.protobuf import duration_pb2, wrappers_pb2

from ketch.controlplane.translate.cluster import INBOUND_PASSTHROUGH, ads
from ketch.controlplane.translate.endpoint import socket_address
from ketch.controlplane.translate.route_action import CORS, FAULT, ROUTER
from ketch.controlplane.translate.util import pack

HCM = "envoy.filters.network.http_connection_manager"
TCP_PROXY = "envoy.filters.network.tcp_proxy"
ORIGINAL_DST = "envoy.filters.listener.original_dst"
OUTBOUND_PORT, INBOUND_PORT = 15001, 15006
Manager = hcm_pb2.HttpConnectionManager


def http_filter(name: str, message: Any) -> hcm_pb2.HttpFilter:
    return hcm_pb2.HttpFilter(name=name, typed_config=pack(message))


def outbound_http_filters(grpc: bool = False) -> list[hcm_pb2.HttpFilter]:
    """fault, cors, (authn/authz/ratelimit hooks), router; gRPC clients lack CORS."""
    filters = [http_filter(FAULT, fault_pb2.HTTPFault())]
    if not grpc:
        filters.append(http_filter(CORS, cors_pb2.Cors()))
    filters.append(http_filter(ROUTER, router_pb2.Router()))
    return filters


def inbound_http_filters() -> list[hcm_pb2.HttpFilter]:
    return [http_filter(ROUTER, router_pb2.Router())]


def http_connection_manager(
    stat_prefix: str, *, rds: str | None = None,
    route_config: route_pb2.RouteConfiguration | None = None,
    filters: Iterable[hcm_pb2.HttpFilter] | None = None, gateway: bool = False,
) -> Manager:
    m = Manager(stat_prefix=stat_prefix, codec_type=Manager.AUTO,
                http_filters=list(filters if filters is not None else outbound_http_filters()))
    if rds is not None:
        m.rds.CopyFrom(hcm_pb2.Rds(config_source=ads(), route_config_name=rds))
    elif route_config is not None:
        m.route_config.CopyFrom(route_config)
    m.use_remote_address.value = gateway  # the edge owns x-forwarded-for, sidecars append
    return m


def hcm_filter(manager: Manager) -> lc.Filter:
    return lc.Filter(name=HCM, typed_config=pack(manager))


def tcp_proxy_filter(stat_prefix: str, cluster: str | None = None,
                     weighted: Iterable[tuple[str, int]] = (),
                     idle_timeout: Any = None) -> lc.Filter:
    tp = tcp_proxy_pb2.TcpProxy(stat_prefix=stat_prefix)
    if idle_timeout is not None:
        tp.idle_timeout.CopyFrom(idle_timeout)
    weighted = list(weighted)
    if len(weighted) > 1:
        for name, weight in weighted:
            tp.weighted_clusters.clusters.append(
                tcp_proxy_pb2.TcpProxy.WeightedCluster.ClusterWeight(name=name, weight=weight))
    else:
        tp.cluster = weighted[0][0] if weighted else (cluster or "")
    return lc.Filter(name=TCP_PROXY, typed_config=pack(tp))


def listener(name: str, ip: str, port: int, chains: list[lc.FilterChain], *,
             bind: bool = True, direction: int = base_pb2.OUTBOUND,
             original_dst: bool = False) -> listener_pb2.Listener:
    out = listener_pb2.Listener(name=name, address=socket_address(ip, port),
                                filter_chains=chains, traffic_direction=direction)
    if not bind:
        out.bind_to_port.CopyFrom(wrappers_pb2.BoolValue(value=False))
    if original_dst:
        out.use_original_dst.CopyFrom(wrappers_pb2.BoolValue(value=True))
    return out


def virtual_outbound(catch_all_cluster: str, ip: str = "0.0.0.0") -> listener_pb2.Listener:
    chain = lc.FilterChain(name="virtualOutbound-catchall-tcp",
                           filters=[tcp_proxy_filter(catch_all_cluster, catch_all_cluster)])
    return listener("virtualOutbound", ip, OUTBOUND_PORT, [chain], original_dst=True)


def outbound_http_listener(port: int) -> listener_pb2.Listener:
    name = f"0.0.0.0_{port}"
    manager = http_connection_manager(f"outbound_{name}", rds=str(port))
    return listener(name, "0.0.0.0", port, [lc.FilterChain(filters=[hcm_filter(manager)])],
                    bind=False)


def outbound_tcp_listener(ip: str, port: int, weighted: list[tuple[str, int]],
                          idle_timeout: Any = None) -> listener_pb2.Listener:
    name = f"{ip}_{port}"
    stat = weighted[0][0] if len(weighted) == 1 else name
    chain = lc.FilterChain(filters=[tcp_proxy_filter(stat, weighted=weighted,
                                                     idle_timeout=idle_timeout)])
    return listener(name, ip, port, [chain], bind=False)


def inbound_chain(target: int, http: bool) -> lc.FilterChain:
    cluster = f"inbound|{target}||"
    match = lc.FilterChainMatch(destination_port=wrappers_pb2.UInt32Value(value=target))
    if not http:
        return lc.FilterChain(name=cluster, filter_chain_match=match,
                              filters=[tcp_proxy_filter(cluster, cluster)])
    route = rc.Route(name="default", match=rc.RouteMatch(prefix="/"),
                     route=rc.RouteAction(cluster=cluster, timeout=duration_pb2.Duration()))
    config = route_pb2.RouteConfiguration(name=cluster, validate_clusters=wrappers_pb2.BoolValue(value=False), virtual_hosts=[
        rc.VirtualHost(name=f"inbound|http|{target}", domains=["*"], routes=[route])])
    manager = http_connection_manager(f"inbound_0.0.0.0_{target}", route_config=config,
                                      filters=inbound_http_filters())
    return lc.FilterChain(name=cluster, filter_chain_match=match, filters=[hcm_filter(manager)])


def virtual_inbound(ports: Iterable[tuple[int, bool]]) -> listener_pb2.Listener:
    """One chain per inbound target port, and a passthrough chain for undeclared ports."""
    chains = [inbound_chain(p, http) for p, http in sorted(set(ports))]
    chains.append(lc.FilterChain(name="inbound-passthrough", filters=[
        tcp_proxy_filter(INBOUND_PASSTHROUGH, INBOUND_PASSTHROUGH)]))
    out = listener("virtualInbound", "0.0.0.0", INBOUND_PORT, chains, direction=base_pb2.INBOUND)
    out.listener_filters.append(lc.ListenerFilter(
        name=ORIGINAL_DST, typed_config=pack(original_dst_pb2.OriginalDst())))
    return out


def gateway_http_listener(port: int) -> listener_pb2.Listener:
    name = f"0.0.0.0_{port}"
    manager = http_connection_manager(f"outbound_{name}", rds=f"http.{port}", gateway=True)
    return listener(name, "0.0.0.0", port, [lc.FilterChain(filters=[hcm_filter(manager)])])


def gateway_tcp_listener(port: int, weighted: list[tuple[str, int]]) -> listener_pb2.Listener:
    name = f"0.0.0.0_{port}"
    stat = weighted[0][0] if len(weighted) == 1 else name
    return listener(name, "0.0.0.0", port,
                    [lc.FilterChain(filters=[tcp_proxy_filter(stat, weighted=weighted)])])


def api_listener(name: str, ip: str | None, port: int, route_name: str) -> listener_pb2.Listener:
    """Proxyless gRPC: an API listener whose HCM fetches its routes over ADS."""
    manager = http_connection_manager(name, rds=route_name, filters=outbound_http_filters(grpc=True))
    manager.ClearField("use_remote_address")
    manager.ClearField("codec_type")
    out = listener_pb2.Listener(name=name, address=socket_address(ip or "0.0.0.0", port))
    out.api_listener.api_listener.CopyFrom(pack(manager))
    return out
