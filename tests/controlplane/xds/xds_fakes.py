"""A fake snapshot, generator and node parser, so the server is tested on its own."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from envoy.config.cluster.v3.cluster_pb2 import Cluster
from envoy.config.endpoint.v3.endpoint_pb2 import ClusterLoadAssignment
from envoy.config.listener.v3.listener_pb2 import Listener
from envoy.config.route.v3.route_pb2 import RouteConfiguration
from google.protobuf.message import Message

from ketch.controlplane.xds.types import CLUSTER, ENDPOINT, LISTENER, ROUTE


@dataclass(frozen=True)
class FakeProxy:
    id: str
    group: str = "a"
    type: str = "sidecar"

    def scope_key(self) -> tuple:
        return (self.group,)


def parse_node(node) -> FakeProxy:
    group = node.metadata.fields["GROUP"].string_value if "GROUP" in node.metadata.fields else "a"
    if node.id.startswith("bad"):
        raise ValueError("unparseable node id")
    return FakeProxy(node.id, group or "a")


def world(services: Mapping[str, list[str]], *, route_weight: int = 1,
          lb: int = 0) -> dict[str, dict[str, Message]]:
    """A snapshot: service name -> endpoint addresses, one listener and route table."""
    clusters = {f"outbound|80||{s}": Cluster(name=f"outbound|80||{s}", lb_policy=lb)
                for s in services}
    endpoints = {}
    for s, addrs in services.items():
        cla = ClusterLoadAssignment(cluster_name=f"outbound|80||{s}")
        group = cla.endpoints.add()
        for a in addrs:
            sa = group.lb_endpoints.add().endpoint.address.socket_address
            sa.address, sa.port_value = a, 80
        endpoints[cla.cluster_name] = cla
    listeners = {"0.0.0.0_80": Listener(name="0.0.0.0_80")}
    route = RouteConfiguration(name="80")
    for s in services:
        vh = route.virtual_hosts.add(name=f"{s}:80", domains=[s])
        vh.routes.add().route.cluster = f"outbound|80||{s}"
    route.virtual_hosts.add(name="weight", domains=[str(route_weight)])
    return {CLUSTER: clusters, ENDPOINT: endpoints, LISTENER: listeners, ROUTE: {"80": route}}


class FakeGenerator:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def __call__(self, snapshot, proxy, type_url, names=None):
        self.calls.append((proxy.group, type_url))
        return snapshot.get(type_url, {})
