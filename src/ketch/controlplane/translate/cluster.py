"""CDS: outbound clusters per service port and subset, inbound clusters, and the
Passthrough/BlackHole clusters, with DestinationRule traffic policy applied as Istio does.
"""

from __future__ import annotations

from typing import Any

from envoy.config.cluster.v3 import circuit_breaker_pb2, cluster_pb2, outlier_detection_pb2
from envoy.config.core.v3 import base_pb2, config_source_pb2, protocol_pb2
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2 as hpo
from envoy.type.v3 import percent_pb2
from google.protobuf import struct_pb2

from envoy.config.endpoint.v3 import endpoint_components_pb2 as ec
from envoy.config.endpoint.v3 import endpoint_pb2

from ketch.controlplane.instance import InstanceSource, WorkloadInstance
from ketch.controlplane.translate.endpoint import load_assignment, socket_address
from ketch.controlplane.translate.policy import Policy, policy_for, subset_labels, subset_names
from ketch.controlplane.translate.service import Endpoint, Resolution, Service, ServicePort
from ketch.controlplane.translate.util import attr, cluster_name, duration, enum_name, pack, u32

C = cluster_pb2.Cluster
HTTP_OPTIONS_KEY = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
PASSTHROUGH = "PassthroughCluster"
BLACKHOLE = "BlackHoleCluster"
INBOUND_PASSTHROUGH = "InboundPassthroughClusterIpv4"
DEFAULT_CONNECT_TIMEOUT = "10s"
MAX = 4294967295  # Istio leaves Envoy's breakers effectively off unless the user sets them

_LB = {
    "ROUND_ROBIN": C.ROUND_ROBIN, "LEAST_REQUEST": C.LEAST_REQUEST,
    "LEAST_CONN": C.LEAST_REQUEST, "RANDOM": C.RANDOM, "PASSTHROUGH": C.CLUSTER_PROVIDED,
}


def ads() -> config_source_pb2.ConfigSource:
    return config_source_pb2.ConfigSource(
        ads=config_source_pb2.AggregatedConfigSource(),
        resource_api_version=config_source_pb2.V3,
    )


def connect_timeout(mesh: Any) -> str:
    return attr(mesh, "connect_timeout") or DEFAULT_CONNECT_TIMEOUT


def outbound_clusters(
    service: Service, port: ServicePort, dr: Any, endpoints: tuple[Endpoint, ...],
    mesh: Any = None, default_lb: int = C.LEAST_REQUEST,
) -> list[cluster_pb2.Cluster]:
    """The default cluster of a service port and one per DestinationRule subset."""
    out = []
    for subset in (None, *subset_names(dr)):
        name = cluster_name("outbound", port.number, subset, service.hostname)
        policy = policy_for(dr, port.number, subset)
        c = _base(name, service, port, mesh)
        if service.resolution in (Resolution.DNS, Resolution.DNS_ROUND_ROBIN):
            # DNS names are resolved by the proxy; endpoints travel inline, not over EDS
            eps = endpoints or _dns_self(service, port)
            c.load_assignment.CopyFrom(load_assignment(name, eps, subset_labels(dr, subset)))
        apply_policy(c, policy, port, default_lb)
        c.metadata.CopyFrom(_istio_metadata(service, subset, dr))
        out.append(c)
    return out


def _base(name: str, service: Service, port: ServicePort, mesh: Any) -> cluster_pb2.Cluster:
    c = C(name=name, connect_timeout=duration(connect_timeout(mesh)))
    if service.resolution is Resolution.PASSTHROUGH:
        c.type = C.ORIGINAL_DST
        c.lb_policy = C.CLUSTER_PROVIDED
    elif service.resolution is Resolution.DNS:
        c.type = C.STRICT_DNS
        c.dns_lookup_family = C.V4_ONLY
    elif service.resolution is Resolution.DNS_ROUND_ROBIN:
        c.type = C.LOGICAL_DNS
        c.dns_lookup_family = C.V4_ONLY
    else:
        c.type = C.EDS
        c.eds_cluster_config.CopyFrom(C.EdsClusterConfig(eds_config=ads(), service_name=name))
    return c


def _dns_self(service: Service, port: ServicePort) -> tuple[Endpoint, ...]:
    """A DNS ServiceEntry without endpoints resolves its own host name."""
    inst = WorkloadInstance(name=service.hostname, namespace=service.namespace,
                            address=service.hostname, source=InstanceSource.SERVICE_ENTRY)
    target = port.target_port if isinstance(port.target_port, int) else port.number
    return (Endpoint(instance=inst, port=target),)


def _istio_metadata(service: Service, subset: str | None, dr: Any = None) -> base_pb2.Metadata:
    s = struct_pb2.Struct()
    svc = {"host": service.hostname, "name": service.name, "namespace": service.namespace}
    s.update({"services": [svc], **({"subset": subset} if subset else {})})
    if dr is not None:
        ns = dr.metadata.namespace or "default"
        s.update({"config": f"/apis/networking.istio.io/v1alpha3/namespaces/{ns}"
                            f"/destination-rule/{dr.metadata.name}"})
    return base_pb2.Metadata(filter_metadata={"istio": s})


def apply_policy(c: cluster_pb2.Cluster, policy: Policy, port: ServicePort | None,
                 default_lb: int = C.LEAST_REQUEST) -> None:
    thresholds = circuit_breaker_pb2.CircuitBreakers.Thresholds(
        max_connections=u32(MAX), max_pending_requests=u32(MAX), max_requests=u32(MAX),
        max_retries=u32(MAX), track_remaining=True,
    )
    common = protocol_pb2.HttpProtocolOptions()
    h2 = bool(port and port.protocol.is_http2)
    pool = policy.connection_pool
    tcp, http = attr(pool, "tcp"), attr(pool, "http")
    if attr(tcp, "max_connections") is not None:
        thresholds.max_connections.value = int(tcp.max_connections)
    if attr(tcp, "connect_timeout"):
        c.connect_timeout.CopyFrom(duration(tcp.connect_timeout))
    if attr(tcp, "max_connection_duration"):
        common.max_connection_duration.CopyFrom(duration(tcp.max_connection_duration))
    if attr(http, "http1_max_pending_requests") is not None:
        thresholds.max_pending_requests.value = int(http.http1_max_pending_requests)
    if attr(http, "http2_max_requests") is not None:
        thresholds.max_requests.value = int(http.http2_max_requests)
    if attr(http, "max_retries") is not None:
        thresholds.max_retries.value = int(http.max_retries)
    if attr(http, "max_requests_per_connection"):
        common.max_requests_per_connection.value = int(http.max_requests_per_connection)
    if attr(http, "idle_timeout"):
        common.idle_timeout.CopyFrom(duration(http.idle_timeout))
    if enum_name(attr(http, "h2_upgrade_policy")) == "UPGRADE" and port and port.protocol.is_http:
        h2 = True
    c.circuit_breakers.CopyFrom(circuit_breaker_pb2.CircuitBreakers(thresholds=[thresholds]))
    if port is not None and port.protocol.is_http and (h2 or common.ByteSize()):
        opts = hpo.HttpProtocolOptions()
        if common.ByteSize():
            opts.common_http_protocol_options.CopyFrom(common)
        if h2:
            opts.explicit_http_config.http2_protocol_options.CopyFrom(protocol_pb2.Http2ProtocolOptions())
        else:
            opts.explicit_http_config.http_protocol_options.CopyFrom(protocol_pb2.Http1ProtocolOptions())
        c.typed_extension_protocol_options[HTTP_OPTIONS_KEY].CopyFrom(pack(opts))
    if c.type != C.ORIGINAL_DST:
        _apply_lb(c, policy.load_balancer, default_lb)
    if policy.outlier_detection is not None:
        _apply_outlier(c, policy.outlier_detection)


def _apply_lb(c: cluster_pb2.Cluster, lb: Any, default_lb: int) -> None:
    c.lb_policy = default_lb
    simple = enum_name(attr(lb, "simple"))
    if simple in _LB:
        c.lb_policy = _LB[simple]
        if simple == "PASSTHROUGH":
            c.type = C.ORIGINAL_DST
            c.ClearField("eds_cluster_config")
    hashing = attr(lb, "consistent_hash")
    if hashing is not None:
        if attr(hashing, "maglev") is not None:
            c.lb_policy = C.MAGLEV
            size = attr(hashing, "maglev", "table_size")
            if size:
                c.maglev_lb_config.table_size.value = int(size)
        else:
            c.lb_policy = C.RING_HASH
            size = attr(hashing, "ring_hash", "minimum_ring_size") or attr(
                hashing, "minimum_ring_size") or 1024
            c.ring_hash_lb_config.minimum_ring_size.value = int(size)


def _apply_outlier(c: cluster_pb2.Cluster, od: Any) -> None:
    out = outlier_detection_pb2.OutlierDetection()
    gateway = attr(od, "consecutive_gateway_errors")
    if gateway is None and attr(od, "consecutive_errors") is not None:
        gateway = od.consecutive_errors  # deprecated alias Istio still honours
    if gateway is not None:
        out.consecutive_gateway_failure.value = int(gateway)
        out.enforcing_consecutive_gateway_failure.value = 100 if int(gateway) > 0 else 0
    five = attr(od, "consecutive_5xx_errors")
    if five is not None:
        out.consecutive_5xx.value = int(five)
        out.enforcing_consecutive_5xx.value = 100 if int(five) > 0 else 0
    elif gateway is not None:
        out.enforcing_consecutive_5xx.value = 0  # only gateway errors were asked for
    local = attr(od, "consecutive_local_origin_failures")
    if local is not None:
        out.consecutive_local_origin_failure.value = int(local)
        out.enforcing_consecutive_local_origin_failure.value = 100
    if attr(od, "split_external_local_origin_errors"):
        out.split_external_local_origin_errors = True
    if attr(od, "interval"):
        out.interval.CopyFrom(duration(od.interval))
    if attr(od, "base_ejection_time"):
        out.base_ejection_time.CopyFrom(duration(od.base_ejection_time))
    if attr(od, "max_ejection_percent") is not None:
        out.max_ejection_percent.value = int(od.max_ejection_percent)
    c.outlier_detection.CopyFrom(out)
    if attr(od, "min_health_percent") is not None:
        c.common_lb_config.healthy_panic_threshold.CopyFrom(
            percent_pb2.Percent(value=float(od.min_health_percent)))


def inbound_cluster(port: int, target: int, mesh: Any = None,
                    http2: bool = False, ip: str = "127.0.0.1") -> cluster_pb2.Cluster:
    """`inbound|PORT||`: the application on loopback at its target port (HTTP/2 to a
    gRPC/HTTP2 port, as the client spoke it)."""
    name = cluster_name("inbound", port, None, "")
    c = C(name=name, type=C.STATIC, connect_timeout=duration(connect_timeout(mesh)),
          lb_policy=C.ROUND_ROBIN)
    c.load_assignment.CopyFrom(endpoint_pb2.ClusterLoadAssignment(
        cluster_name=name,
        endpoints=[ec.LocalityLbEndpoints(lb_endpoints=[ec.LbEndpoint(
            endpoint=ec.Endpoint(address=socket_address(ip, target)))])],
    ))
    if http2:
        opts = hpo.HttpProtocolOptions()
        opts.explicit_http_config.http2_protocol_options.CopyFrom(protocol_pb2.Http2ProtocolOptions())
        c.typed_extension_protocol_options[HTTP_OPTIONS_KEY].CopyFrom(pack(opts))
    return c


def passthrough_clusters(mesh: Any = None) -> list[cluster_pb2.Cluster]:
    timeout = duration(connect_timeout(mesh))
    return [
        C(name=BLACKHOLE, type=C.STATIC, connect_timeout=timeout),
        C(name=PASSTHROUGH, type=C.ORIGINAL_DST, lb_policy=C.CLUSTER_PROVIDED,
          connect_timeout=timeout),
        C(name=INBOUND_PASSTHROUGH, type=C.ORIGINAL_DST, lb_policy=C.CLUSTER_PROVIDED,
          connect_timeout=timeout),
    ]
