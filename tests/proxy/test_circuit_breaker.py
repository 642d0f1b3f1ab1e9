"""Circuit breakers: limits, overflow statistics, priorities, retry budgets."""

from __future__ import annotations

from envoy.config.cluster.v3 import circuit_breaker_pb2 as cb
from google.protobuf import wrappers_pb2 as w

from ketch.proxy.circuit_breaker import CircuitBreakers, RetryBudget, Thresholds
from ketch.proxy.stats import ClusterStats, Store


def make(thresholds=None, cluster="c"):
    store = Store()
    stats = ClusterStats(store, cluster)
    return CircuitBreakers(thresholds, stats, store, cluster), stats, store


def test_envoy_defaults():
    t = Thresholds()
    assert (t.max_connections, t.max_pending_requests, t.max_requests, t.max_retries) == (
        1024, 1024, 1024, 3)
    breakers, _, _ = make()
    r = breakers.resources()
    assert all(r.requests.try_acquire() for _ in range(1024))
    assert not r.requests.try_acquire()


def test_overflow_counts_envoy_stat_names():
    breakers, stats, store = make({0: Thresholds(max_connections=1, max_pending_requests=1,
                                                 max_requests=2, max_retries=1)})
    r = breakers.resources(0)
    assert r.connections.try_acquire()
    assert not r.connections.try_acquire()
    assert store.value("cluster.c.upstream_cx_overflow") == 1
    assert store.value("cluster.c.circuit_breakers.default.cx_open") == 1
    r.connections.release()
    assert store.value("cluster.c.circuit_breakers.default.cx_open") == 0
    assert r.connections.try_acquire()

    assert r.pending.try_acquire()
    assert not r.pending.try_acquire()
    assert r.requests.try_acquire() and r.requests.try_acquire()
    assert not r.requests.try_acquire()
    # Envoy books a max_requests overflow as a pending overflow too.
    assert stats.upstream_rq_pending_overflow.value == 2

    assert r.retries.try_acquire()
    assert not r.retries.try_acquire()
    assert store.value("cluster.c.upstream_rq_retry_overflow") == 1
    assert "connections 1/1" in repr(r)


def test_priorities_are_separate():
    breakers, _, _ = make({0: Thresholds(max_requests=1), 1: Thresholds(max_requests=2)})
    assert breakers.resources(0).requests.try_acquire()
    assert not breakers.resources(0).requests.try_acquire()
    assert breakers.resources(1).requests.try_acquire()
    assert breakers.resources(1).requests.try_acquire()
    assert not breakers.resources(1).requests.try_acquire()


def test_retry_budget_scales_with_active_requests():
    breakers, _, _ = make({0: Thresholds(retry_budget=RetryBudget(50.0, 1))})
    r = breakers.resources()
    assert r.retries.try_acquire()  # min concurrency 1 with nothing active
    assert not r.retries.try_acquire()
    for _ in range(6):
        r.requests.try_acquire()
    assert r.retries.limit() == 3
    assert r.retries.try_acquire() and r.retries.try_acquire()
    assert not r.retries.try_acquire()


def test_from_proto_with_track_remaining():
    msg = cb.CircuitBreakers(thresholds=[cb.CircuitBreakers.Thresholds(
        max_connections=w.UInt32Value(value=2), max_requests=w.UInt32Value(value=5),
        track_remaining=True,
        retry_budget=cb.CircuitBreakers.Thresholds.RetryBudget(
            min_retry_concurrency=w.UInt32Value(value=7)))])
    store = Store()
    breakers = CircuitBreakers.from_proto(msg, ClusterStats(store, "x"), store, "x")
    t = breakers.resources().thresholds
    assert (t.max_connections, t.max_pending_requests, t.max_requests) == (2, 1024, 5)
    assert t.retry_budget == RetryBudget(20.0, 7)
    breakers.resources().connections.try_acquire()
    assert store.value("cluster.x.circuit_breakers.default.remaining_cx") == 1
    assert CircuitBreakers.from_proto(None).resources().thresholds == Thresholds()
