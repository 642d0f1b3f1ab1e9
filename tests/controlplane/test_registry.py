"""Registry: registration, heartbeats with health, unregistration, TTL expiry on a fake clock."""

from __future__ import annotations

import asyncio
import threading

import pytest

from ketch.controlplane.instance import WorkloadInstance
from ketch.controlplane.registry import Registry, RegistryEventType, run_expiry


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def inst(name: str = "reviews-v1-0", ns: str = "default", **kw) -> WorkloadInstance:
    kw.setdefault("address", "10.0.0.1")
    kw.setdefault("labels", {"app": "reviews", "version": "v1"})
    kw.setdefault("ports", {"http": 9080})
    return WorkloadInstance(name=name, namespace=ns, **kw)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def reg(clock: FakeClock) -> Registry:
    return Registry(clock=clock, ttl=30.0)


def test_register_adds_and_reregister_updates(reg: Registry):
    events = []
    reg.subscribe(events.append)
    reg.register(inst())
    assert reg.revision == 1
    reg.register(inst(address="10.0.0.9"))
    assert reg.revision == 2
    assert [e.type for e in events] == [RegistryEventType.ADDED, RegistryEventType.MODIFIED]
    assert [i.address for i in reg.instances()] == ["10.0.0.9"]
    assert events[1].instance.address == "10.0.0.9"


def test_identical_reregister_changes_nothing_but_refreshes_lease(reg: Registry, clock):
    reg.register(inst())
    clock.advance(25)
    assert reg.register(inst()) is None
    assert reg.revision == 1
    clock.advance(25)  # 50 s after first registration, 25 s after the refresh
    assert reg.expire() == []
    assert len(reg.instances()) == 1


@pytest.mark.parametrize(
    "steps, expect_healthy, expect_revision",
    [
        ([True], True, 1),  # healthy heartbeat on a healthy instance: no change
        ([False], False, 2),  # turns unhealthy: kept, marked
        ([False, False], False, 2),  # still unhealthy: no new change
        ([False, True], True, 3),  # recovers
    ],
)
def test_heartbeat_health(reg: Registry, steps, expect_healthy, expect_revision):
    reg.register(inst())
    for healthy in steps:
        assert reg.heartbeat("default", "reviews-v1-0", healthy=healthy) is True
    (only,) = reg.instances()
    assert only.healthy is expect_healthy
    assert reg.revision == expect_revision


def test_heartbeat_unknown_instance_is_false(reg: Registry):
    assert reg.heartbeat("default", "nobody") is False
    assert reg.revision == 0


def test_unregister(reg: Registry):
    events = []
    reg.register(inst())
    reg.subscribe(events.append)
    assert reg.unregister("default", "reviews-v1-0") is True
    assert reg.unregister("default", "reviews-v1-0") is False
    assert reg.instances() == ()
    assert [(e.type, e.instance.name) for e in events] == [
        (RegistryEventType.DELETED, "reviews-v1-0")
    ]


def test_expiry_after_ttl_only_for_silent_instances(reg: Registry, clock):
    reg.register(inst("a"))
    reg.register(inst("b"))
    clock.advance(20)
    reg.heartbeat("default", "b", healthy=False)  # unhealthy but alive
    clock.advance(9.9)
    assert reg.expire() == []
    clock.advance(0.1)  # a: 30 s silent
    assert [i.name for i in reg.expire()] == ["a"]
    assert [(i.name, i.healthy) for i in reg.instances()] == [("b", False)]
    clock.advance(20)
    assert [i.name for i in reg.expire()] == ["b"]
    assert reg.instances() == ()


def test_instances_sorted_and_namespaced(reg: Registry):
    reg.register(inst("x", ns="prod"))
    reg.register(inst("x", ns="default"))
    reg.register(inst("a", ns="prod"))
    assert [i.key for i in reg.instances()] == [("default", "x"), ("prod", "a"), ("prod", "x")]
    assert reg.get("prod", "a") is not None and reg.get("prod", "zz") is None


def test_unsubscribe_and_failing_subscriber(reg: Registry):
    seen = []

    def broken(change):
        raise RuntimeError("boom")

    reg.subscribe(broken)
    unsubscribe = reg.subscribe(seen.append)
    reg.register(inst("a"))
    unsubscribe()
    reg.register(inst("b"))
    assert [c.instance.name for c in seen] == ["a"]
    assert reg.revision == 2


def test_concurrent_registrations_lose_nothing(clock):
    reg = Registry(clock=clock, ttl=30)
    revisions = []
    reg.subscribe(lambda c: revisions.append(c.revision))

    def worker(n: int) -> None:
        for i in range(200):
            reg.register(inst(f"w{n}-{i}"))
            reg.heartbeat("default", f"w{n}-{i}", healthy=False)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(reg.instances()) == 800
    assert reg.revision == 1600
    assert revisions == list(range(1, 1601))  # delivered in order, none skipped


async def test_run_expiry_coroutine(clock):
    reg = Registry(clock=clock, ttl=5)
    reg.register(inst())
    clock.advance(6)
    task = asyncio.create_task(run_expiry(reg, interval=0.01))
    try:
        for _ in range(500):
            if not reg.instances():
                break
            await asyncio.sleep(0.01)
        assert reg.instances() == ()
    finally:
        task.cancel()
