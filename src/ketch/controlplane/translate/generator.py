"""`generate(snapshot, proxy, type_url)`: dispatch by resource type and proxy type."""

from __future__ import annotations

from typing import Collection

from google.protobuf.message import Message

from ketch.controlplane.node import ProxyNode, ProxyType
from ketch.controlplane.snapshot import Snapshot
from ketch.controlplane.translate import grpc, outbound
from ketch.controlplane.translate.scope import ProxyScope

LISTENER = "type.googleapis.com/envoy.config.listener.v3.Listener"
ROUTE = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
CLUSTER = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
ENDPOINT = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
TYPE_URLS = (CLUSTER, ENDPOINT, LISTENER, ROUTE)  # Envoy's warming order


def generate(snapshot: Snapshot, proxy: ProxyNode, type_url: str,
             names: Collection[str] | None = None) -> dict[str, Message]:
    scope = ProxyScope.of(snapshot, proxy)
    # The result depends on these inputs only (not on the proxy's id or, beyond the inbound
    # ports it implies, its address), so replicas of a workload share one result.
    sidecar = scope.sidecar
    key = (
        "generate", type_url, proxy.type, proxy.namespace, proxy.interception_mode,
        None if sidecar is None else (sidecar.metadata.namespace, sidecar.metadata.name),
        tuple(sorted(proxy.labels.items())) if type_url in (ROUTE, LISTENER) else None,
        tuple(scope.inbound())
        if type_url in (CLUSTER, LISTENER) else None,
        tuple(sorted(names)) if names is not None and type_url == LISTENER else None,
    )
    return dict(snapshot.memo(key, lambda: _generate(scope, type_url, names)))


def _generate(scope: ProxyScope, type_url: str, names: Collection[str] | None) -> dict[str, Message]:
    proxy = scope.proxy
    is_grpc = proxy.type is ProxyType.GRPC
    if type_url == CLUSTER:
        return dict(outbound.clusters(scope, grpc=is_grpc))
    if type_url == ENDPOINT:
        return dict(outbound.load_assignments(scope))
    if type_url == LISTENER:
        if is_grpc:
            return dict(grpc.listeners(scope, names))
        if proxy.type is ProxyType.ROUTER:
            return dict(outbound.router_listeners(scope))
        return dict(outbound.sidecar_listeners(scope))
    if type_url == ROUTE:
        if is_grpc:
            return dict(grpc.routes(scope))
        if proxy.type is ProxyType.ROUTER:
            return dict(outbound.router_routes(scope))
        return dict(outbound.sidecar_routes(scope))
    raise ValueError(f"unsupported type URL {type_url!r}")
