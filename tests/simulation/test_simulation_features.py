"""Simulation tables over hand-written config (tests/controlplane/golden/features): the
VirtualService, DestinationRule, ServiceEntry, Sidecar and exportTo features."""

from __future__ import annotations

from pathlib import Path

import pytest

from ketch.controlplane.translate.testing import load_case
from sim_harness import Call, Simulation

CASE = Path(__file__).resolve().parent.parent / "controlplane" / "golden" / "features"


@pytest.fixture(scope="module")
def case():
    return load_case(CASE)


def web(port: int, subset: str = "") -> str:
    return f"outbound|{port}|{subset}|web.shop.svc.cluster.local"


TABLE = [
    # (source proxy, call, expected)
    ("client", Call("web", 80, "/old/page"), "status:302"),
    ("client", Call("web", 80, "/teapot"), "status:418"),
    ("client", Call("web", 80, "/teapot/2"), f"{web(80, 'v1')}=90,{web(80, 'v2')}=10"),
    ("client", Call("web", 80, "/", headers={"x-canary": "1"}), web(80, "v2")),
    ("client", Call("web", 80, "/", headers={"x-canary": "1", "x-skip": ""}),
     f"{web(80, 'v1')}=90,{web(80, 'v2')}=10"),
    ("client", Call("web", 80, "/api/v2/items", method="POST"), web(80, "v1")),
    ("client", Call("web", 80, "/api/v2/items", method="GET"), f"{web(80, 'v1')}=90,{web(80, 'v2')}=10"),
    ("client", Call("web", 80, "/x?debug=true"), web(80, "v1")),
    ("client", Call("web", 80, "/x?debug=false"), f"{web(80, 'v1')}=90,{web(80, 'v2')}=10"),
    ("admin", Call("web", 80, "/anything"), web(80, "v2")),
    ("client", Call("web", 80, "/mirror/1"), web(80, "v1")),
    ("client", Call("web", 80, "/cors"), web(80, "")),
    ("client", Call("web.shop.svc.cluster.local", 80, "/cors"), web(80, "")),
    # rules without a port apply to every port of the host; the listener port is kept
    ("client", Call("web", 7070, "/pkg.Svc/Method"), f"{web(7070, 'v1')}=90,{web(7070, 'v2')}=10"),
    ("client", Call("web", 6379, tcp=True), web(6379, "v1")),
    # delegate VirtualService: the child's rules inside the root's /cart match
    ("client", Call("cart", 8000, "/cart/checkout/now"), "outbound|8000||cart.shop.svc.cluster.local"),
    ("client", Call("cart", 8000, "/cart/items"), "outbound|8000||cart.shop.svc.cluster.local"),
    ("client", Call("cart", 8000, "/other"), "NR"),
    # ServiceEntries
    ("client", Call("api.example.com", 80, "/v1"), "outbound|80||api.example.com"),
    ("client", Call("api.example.com", 443, tcp=True), "outbound|443||api.example.com"),
    ("client", Call("db.legacy.internal", 5432, tcp=True, address="192.168.50.10"),
     "outbound|5432||db.legacy.internal"),
    ("client", Call("vm.shop.internal", 9090, "/"), "outbound|9090||vm.shop.internal"),
    # exportTo "." hides secret/internal from shop; it stays reachable inside its namespace
    ("client", Call("internal.secret", 80, "/", address="10.200.0.1"), "PassthroughCluster"),
    ("secret", Call("internal", 80, "/"), "outbound|80||internal.secret.svc.cluster.local"),
    # Sidecar egress narrows what `restricted` sees, and REGISTRY_ONLY blocks the rest
    ("restricted", Call("web.shop", 80, "/teapot"), "status:418"),
    ("restricted", Call("local", 80, "/"), "outbound|80||local.restricted.svc.cluster.local"),
    ("restricted", Call("cart.shop", 8000, "/cart", address="10.200.0.2"), "BlackHoleCluster"),
    ("restricted", Call("unknown.example", 80, "/", address="10.200.0.3"), "status:502"),
    # process mode: the proxy hands explicit-proxy requests to the same per-port listeners
    ("process", Call("web", 80, "/teapot"), "status:418"),
    ("process", Call("web.shop.svc.cluster.local", 7070, "/p.S/M"),
     f"{web(7070, 'v1')}=90,{web(7070, 'v2')}=10"),
    ("process", Call("cart", 8000, "/cart/x"), "outbound|8000||cart.shop.svc.cluster.local"),
    ("process", Call("unknown.example", 80, "/", address="10.200.0.4"), "PassthroughCluster"),
    ("process", Call("db.legacy.internal", 5432, tcp=True, address="192.168.50.10"),
     "outbound|5432||db.legacy.internal"),
    # VirtualService tls rules pick the upstream by SNI; other names go to the service
    ("client", Call("vault", 8200, tcp=True, sni="a.vault.shop.svc.cluster.local"), "outbound|8200||vault-a.shop.svc.cluster.local"),
    ("client", Call("vault", 8200, tcp=True, sni="b.vault.shop.svc.cluster.local"), "outbound|8200||vault.shop.svc.cluster.local"),
    ("client", Call("vault", 8200, tcp=True), "outbound|8200||vault.shop.svc.cluster.local"),
    # the edge gateway: HTTP by host, TLS passthrough by SNI
    ("ingress", Call("web.example.org", 80, "/x"), web(80)),
    ("ingress", Call("other.example.org", 80, "/x"), "NR"),
    ("ingress", Call("vault.example.org", 443, tcp=True, sni="vault.example.org"),
     "outbound|8200||vault.shop.svc.cluster.local"),
    ("ingress", Call("x.example.org", 443, tcp=True, sni="x.example.org"), "no filter chain"),
]


@pytest.mark.parametrize("source,call,expected", TABLE,
                         ids=[f"{s}->{c.host}:{c.port}{c.path}" for s, c, _ in TABLE])
def test_calls(case, source: str, call: Call, expected: str) -> None:
    snapshot, proxies = case
    assert Simulation(snapshot, proxies[source]).run(call).target == expected


def test_route_details_reach_the_proxy(case) -> None:
    snapshot, proxies = case
    sim = Simulation(snapshot, proxies["client"])
    api = sim.run(Call("web", 80, "/api/v1/x", method="POST")).route_obj
    assert api.name == "api.post"
    assert api.action.prefix_rewrite == "/" and api.action.host_rewrite == "api.web"
    assert api.action.timeout == 3.0
    mirror = sim.run(Call("web", 80, "/mirror")).route_obj
    assert [(m.cluster, m.fraction) for m in mirror.action.mirrors] == [(web(80, "v2"), 0.25)]
    assert "envoy.filters.http.fault" in mirror.per_filter
    assert "envoy.filters.http.cors" in sim.run(Call("web", 80, "/cors")).route_obj.per_filter
    grpc_port = sim.run(Call("web", 7070, "/pkg.Svc/Method")).route_obj
    assert grpc_port.action.hash_policy, "consistentHash on port 7070 becomes a route hash policy"
    assert not sim.run(Call("web", 80, "/")).route_obj.action.hash_policy
