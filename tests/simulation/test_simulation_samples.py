"""Every Bookinfo task VirtualService from Istio's samples, applied on top of the platform and
`destination-rule-all.yaml`: a described call from productpage (or reviews) → where it goes."""

from __future__ import annotations

from pathlib import Path

import pytest

from ketch.controlplane.instance import WorkloadInstance
from ketch.controlplane.snapshot import Snapshot
from ketch.controlplane.translate.testing import load_configs, proxy
from sim_harness import Call, Simulation


def S(subset: str, host: str) -> str:
    return f"outbound|9080|{subset}|{host}.default.svc.cluster.local"


JASON = {"end-user": "jason"}
PRODUCTPAGE = {"app": "productpage", "version": "v1"}
REVIEWS = {"app": "reviews", "version": "v3"}

CASES = [
    # (task file, source labels, call, expected target)
    ("virtual-service-all-v1.yaml", PRODUCTPAGE, Call("reviews", 9080, "/reviews/0"), S("v1", "reviews")),
    ("virtual-service-all-v1.yaml", PRODUCTPAGE, Call("details", 9080, "/details/0"), S("v1", "details")),
    ("virtual-service-all-v1.yaml", REVIEWS, Call("ratings", 9080, "/ratings/0"), S("v1", "ratings")),
    ("virtual-service-reviews-50-v3.yaml", PRODUCTPAGE, Call("reviews", 9080, "/"),
     f"{S('v1', 'reviews')}=50,{S('v3', 'reviews')}=50"),
    ("virtual-service-reviews-90-10.yaml", PRODUCTPAGE, Call("reviews", 9080, "/"),
     f"{S('v1', 'reviews')}=90,{S('v2', 'reviews')}=10"),
    ("virtual-service-reviews-v2-v3.yaml", PRODUCTPAGE, Call("reviews", 9080, "/"),
     f"{S('v2', 'reviews')}=50,{S('v3', 'reviews')}=50"),
    ("virtual-service-reviews-test-v2.yaml", PRODUCTPAGE, Call("reviews", 9080, "/", headers=JASON),
     S("v2", "reviews")),
    ("virtual-service-reviews-test-v2.yaml", PRODUCTPAGE, Call("reviews", 9080, "/"), S("v1", "reviews")),
    ("virtual-service-reviews-v3.yaml", PRODUCTPAGE, Call("reviews", 9080, "/"), S("v3", "reviews")),
    ("virtual-service-details-v2.yaml", PRODUCTPAGE, Call("details", 9080, "/"), S("v2", "details")),
    ("virtual-service-ratings-db.yaml", REVIEWS, Call("ratings", 9080, "/"), S("v2", "ratings")),
    ("virtual-service-ratings-test-delay.yaml", REVIEWS, Call("ratings", 9080, "/", headers=JASON),
     S("v1", "ratings")),
    ("virtual-service-ratings-test-abort.yaml", REVIEWS, Call("ratings", 9080, "/"), S("v1", "ratings")),
]


@pytest.fixture(scope="module")
def base(samples_dir: Path) -> list:
    b = samples_dir / "bookinfo"
    return load_configs((b / "platform/bookinfo.yaml").read_text() + "\n---\n"
                        + (b / "networking/destination-rule-all.yaml").read_text())


@pytest.mark.parametrize("task,labels,call,expected", CASES,
                         ids=[f"{t}:{c.host}{dict(c.headers)}" for t, _, c, _ in CASES])
def test_bookinfo_task(samples_dir: Path, base: list, task: str, labels, call: Call,
                       expected: str) -> None:
    configs = base + load_configs((samples_dir / "bookinfo/networking" / task).read_text())
    instances = [WorkloadInstance(f"{app}-{v}", "default", f"10.1.{i}.{j}",
                                  {"app": app, "version": v}, ports={"http": 9080})
                 for i, app in enumerate(("productpage", "details", "reviews", "ratings"))
                 for j, v in enumerate(("v1", "v2", "v3"), start=1)]
    sim = Simulation(Snapshot.build(configs, instances), proxy(labels=labels, ip="10.9.9.9"))
    assert sim.run(call).target == expected


def test_task_faults_reach_the_route(samples_dir: Path, base: list) -> None:
    """The delay task delays only jason's calls; the abort task aborts only jason's."""
    for task, want in (("virtual-service-ratings-test-delay.yaml", {"delay_s": 7.0, "delay_fraction": 1.0}),
                       ("virtual-service-ratings-test-abort.yaml",
                        {"abort_status": 500, "abort_fraction": 1.0})):
        configs = base + load_configs((samples_dir / "bookinfo/networking" / task).read_text())
        sim = Simulation(Snapshot.build(configs), proxy(labels=REVIEWS))
        jason = sim.run(Call("ratings", 9080, "/ratings/0", headers=JASON)).route_obj
        other = sim.run(Call("ratings", 9080, "/ratings/0")).route_obj
        fault = jason.per_filter["envoy.filters.http.fault"]
        assert {k: getattr(fault, k) for k in want} == want, (task, fault)
        assert "envoy.filters.http.fault" not in other.per_filter
