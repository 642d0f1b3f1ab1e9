"""A fake xDS status provider for the REST and CLI tests, with a real Envoy config dump."""

from __future__ import annotations

from typing import Any

from envoy.admin.v3 import config_dump_pb2 as cd
from envoy.admin.v3 import config_dump_shared_pb2 as cds
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import address_pb2
from envoy.config.endpoint.v3 import endpoint_components_pb2, endpoint_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_components_pb2, route_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm,
)
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2
from google.protobuf import json_format

LDS = "type.googleapis.com/envoy.config.listener.v3.Listener"
RDS = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
CDS = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
EDS = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"

PRODUCTPAGE = "sidecar~10.10.0.5~productpage-v1-7d8f.default~default.svc.cluster.local"
REVIEWS = "sidecar~10.10.0.7~reviews-v1-abcd.default~default.svc.cluster.local"
GATEWAY = "router~10.10.0.2~istio-ingressgateway-1.istio-system~istio-system.svc.cluster.local"


def _addr(ip: str, port: int) -> address_pb2.Address:
    return address_pb2.Address(socket_address=address_pb2.SocketAddress(address=ip, port_value=port))


def _listeners() -> list[listener_pb2.Listener]:
    tcp = tcp_proxy_pb2.TcpProxy(stat_prefix="PassthroughCluster", cluster="PassthroughCluster")
    outbound = listener_pb2.Listener(name="virtualOutbound", address=_addr("0.0.0.0", 15001))
    chain = outbound.filter_chains.add(name="virtualOutbound-catchall-tcp")
    chain.filters.add(name="envoy.filters.network.tcp_proxy").typed_config.Pack(tcp)
    http = listener_pb2.Listener(name="0.0.0.0_9080", address=_addr("0.0.0.0", 9080))
    manager = hcm.HttpConnectionManager(stat_prefix="outbound_0.0.0.0_9080")
    manager.rds.route_config_name = "9080"
    http.filter_chains.add().filters.add(
        name="envoy.filters.network.http_connection_manager"
    ).typed_config.Pack(manager)
    return [outbound, http]


def _routes() -> list[route_pb2.RouteConfiguration]:
    rc = route_pb2.RouteConfiguration(name="9080")
    vh = rc.virtual_hosts.add(
        name="reviews.default.svc.cluster.local:9080",
        domains=["reviews.default.svc.cluster.local", "reviews", "reviews.default", "10.96.0.7"],
    )
    route = vh.routes.add(name="reviews-v2-for-jason")
    route.match.prefix = "/"
    route.route.cluster = "outbound|9080|v2|reviews.default.svc.cluster.local"
    route.metadata.filter_metadata["istio"].update(
        {"config": "/apis/networking.istio.io/v1/namespaces/default/virtual-service/reviews"}
    )
    return [rc]


def _clusters() -> list[cluster_pb2.Cluster]:
    out = []
    for subset in ("", "v1", "v2"):
        c = cluster_pb2.Cluster(name=f"outbound|9080|{subset}|reviews.default.svc.cluster.local",
                                type=cluster_pb2.Cluster.EDS)
        out.append(c)
    out.append(cluster_pb2.Cluster(name="inbound|9080||", type=cluster_pb2.Cluster.STATIC))
    out.append(cluster_pb2.Cluster(name="PassthroughCluster", type=cluster_pb2.Cluster.ORIGINAL_DST))
    return out


def _endpoints() -> list[endpoint_pb2.ClusterLoadAssignment]:
    cla = endpoint_pb2.ClusterLoadAssignment(cluster_name="outbound|9080|v1|reviews.default.svc.cluster.local")
    locality = cla.endpoints.add()
    for ip, health in (("10.10.0.7", 1), ("10.10.0.8", 2)):
        ep = locality.lb_endpoints.add(health_status=health)
        ep.endpoint.address.CopyFrom(_addr(ip, 9080))
    return [cla]


def config_dump() -> dict[str, Any]:
    listeners = cds.ListenersConfigDump(version_info="v7")
    for item in _listeners():
        state = listeners.dynamic_listeners.add(name=item.name).active_state
        state.version_info = "v7"
        state.listener.Pack(item)
    clusters = cds.ClustersConfigDump(version_info="v7")
    for item in _clusters():
        clusters.dynamic_active_clusters.add(version_info="v7").cluster.Pack(item)
    routes = cds.RoutesConfigDump()
    for item in _routes():
        routes.dynamic_route_configs.add(version_info="v7").route_config.Pack(item)
    endpoints = cds.EndpointsConfigDump()
    for item in _endpoints():
        endpoints.dynamic_endpoint_configs.add(version_info="v7").endpoint_config.Pack(item)
    dump = cd.ConfigDump()
    for section in (listeners, clusters, routes, endpoints):
        dump.configs.add().Pack(section)
    return json_format.MessageToDict(dump)


def _types(statuses: dict[str, tuple[str, str]]) -> dict[str, Any]:
    names = {LDS: "LDS", RDS: "RDS", CDS: "CDS", EDS: "EDS"}
    return {
        url: {"type": names[url], "status": status, "versionSent": "v7",
              "versionAcked": "v7" if status == "SYNCED" else "v6", "error": err or None}
        for url, (status, err) in statuses.items()
    }


class FakeProxies:
    """What the xDS server would report: three proxies in different states."""

    def __init__(self) -> None:
        synced = ("SYNCED", "")
        self.items = [
            {"id": PRODUCTPAGE, "type": "sidecar", "namespace": "default", "version": "v7",
             "types": _types({CDS: synced, LDS: synced, EDS: synced, RDS: synced})},
            {"id": REVIEWS, "type": "sidecar", "namespace": "default", "version": "v7",
             "types": _types({CDS: synced, LDS: ("NACK", "unsupported field: max_grpc_timeout"),
                              EDS: ("STALE", ""), RDS: synced})},
            {"id": GATEWAY, "type": "router", "namespace": "istio-system", "version": "v7",
             "types": _types({CDS: synced, LDS: synced})},
        ]

    def proxies(self) -> list[dict[str, Any]]:
        return self.items

    def config_dump(self, proxy_id: str) -> dict[str, Any] | None:
        return config_dump() if proxy_id in (p["id"] for p in self.items) else None

    def metrics_text(self) -> str:
        return "# TYPE pilot_xds gauge\npilot_xds 3\n"
