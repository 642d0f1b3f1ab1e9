"""EDS: a ClusterLoadAssignment per cluster, endpoints grouped by locality."""

from __future__ import annotations

from collections import defaultdict
from typing import Iterable

from envoy.config.core.v3 import address_pb2, base_pb2, health_check_pb2
from envoy.config.endpoint.v3 import endpoint_components_pb2 as ec
from envoy.config.endpoint.v3 import endpoint_pb2

from ketch.controlplane.translate.service import Endpoint
from ketch.controlplane.translate.util import labels_match, u32


def socket_address(ip: str, port: int) -> address_pb2.Address:
    return address_pb2.Address(
        socket_address=address_pb2.SocketAddress(address=ip, port_value=int(port)))


def locality(text: str) -> base_pb2.Locality:
    region, zone, sub_zone = (text.split("/") + ["", "", ""])[:3]
    return base_pb2.Locality(region=region, zone=zone, sub_zone=sub_zone)


def lb_endpoint(ep: Endpoint) -> ec.LbEndpoint:
    inst = ep.instance
    return ec.LbEndpoint(
        endpoint=ec.Endpoint(address=socket_address(ep.ip, ep.port)),
        health_status=health_check_pb2.HEALTHY if inst.healthy else health_check_pb2.UNHEALTHY,
        load_balancing_weight=u32(max(1, inst.weight)),
    )


def load_assignment(
    cluster_name: str, endpoints: Iterable[Endpoint], subset_labels: dict[str, str] | None = None
) -> endpoint_pb2.ClusterLoadAssignment:
    """Endpoints of one cluster; a subset keeps the instances carrying all its labels.

    Every locality gets a weight (the sum of its endpoints'): gRPC's xDS client drops
    localities without one.
    """
    groups: dict[str, list[Endpoint]] = defaultdict(list)
    for ep in endpoints:
        if subset_labels and not labels_match(subset_labels, ep.instance.labels):
            continue
        groups[ep.instance.locality].append(ep)
    cla = endpoint_pb2.ClusterLoadAssignment(cluster_name=cluster_name)
    for loc in sorted(groups):
        eps = groups[loc]
        cla.endpoints.append(ec.LocalityLbEndpoints(
            locality=locality(loc),
            lb_endpoints=[lb_endpoint(e) for e in eps],
            load_balancing_weight=u32(sum(max(1, e.instance.weight) for e in eps)),
        ))
    return cla
