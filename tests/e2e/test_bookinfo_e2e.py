"""Bookinfo under `ketch up`, through the ingress gateway, with Istio's own task YAML from
../shared/istio-samples/bookinfo/networking (root, pod mode)."""

from __future__ import annotations

import re

import pytest

from test_mesh_harness import EXAMPLES, NETWORKING, Mesh, http_get, no_leftovers, \
    skip_unless_pod_mode

pytestmark = [pytest.mark.e2e, pytest.mark.root, pytest.mark.slow]

PAGE = "http://127.0.0.1:8080/productpage"
JASON = "user=jason"
BLACK = 'glyphicon glyphicon-star" style="color: black"'
RED = 'glyphicon glyphicon-star" style="color: red"'
REVIEWS_UNAVAILABLE = "Sorry, product reviews are currently unavailable for this book."
RATINGS_UNAVAILABLE = "Ratings service is currently unavailable"

TIMEOUT_TASK = """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts:
  - reviews
  http:
  - route:
    - destination:
        host: reviews
        subset: v2
    timeout: 0.5s
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: ratings
spec:
  hosts:
  - ratings
  http:
  - fault:
      delay:
        percentage:
          value: 100
        fixedDelay: 2s
    route:
    - destination:
        host: ratings
        subset: v1
"""


@pytest.fixture(scope="module")
def mesh(tmp_path_factory):
    skip_unless_pod_mode(8080)
    m = Mesh(tmp_path_factory.mktemp("bookinfo-runtime"))
    try:
        m.up(EXAMPLES / "bookinfo" / "bookinfo.yaml", NETWORKING / "bookinfo-gateway.yaml",
             NETWORKING / "destination-rule-all.yaml")
        yield m
    finally:
        m.down()


def served_by(html: str) -> str:
    match = re.search(r"Reviews served by:</dt>\s*<u>([^<]*)</u>", html)
    return match.group(1) if match else ""


def pages(n: int, cookie: str | None = None) -> list[str]:
    out = []
    for _ in range(n):
        status, body, _ = http_get(PAGE, cookie=cookie)
        assert status == 200, (status, body[:300])
        out.append(body)
    return out


def test_up_ready_quickly_with_every_pod(mesh):
    assert mesh.up_seconds < 20, f"ketch up took {mesh.up_seconds:.1f} s"
    pods = mesh.pods()
    assert {p["deployment"] for p in pods} >= {
        "productpage-v1", "details-v1", "ratings-v1", "reviews-v1", "reviews-v2",
        "reviews-v3", "istio-ingressgateway"}
    assert all(p["phase"] == "Running" and p["ready"] for p in pods), pods
    assert len({p["ip"] for p in pods}) == len(pods)


def test_ingress_serves_productpage_and_404_outside_the_virtual_service(mesh):
    status, body, _ = http_get(PAGE)
    assert status == 200 and "The Comedy of Errors" in body
    assert "William Shakespeare" in body and served_by(body).startswith("reviews-v")
    status, _, _ = http_get("http://127.0.0.1:8080/not-routed")
    assert status == 404


def test_request_routing_all_v1(mesh):
    mesh.apply(NETWORKING / "virtual-service-all-v1.yaml")
    bodies = pages(30)
    assert all("glyphicon-star" not in b for b in bodies)
    assert {served_by(b).rsplit("-", 1)[0] for b in bodies} == {"reviews-v1"}


def test_request_routing_by_end_user(mesh):
    mesh.apply(NETWORKING / "virtual-service-all-v1.yaml",
               NETWORKING / "virtual-service-reviews-test-v2.yaml")
    for body in pages(10, cookie=JASON):
        assert body.count(BLACK) == 9, served_by(body)
    for body in pages(10):
        assert "glyphicon-star" not in body


def test_fault_injection_delay(mesh):
    mesh.apply(NETWORKING / "virtual-service-all-v1.yaml",
               NETWORKING / "virtual-service-reviews-test-v2.yaml",
               NETWORKING / "virtual-service-ratings-test-delay.yaml")
    status, body, took = http_get(PAGE, cookie=JASON)
    assert status == 200
    # productpage gives up on reviews after 3 s, twice; the 7 s delay never completes
    assert 5.5 <= took <= 7.5, took
    assert REVIEWS_UNAVAILABLE in body
    status, body, took = http_get(PAGE)
    assert status == 200 and took < 3.0 and REVIEWS_UNAVAILABLE not in body


def test_fault_injection_abort(mesh):
    mesh.apply(NETWORKING / "virtual-service-all-v1.yaml",
               NETWORKING / "virtual-service-reviews-test-v2.yaml",
               NETWORKING / "virtual-service-ratings-test-abort.yaml")
    for body in pages(3, cookie=JASON):
        assert RATINGS_UNAVAILABLE in body and BLACK not in body
    for body in pages(3):
        assert RATINGS_UNAVAILABLE not in body and REVIEWS_UNAVAILABLE not in body


def test_traffic_shifting(mesh):
    mesh.apply(NETWORKING / "virtual-service-all-v1.yaml",
               NETWORKING / "virtual-service-reviews-50-v3.yaml")
    # Binomial(100, 0.5) leaves 50 +/- 10 about 3.5 % of the time: one fresh batch of 100
    # may confirm a miss before the test calls it a failure.
    counts = []
    for _ in range(2):
        bodies = pages(100)
        red = sum(1 for b in bodies if RED in b)
        plain = sum(1 for b in bodies if "glyphicon-star" not in b)
        assert red + plain == 100  # only v1 and v3 serve
        counts.append(red)
        if 40 <= red <= 60:
            break
    assert 40 <= counts[-1] <= 60, counts
    mesh.apply(NETWORKING / "virtual-service-reviews-v3.yaml")
    assert all(b.count(RED) == 9 for b in pages(20))


def test_request_timeout(mesh):
    mesh.apply(TIMEOUT_TASK)
    status, body, took = http_get(PAGE)
    assert status == 200 and REVIEWS_UNAVAILABLE in body
    # 0.5 s route timeout, and productpage's one retry: about 1 s, not the 2 s delay
    assert 0.9 <= took <= 2.0, took


def test_logs_and_restart(mesh):
    pod = mesh.pod("ratings-v1")
    out = mesh.ketch("logs", "ratings-v1")
    assert out.returncode == 0 and "listening on 0.0.0.0:9080" in out.stdout
    out = mesh.ketch("restart", "ratings-v1")
    assert out.returncode == 0, out.stderr
    assert pod["name"] in out.stdout
    after = mesh.pod("ratings-v1")
    assert after["name"] == pod["name"] and after["pids"] != pod["pids"]
    assert mesh.ketch("logs", pod["name"]).stdout.count("listening on") == 2
    assert mesh.ketch("restart", "no-such-deployment").returncode != 0


def test_down_leaves_nothing_behind(mesh):
    pids = [pid for p in mesh.pods() for pid in p["pids"].values() if pid]
    assert pids
    out = mesh.down()
    assert out.returncode == 0, out.stderr
    assert no_leftovers(mesh) == {"netns": [], "links": [], "iptables": [], "etc": []}
    import os

    alive = [pid for pid in pids if os.path.exists(f"/proc/{pid}")]
    assert not alive, alive
    assert not (mesh.state_dir / "runtime.json").exists()
    assert mesh.pods() == []
