"""Simulation tables over Istio's Bookinfo and tcp-echo samples: a described call from a
source workload → the cluster it reaches (or the status / error)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ketch.controlplane.instance import WorkloadInstance
from ketch.controlplane.snapshot import Snapshot
from ketch.controlplane.translate.testing import load_configs, proxy
from sim_harness import Call, Simulation

FAULT = "envoy.filters.http.fault"


def _instances(specs: list[tuple[str, str, str, str, dict[str, int]]]) -> list[WorkloadInstance]:
    return [WorkloadInstance(name=n, namespace="default", address=a,
                             labels={"app": app, "version": v}, ports=ports)
            for n, app, v, a, ports in specs]


@pytest.fixture(scope="module")
def bookinfo(samples_dir: Path) -> Snapshot:
    b = samples_dir / "bookinfo"
    text = "\n---\n".join((b / p).read_text() for p in (
        "platform/bookinfo.yaml", "networking/destination-rule-all.yaml",
        "networking/virtual-service-reviews-jason-v2-v3.yaml",
        "networking/virtual-service-ratings-test-abort.yaml",
        "networking/bookinfo-gateway.yaml"))
    http = {"http": 9080}
    instances = _instances([
        ("productpage-v1", "productpage", "v1", "10.1.0.2", http),
        ("details-v1", "details", "v1", "10.1.0.3", http),
        ("reviews-v1", "reviews", "v1", "10.1.0.4", http),
        ("reviews-v2", "reviews", "v2", "10.1.0.5", http),
        ("reviews-v3", "reviews", "v3", "10.1.0.6", http),
        ("ratings-v1", "ratings", "v1", "10.1.0.7", http),
    ])
    return Snapshot.build(load_configs(text), instances, None, "1")


def R(host: str) -> str:
    return f"outbound|9080||{host}.default.svc.cluster.local"


def S(subset: str, host: str) -> str:
    return f"outbound|9080|{subset}|{host}.default.svc.cluster.local"


PRODUCTPAGE = {"app": "productpage", "version": "v1"}
REVIEWS_V2 = {"app": "reviews", "version": "v2"}
GATEWAY = {"istio": "ingressgateway"}

SIDECAR_TABLE = [
    # (source labels, call, expected target)
    (PRODUCTPAGE, Call("reviews", 9080, "/reviews/0", headers={"end-user": "jason"}), S("v2", "reviews")),
    (PRODUCTPAGE, Call("reviews", 9080, "/reviews/0"), S("v3", "reviews")),
    (PRODUCTPAGE, Call("reviews", 9080, headers={"end-user": "jasonx"}), S("v3", "reviews")),
    (PRODUCTPAGE, Call("reviews.default.svc.cluster.local", 9080, "/"), S("v3", "reviews")),
    (PRODUCTPAGE, Call("reviews.default", 9080, "/", headers={"end-user": "jason"}), S("v2", "reviews")),
    (PRODUCTPAGE, Call("details", 9080, "/details/0"), R("details")),
    (REVIEWS_V2, Call("ratings", 9080, "/ratings/0"), S("v1", "ratings")),
    # no VirtualService: the default route to the service
    (REVIEWS_V2, Call("productpage", 9080, "/"), R("productpage")),
    # an unknown destination leaves through the passthrough chain (ALLOW_ANY)
    (PRODUCTPAGE, Call("example.com", 443, tcp=True, address="93.184.216.34"), "PassthroughCluster"),
    # an unknown Host on a known HTTP port falls to the allow_any virtual host
    (PRODUCTPAGE, Call("example.com", 9080, "/", address="93.184.216.34"), "PassthroughCluster"),
]


@pytest.mark.parametrize("labels,call,expected", SIDECAR_TABLE,
                         ids=[f"{c.host}:{c.port}{c.path}{dict(c.headers)}" for _, c, _ in SIDECAR_TABLE])
def test_sidecar_calls(bookinfo: Snapshot, labels, call: Call, expected: str) -> None:
    sim = Simulation(bookinfo, proxy(labels=labels, ip="10.1.0.99"))
    assert sim.run(call).target == expected


def test_fault_only_on_matched_rule(bookinfo: Snapshot) -> None:
    sim = Simulation(bookinfo, proxy(labels=REVIEWS_V2, ip="10.1.0.5"))
    jason = sim.run(Call("ratings", 9080, "/ratings/0", headers={"end-user": "jason"}))
    other = sim.run(Call("ratings", 9080, "/ratings/0"))
    assert jason.cluster == other.cluster == S("v1", "ratings")
    assert FAULT in jason.route_obj.per_filter
    assert FAULT not in other.route_obj.per_filter


GATEWAY_TABLE = [
    (Call("bookinfo.example", 8080, "/productpage"), R("productpage")),
    (Call("anything", 8080, "/static/css/a.css"), R("productpage")),
    (Call("anything", 8080, "/api/v1/products/1"), R("productpage")),
    (Call("anything", 8080, "/login", method="POST"), R("productpage")),
    (Call("anything", 8080, "/productpage/extra"), "NR"),
    (Call("anything", 8080, "/"), "NR"),
    (Call("anything", 9999, "/"), "no listener"),
]


@pytest.mark.parametrize("call,expected", GATEWAY_TABLE, ids=[c.path + str(c.port) for c, _ in GATEWAY_TABLE])
def test_gateway_calls(bookinfo: Snapshot, call: Call, expected: str) -> None:
    sim = Simulation(bookinfo, proxy("istio-system", GATEWAY, kind="router", ip="10.1.0.100"))
    assert sim.run(call).target == expected


def test_gateway_not_selected_has_no_listeners(bookinfo: Snapshot) -> None:
    sim = Simulation(bookinfo, proxy("istio-system", {"istio": "egressgateway"}, kind="router"))
    assert sim.run(Call("anything", 8080, "/productpage")).target == "no listener"


@pytest.fixture(scope="module")
def tcp_echo(samples_dir: Path) -> Snapshot:
    t = samples_dir / "tcp-echo"
    base = load_configs((t / "tcp-echo-services.yaml").read_text()
                        + "\n---\n" + (t / "tcp-echo-all-v1.yaml").read_text())
    # the 80/20 VirtualService replaces the all-v1 one, as `kubectl apply` would
    configs = [r for r in base if r.kind != "VirtualService"]
    configs += load_configs((t / "tcp-echo-20-v2.yaml").read_text())
    ports = {"tcp": 9000, "tcp-other": 9001}
    instances = _instances([("tcp-echo-v1", "tcp-echo", "v1", "10.2.0.1", ports),
                            ("tcp-echo-v2", "tcp-echo", "v2", "10.2.0.2", ports)])
    return Snapshot.build(configs, instances, None, "1")


def test_tcp_echo_sidecar_goes_to_the_service(tcp_echo: Snapshot) -> None:
    sim = Simulation(tcp_echo, proxy(labels={"app": "sleep"}))
    vip = sim.resolve("tcp-echo")
    assert vip is not None
    assert sim.run(Call("tcp-echo", 9000, tcp=True)).target == \
        "outbound|9000||tcp-echo.default.svc.cluster.local"
    assert sim.run(Call("tcp-echo", 9001, tcp=True)).target == \
        "outbound|9001||tcp-echo.default.svc.cluster.local"
    # an undeclared port on the service IP is not captured by a service listener
    assert sim.run(Call("tcp-echo", 9002, tcp=True)).target == "PassthroughCluster"


def test_tcp_echo_gateway_splits_80_20(tcp_echo: Snapshot) -> None:
    sim = Simulation(tcp_echo, proxy("istio-system", GATEWAY, kind="router"))
    result = sim.run(Call("anything", 31400, tcp=True))
    assert result.weighted == (
        ("outbound|9000|v1|tcp-echo.default.svc.cluster.local", 80),
        ("outbound|9000|v2|tcp-echo.default.svc.cluster.local", 20),
    )
