from __future__ import annotations

from envoy.config.core.v3 import health_check_pb2

from ketch.controlplane.instance import WorkloadInstance
from ketch.controlplane.snapshot import Snapshot
from ketch.controlplane.translate import generate
from ketch.controlplane.translate.generator import CLUSTER, ENDPOINT, LISTENER, ROUTE
from ketch.controlplane.translate.grpc import resolve_name
from ketch.controlplane.translate.testing import load_configs, proxy

SERVICES = """
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: api, namespace: ops}
spec:
  selector: {app: api}
  ports: [{name: grpc, port: 7070}]
"""


def _dr(ns: str, lb: str, export: str = "") -> str:
    return f"""
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: web-{ns}, namespace: {ns}}}
spec:
  host: web.shop.svc.cluster.local
  trafficPolicy: {{loadBalancer: {{simple: {lb}}}}}
{export}"""


def test_destination_rule_lookup_prefers_proxy_then_service_then_root_namespace() -> None:
    snap = Snapshot.build(load_configs(SERVICES + _dr("istio-system", "RANDOM") + _dr("shop", "ROUND_ROBIN")
                                       + _dr("ops", "LEAST_REQUEST", "  exportTo: ['.']")))
    host = "web.shop.svc.cluster.local"
    assert snap.destination_rule(host, "ops", "shop").metadata.namespace == "ops"
    assert snap.destination_rule(host, "shop", "shop").metadata.namespace == "shop"
    assert snap.destination_rule(host, "other", "shop").metadata.namespace == "shop"
    only_root = Snapshot.build(load_configs(SERVICES + _dr("istio-system", "RANDOM")))
    assert only_root.destination_rule(host, "other", "shop").metadata.namespace == "istio-system"
    # ops' rule is exported to ops only
    no_shop = Snapshot.build(load_configs(SERVICES + _dr("ops", "LEAST_REQUEST", "  exportTo: ['.']")))
    assert no_shop.destination_rule(host, "other", "shop") is None


def test_virtual_service_export_to_hides_it_elsewhere() -> None:
    text = SERVICES + """
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web, namespace: shop}
spec:
  hosts: [web.shop.svc.cluster.local]
  exportTo: ["."]
  http:
  - route: [{destination: {host: web.shop.svc.cluster.local}}]
    timeout: 7s
"""
    snap = Snapshot.build(load_configs(text))

    def timeout(ns: str) -> float:
        routes = generate(snap, proxy(ns), ROUTE)["80"]
        (vh,) = [v for v in routes.virtual_hosts if v.name.startswith("web.")]
        return vh.routes[0].route.timeout.seconds

    assert timeout("shop") == 7
    assert timeout("ops") == 0  # the default route: the VirtualService is not exported here


def test_sidecar_selection_and_egress() -> None:
    text = SERVICES + """
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: narrow, namespace: shop}
spec:
  workloadSelector: {labels: {app: narrow}}
  egress: [{hosts: ["ops/*"]}]
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: istio-system}
spec:
  egress: [{hosts: ["./*"]}]
"""
    snap = Snapshot.build(load_configs(text))
    narrow = generate(snap, proxy("shop", {"app": "narrow"}), CLUSTER)
    assert "outbound|7070||api.ops.svc.cluster.local" in narrow
    assert "outbound|80||web.shop.svc.cluster.local" not in narrow
    # the root namespace's Sidecar is the mesh default: own namespace only
    other = generate(snap, proxy("shop", {"app": "web"}), CLUSTER)
    assert "outbound|80||web.shop.svc.cluster.local" in other
    assert "outbound|7070||api.ops.svc.cluster.local" not in other


def test_endpoints_follow_registry_health_and_labels() -> None:
    instances = [
        WorkloadInstance("w1", "shop", "10.0.0.1", {"app": "web"}, ports={"http": 8080}),
        WorkloadInstance("w2", "shop", "10.0.0.2", {"app": "web"}, healthy=False, weight=3,
                         locality="eu/west-1"),
        WorkloadInstance("x", "ops", "10.0.0.3", {"app": "web"}),
    ]
    snap = Snapshot.build(load_configs(SERVICES), instances)
    cla = generate(snap, proxy("shop"), ENDPOINT)["outbound|80||web.shop.svc.cluster.local"]
    eps = [(e.endpoint.address.socket_address.address, e.endpoint.address.socket_address.port_value,
            e.health_status, e.load_balancing_weight.value, g.locality.region)
           for g in cla.endpoints for e in g.lb_endpoints]
    assert eps == [("10.0.0.1", 8080, 1, 1, ""), ("10.0.0.2", 80, 2, 3, "eu")]
    assert [g.load_balancing_weight.value for g in cla.endpoints] == [1, 3]


def test_inbound_listener_and_cluster_for_the_proxy_workload() -> None:
    snap = Snapshot.build(load_configs(SERVICES))
    p = proxy("shop", {"app": "web"}, ip="10.0.0.1")
    listeners = generate(snap, p, LISTENER)
    chains = listeners["virtualInbound"].filter_chains
    assert [c.filter_chain_match.destination_port.value for c in chains[:-1]] == [80]
    cluster = generate(snap, p, CLUSTER)["inbound|80||"]
    sa = cluster.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address
    assert (sa.address, sa.port_value) == ("127.0.0.1", 80)
    # another workload does not serve web
    assert "inbound|80||" not in generate(snap, proxy("shop", {"app": "client"}), CLUSTER)


def test_registry_only_without_sidecar() -> None:
    class Mesh:
        class outbound_traffic_policy:  # noqa: N801 - mirrors the MeshConfig attribute
            mode = "REGISTRY_ONLY"
    snap = Snapshot.build(load_configs(SERVICES), mesh=Mesh())
    lis = generate(snap, proxy("shop"), LISTENER)["virtualOutbound"]
    assert "BlackHoleCluster" in str(lis.filter_chains[0].filters[0].typed_config.value)


def test_grpc_listeners_by_requested_name() -> None:
    snap = Snapshot.build(load_configs(SERVICES))
    g = proxy("shop", generator="grpc")
    got = generate(snap, g, LISTENER, ("api.ops:7070", "web:80", "nope:1", "web:81"))
    assert sorted(got) == ["api.ops:7070", "web:80"]
    from envoy.extensions.filters.network.http_connection_manager.v3 import (
        http_connection_manager_pb2 as hcm,
    )
    m = hcm.HttpConnectionManager()
    got["api.ops:7070"].api_listener.api_listener.Unpack(m)
    assert m.rds.route_config_name == "outbound|7070||api.ops.svc.cluster.local"
    assert m.rds.config_source.HasField("ads")
    assert m.http_filters[-1].name == "envoy.filters.http.router"
    routes = generate(snap, g, ROUTE)
    assert routes["outbound|7070||api.ops.svc.cluster.local"].virtual_hosts[0].domains == ["*"]


def test_resolve_name() -> None:
    assert resolve_name("web", "shop") == "web.shop.svc.cluster.local"
    assert resolve_name("api.ops", "shop") == "api.ops.svc.cluster.local"
    assert resolve_name("api.ops.svc", "shop") == "api.ops.svc.cluster.local"
    assert resolve_name("api.example.com", "shop") == "api.example.com"


def test_default_route_honours_consistent_hash_and_external_name() -> None:
    text = SERVICES + """
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: web, namespace: shop}
spec:
  host: web
  trafficPolicy:
    loadBalancer: {consistentHash: {httpCookie: {name: session, ttl: 0s}}}
---
apiVersion: v1
kind: Service
metadata: {name: legacy, namespace: shop}
spec:
  type: ExternalName
  externalName: legacy.example.net
  ports: [{name: http, port: 80}]
"""
    snap = Snapshot.build(load_configs(text))
    routes = generate(snap, proxy("shop"), ROUTE)["80"]
    (web,) = [v for v in routes.virtual_hosts if v.name.startswith("web.")]
    assert web.routes[0].route.hash_policy[0].cookie.name == "session"
    cluster = generate(snap, proxy("shop"), CLUSTER)["outbound|80||legacy.shop.svc.cluster.local"]
    sa = cluster.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address
    assert cluster.type == cluster.STRICT_DNS
    assert (sa.address, sa.port_value) == ("legacy.example.net", 80)
    # routers do not serve inbound traffic for the services that select them
    router = proxy("shop", {"app": "web"}, kind="router")
    assert "inbound|80||" not in generate(snap, router, CLUSTER)


def test_grpc_clusters_use_balancers_grpc_has() -> None:
    text = SERVICES + """
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: api, namespace: ops}
spec:
  host: api.ops.svc.cluster.local
  trafficPolicy: {loadBalancer: {simple: RANDOM}}
  subsets:
  - name: sticky
    labels: {v: "1"}
    trafficPolicy:
      loadBalancer: {consistentHash: {httpHeaderName: x-user, maglev: {tableSize: 65537}}}
"""
    snap = Snapshot.build(load_configs(text))
    grpc_clusters = generate(snap, proxy("ops", generator="grpc"), CLUSTER)
    envoy_clusters = generate(snap, proxy("ops"), CLUSTER)
    name, sticky = "outbound|7070||api.ops.svc.cluster.local", "outbound|7070|sticky|api.ops.svc.cluster.local"
    C = type(grpc_clusters[name])
    assert (grpc_clusters[name].lb_policy, grpc_clusters[sticky].lb_policy) == (C.ROUND_ROBIN, C.RING_HASH)
    assert (envoy_clusters[name].lb_policy, envoy_clusters[sticky].lb_policy) == (C.RANDOM, C.MAGLEV)


def test_an_untranslatable_virtual_service_falls_back_to_the_default_route(caplog) -> None:
    from ketch.controlplane.translate.testing import attribute_view

    broken = attribute_view({  # not through the model's validation: a weight that is no number
        "kind": "VirtualService", "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"hosts": ["web"], "http": [{"route": [
            {"destination": {"host": "web"}, "weight": "lots"},
            {"destination": {"host": "web"}, "weight": "more"}]}]},
    })
    snap = Snapshot.build(load_configs(SERVICES) + [broken])
    routes = generate(snap, proxy("shop"), ROUTE)["80"]
    (web,) = [v for v in routes.virtual_hosts if v.name.startswith("web.")]
    assert web.routes[0].name == "default"
    assert web.routes[0].route.cluster == "outbound|80||web.shop.svc.cluster.local"
    assert "falling back" in caplog.text


def test_process_mode_inbound_uses_the_proxys_own_instance() -> None:
    text = """
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: web-http}]
"""
    instances = [
        WorkloadInstance("web-a", "default", "127.0.0.1", {"app": "web"}, ports={"web-http": 18001}),
        WorkloadInstance("web-b", "default", "127.0.0.1", {"app": "web"}, ports={"web-http": 18002}),
    ]
    snap = Snapshot.build(load_configs(text), instances)
    for name, port in (("web-a", 18001), ("web-b", 18002)):
        p = proxy(labels={"app": "web"}, ip="127.0.0.1", name=name, interception="NONE")
        assert f"inbound|{port}||" in generate(snap, p, CLUSTER)
        chains = generate(snap, p, LISTENER)["virtualInbound"].filter_chains
        assert chains[0].filter_chain_match.destination_port.value == port
    a = proxy(labels={"app": "web"}, ip="127.0.0.1", name="web-a")
    b = proxy(labels={"app": "web"}, ip="127.0.0.1", name="web-b")
    assert a.scope_key() != b.scope_key()


def test_registry_only_change_reuses_config_derived_answers() -> None:
    configs = load_configs(SERVICES + """
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: dns, namespace: shop}
spec:
  hosts: [db.example.com]
  ports: [{number: 5432, name: tcp, protocol: TCP}]
  resolution: DNS
  workloadSelector: {labels: {app: db}}
""")
    one = [WorkloadInstance("w1", "shop", "10.0.0.1", {"app": "web"}),
           WorkloadInstance("d1", "shop", "10.0.0.5", {"app": "db"})]
    two = one + [WorkloadInstance("w2", "shop", "10.0.0.2", {"app": "web"}),
                 WorkloadInstance("d2", "shop", "10.0.0.6", {"app": "db"})]
    p = proxy("shop", {"app": "client"})
    first = Snapshot.build(configs, one, None, "1")
    before = {t: generate(first, p, t) for t in (CLUSTER, ENDPOINT, LISTENER, ROUTE)}
    second = Snapshot.build(configs, two, None, "2", previous=first)
    fresh = Snapshot.build(configs, two, None, "2")
    for t in (CLUSTER, ENDPOINT, LISTENER, ROUTE):
        assert generate(second, p, t) == generate(fresh, p, t)
    assert second.version == "2" and len(second.instances) == 4
    # config-derived answers are the same objects; endpoint-bearing ones are rebuilt
    assert generate(second, p, ROUTE)["80"] is before[ROUTE]["80"]
    web = "outbound|80||web.shop.svc.cluster.local"
    db = "outbound|5432||db.example.com"
    assert generate(second, p, CLUSTER)[web] is before[CLUSTER][web]
    assert len(generate(second, p, CLUSTER)[db].load_assignment.endpoints[0].lb_endpoints) == 2
    assert len(generate(second, p, ENDPOINT)[web].endpoints[0].lb_endpoints) == 2
    # changed config objects mean a full build
    third = Snapshot.build(load_configs(SERVICES), two, None, "3", previous=second)
    assert "outbound|5432||db.example.com" not in generate(third, p, CLUSTER)


def test_inbound_cluster_speaks_http2_to_grpc_apps() -> None:
    from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2 as hpo

    snap = Snapshot.build(load_configs(SERVICES))
    clusters = generate(snap, proxy("ops", {"app": "api"}), CLUSTER)
    opts = hpo.HttpProtocolOptions()
    clusters["inbound|7070||"].typed_extension_protocol_options[
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"].Unpack(opts)
    assert opts.explicit_http_config.HasField("http2_protocol_options")
    web = generate(snap, proxy("shop", {"app": "web"}), CLUSTER)["inbound|80||"]
    assert not web.typed_extension_protocol_options


def test_sidecar_ingress_listeners_replace_service_inbound() -> None:
    text = SERVICES + """
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: web-ingress, namespace: shop}
spec:
  workloadSelector: {labels: {app: web}}
  ingress:
  - port: {number: 9443, protocol: HTTP, name: http-admin}
    defaultEndpoint: 127.0.0.1:8443
  - port: {number: 9000, protocol: TCP, name: tcp}
    defaultEndpoint: 0.0.0.0:9001
"""
    snap = Snapshot.build(load_configs(text))
    p = proxy("shop", {"app": "web"}, ip="10.0.0.7")
    clusters = generate(snap, p, CLUSTER)
    assert "inbound|80||" not in clusters

    def endpoint(name: str) -> tuple[str, int]:
        sa = clusters[name].load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address
        return sa.address, sa.port_value

    assert endpoint("inbound|9443||") == ("127.0.0.1", 8443)
    assert endpoint("inbound|9000||") == ("10.0.0.7", 9001)  # 0.0.0.0 means the instance IP
    chains = generate(snap, p, LISTENER)["virtualInbound"].filter_chains
    assert [c.filter_chain_match.destination_port.value for c in chains[:-1]] == [9000, 9443]
    assert chains[0].filters[0].name == "envoy.filters.network.tcp_proxy"
    assert chains[1].filters[0].name == "envoy.filters.network.http_connection_manager"


def test_changed_config_reuses_unchanged_conversions() -> None:
    configs = load_configs(SERVICES)
    first = Snapshot.build(configs, (), None, "1")
    vs = load_configs("""
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web, namespace: shop}
spec:
  hosts: [web.shop.svc.cluster.local]
  http: [{route: [{destination: {host: web.shop.svc.cluster.local}}], timeout: 3s}]
""")
    second = Snapshot.build(configs + vs, (), None, "2", previous=first)
    assert second.service("web.shop.svc.cluster.local") is first.service("web.shop.svc.cluster.local")
    routes = generate(second, proxy("shop"), ROUTE)["80"]
    (vh,) = [v for v in routes.virtual_hosts if v.name.startswith("web.")]
    assert vh.routes[0].route.timeout.seconds == 3
    # a new object for the same Service converts again
    third = Snapshot.build(load_configs(SERVICES) + vs, (), None, "3", previous=second)
    assert third.service("web.shop.svc.cluster.local") is not second.service("web.shop.svc.cluster.local")
    assert third.service("web.shop.svc.cluster.local") == second.service("web.shop.svc.cluster.local")


def test_registry_change_rebuilds_only_the_load_assignments_whose_endpoints_changed() -> None:
    """The cross-snapshot CLA cache is keyed on every input load_assignment reads: a changed
    label (subset membership), health, weight, address or locality invalidates it."""
    configs = load_configs(SERVICES + """
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: web, namespace: shop}
spec:
  host: web.shop.svc.cluster.local
  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]
""")
    web = "outbound|80||web.shop.svc.cluster.local"
    v1, v2 = "outbound|80|v1|web.shop.svc.cluster.local", "outbound|80|v2|web.shop.svc.cluster.local"
    api = "outbound|7070||api.ops.svc.cluster.local"
    p = proxy("shop", {"app": "client"})
    w1 = WorkloadInstance("w1", "shop", "10.0.0.1", {"app": "web", "version": "v1"})
    a1 = WorkloadInstance("a1", "ops", "10.0.1.1", {"app": "api"})
    snap = Snapshot.build(configs, [w1, a1], None, "1")
    before = generate(snap, p, ENDPOINT)

    def step(instances, version: str):
        nonlocal snap, before
        snap = Snapshot.build(configs, instances, None, version, previous=snap)
        now = generate(snap, p, ENDPOINT)
        fresh = generate(Snapshot.build(configs, instances, None, version), p, ENDPOINT)
        assert now == fresh, "a reused load assignment must equal a fresh one"
        rebuilt = {n for n in now if now[n] is not before.get(n)}
        before = now
        return now, rebuilt

    # an unrelated instance (no service selects it) changes nothing
    other = WorkloadInstance("x", "shop", "10.0.9.9", {"app": "nothing"})
    _, rebuilt = step([w1, a1, other], "2")
    assert rebuilt == set()
    # a new api instance rebuilds api only
    a2 = WorkloadInstance("a2", "ops", "10.0.1.2", {"app": "api"})
    now, rebuilt = step([w1, a1, a2], "3")
    assert rebuilt == {api} and len(now[api].endpoints[0].lb_endpoints) == 2

    def lb(cla):
        return [e for g in cla.endpoints for e in g.lb_endpoints]

    # label change: w1 moves from subset v1 to v2 (the default cluster's endpoint is rebuilt too)
    w1b = WorkloadInstance("w1", "shop", "10.0.0.1", {"app": "web", "version": "v2"})
    now, rebuilt = step([w1b, a1, a2], "4")
    assert rebuilt == {web, v1, v2}
    assert lb(now[v1]) == [] and len(lb(now[v2])) == 1
    # health
    w1c = WorkloadInstance("w1", "shop", "10.0.0.1", {"app": "web", "version": "v2"}, healthy=False)
    now, rebuilt = step([w1c, a1, a2], "5")
    assert web in rebuilt and lb(now[web])[0].health_status == health_check_pb2.UNHEALTHY
    # weight
    w1d = WorkloadInstance("w1", "shop", "10.0.0.1", {"app": "web", "version": "v2"}, healthy=False, weight=7)
    now, rebuilt = step([w1d, a1, a2], "6")
    assert web in rebuilt and lb(now[web])[0].load_balancing_weight.value == 7
    # address
    w1e = WorkloadInstance("w1", "shop", "10.0.0.8", {"app": "web", "version": "v2"}, healthy=False, weight=7)
    now, rebuilt = step([w1e, a1, a2], "7")
    assert web in rebuilt and lb(now[web])[0].endpoint.address.socket_address.address == "10.0.0.8"
    # locality
    w1f = WorkloadInstance("w1", "shop", "10.0.0.8", {"app": "web", "version": "v2"}, healthy=False,
                           weight=7, locality="eu/z1")
    now, rebuilt = step([w1f, a1, a2], "8")
    assert web in rebuilt and now[web].endpoints[0].locality.region == "eu"
    assert api not in rebuilt
    # a config change keeps the cache correct too (pure in its inputs)
    snap = Snapshot.build(load_configs(SERVICES), [w1f, a1, a2], None, "9", previous=snap)
    now = generate(snap, p, ENDPOINT)
    assert v1 not in now and now[api] is before[api] and now[web] is before[web]
