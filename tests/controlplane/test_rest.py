"""The REST API (contracts §3) against a MemoryStore, a Registry and a fake xDS provider."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestClient, TestServer
from rest_fakes import PRODUCTPAGE, REVIEWS, FakeProxies

from ketch.controlplane.registry import Registry
from ketch.controlplane.rest import make_app
from ketch.store import MemoryStore

REVIEWS_VS = """\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, subset: v1}
      weight: WEIGHT
    - destination: {host: reviews, subset: v2}
      weight: REST
"""

DR = """\
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: reviews
spec:
  host: reviews
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
"""

BROKEN = """\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: broken
  namespace: prod
spec:
  hosts: [ratings]
  http:
  - route:
    - destination: {host: ratings}
      wieght: 100
"""

SERVICE = """\
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: default}
spec:
  selector: {app: reviews}
  ports: [{name: http, port: 9080, targetPort: 9080}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: httpbin-ext}
spec:
  hosts: [httpbin.org]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports: [{number: 80, name: http, protocol: HTTP}]
  endpoints: [{address: 192.0.2.10}]
"""


def vs(weight: int) -> str:
    return REVIEWS_VS.replace("WEIGHT", str(weight)).replace("REST", str(100 - weight))


class FakeClock:
    now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def api():
    store, registry = MemoryStore(), Registry(clock=FakeClock(), ttl=30)
    client = TestClient(TestServer(make_app(store, registry, FakeProxies())))
    await client.start_server()
    client.store, client.registry = store, registry
    yield client
    await client.close()


async def post_yaml(api, text: str, **params):
    return await api.post("/api/v1/config", data=text, params=params,
                          headers={"Content-Type": "application/yaml"})


async def test_healthz(api):
    resp = await api.get("/healthz")
    assert resp.status == 200 and await resp.text() == "ok"


async def test_apply_created_configured_unchanged(api):
    resp = await post_yaml(api, vs(80) + "---\n" + DR)
    assert resp.status == 200
    body = await resp.json()
    assert [(c["type"], c["kind"], c["namespace"], c["name"]) for c in body["changes"]] == [
        ("ADDED", "VirtualService", "default", "reviews"),
        ("ADDED", "DestinationRule", "default", "reviews"),
    ]
    assert body["changes"][0]["displayName"] == "virtualservice.networking.istio.io"
    body = await (await post_yaml(api, vs(50) + "---\n" + DR)).json()
    assert [c["type"] for c in body["changes"]] == ["MODIFIED", "UNCHANGED"]
    assert body["changes"][0]["resourceVersion"] == "3"
    stored = api.store.get("VirtualService", "default", "reviews")
    assert stored.spec.http[0].route[0].weight == 50


async def test_apply_json_items_and_dry_run(api):
    doc = {"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
           "metadata": {"name": "ratings", "namespace": "prod"}, "spec": {"host": "ratings"}}
    resp = await api.post("/api/v1/config", json={"items": [doc]}, params={"dryRun": "true"})
    body = await resp.json()
    assert resp.status == 200 and body["dryRun"] is True
    assert [c["type"] for c in body["changes"]] == ["ADDED"]
    assert api.store.revision == 0
    resp = await api.post("/api/v1/config", json={"items": [doc]})
    assert resp.status == 200
    assert api.store.get("DestinationRule", "prod", "ratings") is not None


async def test_invalid_apply_returns_every_error_and_stores_nothing(api):
    text = vs(80) + "---\n" + BROKEN + "---\n" + BROKEN.replace("name: broken", "name: broken2")
    resp = await api.post("/api/v1/config", data=text, params={"file": "reviews.yaml"})
    assert resp.status == 400
    errors = (await resp.json())["errors"]
    assert {e["name"] for e in errors} == {"broken", "broken2"}
    first = next(e for e in errors if e["name"] == "broken")
    assert first["file"] == "reviews.yaml"
    assert first["line"] == 12 + 1 + 11  # 12-line VirtualService, `---`, `wieght` on line 11
    assert first["kind"] == "VirtualService" and first["namespace"] == "prod"
    assert first["path"] == "spec.http[0].route[0].wieght"
    assert first["reason"] and first["message"].startswith(f"reviews.yaml:{first['line']}: VirtualService prod/broken:")
    assert api.store.revision == 0


async def test_not_enforced_kinds_warn(api):
    envoyfilter = """\
apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {name: lua, namespace: istio-system}
spec:
  configPatches: []
"""
    resp = await post_yaml(api, envoyfilter)
    body = await resp.json()
    assert resp.status == 200, body
    assert any("EnvoyFilter" in w and "not enforced" in w for w in body["warnings"])
    assert (await (await post_yaml(api, DR)).json())["warnings"] == []


async def test_stale_resource_version_is_a_conflict(api):
    await post_yaml(api, vs(80))
    await post_yaml(api, vs(60))  # now at resourceVersion 2
    stale = vs(10).replace("  name: reviews\n", "  name: reviews\n  resourceVersion: \"1\"\n")
    resp = await post_yaml(api, stale)
    assert resp.status == 409
    (err,) = (await resp.json())["errors"]
    assert err["path"] == "metadata.resourceVersion"
    assert api.store.get("VirtualService", "default", "reviews").spec.http[0].route[0].weight == 60
    fresh = stale.replace('"1"', '"2"')
    assert (await post_yaml(api, fresh)).status == 200


async def test_get_list_delete_with_kind_aliases(api):
    await post_yaml(api, vs(80) + "---\n" + DR + "---\n" + BROKEN.replace("wieght", "weight"))
    for alias in ("VirtualService", "virtualservice", "virtualservices", "vs",
                  "virtualservices.networking.istio.io"):
        resp = await api.get(f"/api/v1/config/{alias}/default/reviews")
        assert resp.status == 200, alias
        body = await resp.json()
        assert body["kind"] == "VirtualService" and body["spec"]["hosts"] == ["reviews"]
        assert body["metadata"]["resourceVersion"] == "1"
    items = (await (await api.get("/api/v1/config", params={"kind": "vs"})).json())["items"]
    assert [(i["metadata"]["namespace"], i["metadata"]["name"]) for i in items] == [
        ("default", "reviews"), ("prod", "broken")]
    items = (await (await api.get("/api/v1/config", params={"namespace": "default"})).json())["items"]
    assert sorted(i["kind"] for i in items) == ["DestinationRule", "VirtualService"]
    assert (await api.get("/api/v1/config/nosuchkind/default/x")).status == 404
    assert (await api.get("/api/v1/config/dr/default/nope")).status == 404
    resp = await api.delete("/api/v1/config/dr/default/reviews")
    assert resp.status == 200 and (await resp.json())["type"] == "DELETED"
    assert (await api.delete("/api/v1/config/dr/default/reviews")).status == 404
    assert api.store.get("DestinationRule", "default", "reviews") is None


async def test_registry_lifecycle(api):
    body = {"name": "reviews-v1-0", "namespace": "default", "labels": {"app": "reviews"},
            "serviceAccount": "bookinfo-reviews", "address": "10.10.0.7",
            "ports": {"http": 9080}, "locality": "local/zone-a", "weight": 2}
    resp = await api.post("/api/v1/registry/instances", json=body)
    assert resp.status == 200
    assert await resp.json() == {"name": "reviews-v1-0", "namespace": "default", "ttlSeconds": 30}
    (inst,) = api.registry.instances()
    assert (inst.service_account, inst.weight, dict(inst.ports)) == ("bookinfo-reviews", 2, {"http": 9080})
    resp = await api.put("/api/v1/registry/instances/default/reviews-v1-0/heartbeat",
                         json={"healthy": False})
    assert resp.status == 200
    items = (await (await api.get("/api/v1/registry/instances")).json())["items"]
    assert [(i["name"], i["healthy"], i["address"]) for i in items] == [("reviews-v1-0", False, "10.10.0.7")]
    assert (await api.put("/api/v1/registry/instances/default/ghost/heartbeat", json={})).status == 404
    assert (await api.delete("/api/v1/registry/instances/default/reviews-v1-0")).status == 200
    assert (await api.delete("/api/v1/registry/instances/default/reviews-v1-0")).status == 404
    assert api.registry.instances() == ()


@pytest.mark.parametrize("body, reason", [
    ({"address": "10.0.0.1"}, "name is required"),
    ({"name": "a"}, "address is required"),
    ({"name": "a", "address": "not-an-ip"}, "not an IP address"),
    ({"name": "a", "address": "10.0.0.1", "ports": {"http": 70000}}, "ports must map"),
    ({"name": "a", "address": "10.0.0.1", "healthy": "yes"}, "healthy must be"),
])
async def test_invalid_registration(api, body, reason):
    resp = await api.post("/api/v1/registry/instances", json=body)
    assert resp.status == 400
    assert reason in (await resp.json())["errors"][0]["reason"]
    assert api.registry.instances() == ()


async def test_services_from_service_and_serviceentry(api):
    await post_yaml(api, SERVICE)
    for name, app in (("reviews-v1-0", "reviews"), ("ratings-v1-0", "ratings")):
        await api.post("/api/v1/registry/instances", json={
            "name": name, "address": "10.10.0.9", "labels": {"app": app}, "ports": {"http": 9080}})
    items = (await (await api.get("/api/v1/registry/services")).json())["items"]
    by_host = {s["hostname"]: s for s in items}
    assert set(by_host) == {"reviews.default.svc.cluster.local", "httpbin.org"}
    reviews = by_host["reviews.default.svc.cluster.local"]
    assert reviews["ports"] == [{"name": "http", "port": 9080, "protocol": "TCP", "targetPort": 9080}]
    assert [e["name"] for e in reviews["endpoints"]] == ["reviews-v1-0"]
    ext = by_host["httpbin.org"]
    assert (ext["resolution"], ext["location"]) == ("STATIC", "MESH_EXTERNAL")
    assert [e["address"] for e in ext["endpoints"]] == ["192.0.2.10"]


async def test_proxies_and_config_dump(api):
    items = (await (await api.get("/api/v1/proxies")).json())["items"]
    assert [p["id"] for p in items][:2] == [PRODUCTPAGE, REVIEWS]
    for ref in (PRODUCTPAGE, "productpage-v1-7d8f", "productpage-v1-7d8f.default", "sidecar~10.10.0.5"):
        resp = await api.get(f"/api/v1/proxies/{ref}/config")
        assert resp.status == 200, ref
        assert "configs" in await resp.json()
    assert (await api.get("/api/v1/proxies/sidecar/config")).status == 400  # ambiguous
    assert (await api.get("/api/v1/proxies/nobody/config")).status == 404


async def test_empty_apply_is_an_error(api):
    resp = await post_yaml(api, "# nothing here\n")
    assert resp.status == 400
    assert "no objects" in (await resp.json())["errors"][0]["reason"]


async def test_metrics(api):
    await post_yaml(api, DR)
    resp = await api.get("/metrics")
    assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    text = await resp.text()
    assert "ketch_config_revision 1\n" in text
    assert 'ketch_config_objects{kind="DestinationRule"} 1' in text
    assert "pilot_xds 3\n" in text
