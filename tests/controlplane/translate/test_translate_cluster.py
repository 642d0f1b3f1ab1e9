from __future__ import annotations

import pytest
from envoy.config.cluster.v3 import cluster_pb2
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2 as hpo

from ketch.controlplane.instance import WorkloadInstance
from ketch.controlplane.translate.cluster import HTTP_OPTIONS_KEY, MAX, outbound_clusters
from ketch.controlplane.translate.policy import policy_for
from ketch.controlplane.translate.service import (
    Endpoint, Protocol, Resolution, Service, ServicePort,
)
from ketch.controlplane.translate.testing import load_configs

C = cluster_pb2.Cluster
HTTP = ServicePort("http", 80, Protocol.HTTP)
GRPC = ServicePort("grpc", 7070, Protocol.GRPC)
SVC = Service("web.default.svc.cluster.local", "default", "web", (HTTP, GRPC), ("10.0.0.1",),
              selector={"app": "web"})


def _dr(traffic_policy: str, subsets: str = "") -> object:
    (dr,) = load_configs(f"""
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: web}}
spec:
  host: web
  trafficPolicy:
{traffic_policy}
  subsets:
  - {{name: v1, labels: {{version: v1}}}}
{subsets}""")
    return dr


def _cluster(dr, port=HTTP, subset=None, service=SVC) -> cluster_pb2.Cluster:
    clusters = {c.name: c for c in outbound_clusters(service, port, dr, ())}
    return clusters[f"outbound|{port.number}|{subset or ''}|{service.hostname}"]


def test_connection_pool_maps_to_circuit_breakers_and_protocol_options() -> None:
    c = _cluster(_dr("""
    connectionPool:
      tcp: {maxConnections: 7, connectTimeout: 250ms}
      http: {http1MaxPendingRequests: 3, http2MaxRequests: 11, maxRetries: 2,
             maxRequestsPerConnection: 1, idleTimeout: 1m}
"""))
    t = c.circuit_breakers.thresholds[0]
    assert (t.max_connections.value, t.max_pending_requests.value, t.max_requests.value,
            t.max_retries.value) == (7, 3, 11, 2)
    assert c.connect_timeout.ToMilliseconds() == 250
    opts = hpo.HttpProtocolOptions()
    c.typed_extension_protocol_options[HTTP_OPTIONS_KEY].Unpack(opts)
    assert opts.common_http_protocol_options.max_requests_per_connection.value == 1
    assert opts.common_http_protocol_options.idle_timeout.seconds == 60
    assert opts.explicit_http_config.HasField("http_protocol_options")


def test_defaults_are_istios() -> None:
    c = _cluster(None)
    t = c.circuit_breakers.thresholds[0]
    assert t.max_connections.value == t.max_requests.value == t.max_retries.value == MAX
    assert c.lb_policy == C.LEAST_REQUEST and c.type == C.EDS
    assert c.eds_cluster_config.eds_config.HasField("ads")
    assert c.eds_cluster_config.service_name == c.name
    assert c.connect_timeout.seconds == 10
    assert HTTP_OPTIONS_KEY not in c.typed_extension_protocol_options
    # gRPC ports speak HTTP/2 upstream
    g = _cluster(None, GRPC)
    opts = hpo.HttpProtocolOptions()
    g.typed_extension_protocol_options[HTTP_OPTIONS_KEY].Unpack(opts)
    assert opts.explicit_http_config.HasField("http2_protocol_options")


@pytest.mark.parametrize("lb,want", [
    ("simple: ROUND_ROBIN", C.ROUND_ROBIN), ("simple: RANDOM", C.RANDOM),
    ("simple: LEAST_REQUEST", C.LEAST_REQUEST), ("simple: LEAST_CONN", C.LEAST_REQUEST),
    ("consistentHash: {httpHeaderName: x-user}", C.RING_HASH),
    ("consistentHash: {httpHeaderName: x-user, maglev: {tableSize: 65537}}", C.MAGLEV),
])
def test_load_balancer(lb: str, want: int) -> None:
    c = _cluster(_dr(f"    loadBalancer: {{{lb}}}\n"))
    assert c.lb_policy == want
    if want == C.MAGLEV:
        assert c.maglev_lb_config.table_size.value == 65537
    if want == C.RING_HASH:
        assert c.ring_hash_lb_config.minimum_ring_size.value == 1024


def test_outlier_detection() -> None:
    c = _cluster(_dr("""
    outlierDetection: {consecutiveGatewayErrors: 4, interval: 5s, baseEjectionTime: 1m,
                       maxEjectionPercent: 30, minHealthPercent: 40}
"""))
    od = c.outlier_detection
    assert od.consecutive_gateway_failure.value == 4
    assert od.enforcing_consecutive_gateway_failure.value == 100
    assert od.enforcing_consecutive_5xx.value == 0  # only gateway errors were asked for
    assert (od.interval.seconds, od.base_ejection_time.seconds, od.max_ejection_percent.value) == (5, 60, 30)
    assert c.common_lb_config.healthy_panic_threshold.value == 40


def test_subset_and_port_level_precedence() -> None:
    dr = _dr("""
    loadBalancer: {simple: ROUND_ROBIN}
    connectionPool: {tcp: {maxConnections: 10}}
    portLevelSettings:
    - port: {number: 7070}
      loadBalancer: {simple: RANDOM}
""", """  - name: v2
    labels: {version: v2}
    trafficPolicy:
      connectionPool: {tcp: {maxConnections: 99}}
      portLevelSettings:
      - port: {number: 80}
        loadBalancer: {simple: LEAST_REQUEST}
""")
    assert _cluster(dr).lb_policy == C.ROUND_ROBIN
    assert _cluster(dr, GRPC).lb_policy == C.RANDOM
    assert _cluster(dr, HTTP, "v1").lb_policy == C.ROUND_ROBIN
    v2 = _cluster(dr, HTTP, "v2")
    assert v2.lb_policy == C.LEAST_REQUEST
    assert v2.circuit_breakers.thresholds[0].max_connections.value == 99
    assert _cluster(dr, GRPC, "v2").lb_policy == C.RANDOM
    assert policy_for(dr, 80, "v1").connection_pool.tcp.max_connections == 10


def test_dns_and_passthrough_services() -> None:
    dns = Service("api.example.com", "default", "api", (HTTP,), resolution=Resolution.DNS,
                  mesh_external=True, kind="ServiceEntry", endpoints=())
    c = _cluster(None, service=dns)
    assert c.type == C.STRICT_DNS
    sa = c.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address
    assert (sa.address, sa.port_value) == ("api.example.com", 80)
    none = Service("*.example.com", "default", "any", (HTTP,), resolution=Resolution.PASSTHROUGH,
                   kind="ServiceEntry", endpoints=())
    p = _cluster(None, service=none)
    assert p.type == C.ORIGINAL_DST and p.lb_policy == C.CLUSTER_PROVIDED


def test_dns_endpoints_filtered_by_subset() -> None:
    dns = Service("db.example.com", "default", "db", (HTTP,), resolution=Resolution.DNS,
                  kind="ServiceEntry", endpoints=())
    eps = (Endpoint(WorkloadInstance("a", "default", "a.db.example.com", {"version": "v1"}), 80),
           Endpoint(WorkloadInstance("b", "default", "b.db.example.com", {"version": "v2"}), 80))
    clusters = {c.name: c for c in outbound_clusters(dns, HTTP, _dr("    loadBalancer: {simple: RANDOM}\n"), eps)}
    v1 = clusters["outbound|80|v1|db.example.com"]
    addrs = [e.endpoint.address.socket_address.address
             for g in v1.load_assignment.endpoints for e in g.lb_endpoints]
    assert addrs == ["a.db.example.com"]
