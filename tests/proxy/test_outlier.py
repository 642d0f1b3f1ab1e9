"""Outlier detection: consecutive errors, ejection time growth, max percent, return."""

from __future__ import annotations

import random

import pytest
from envoy.config.cluster.v3 import outlier_detection_pb2 as od
from google.protobuf import duration_pb2, wrappers_pb2

from ketch.proxy.lb import Host, make_load_balancer
from ketch.proxy.outlier import OutlierConfig, OutlierDetector
from ketch.proxy.protoutil import Unsupported
from ketch.proxy.retry import CONNECT_FAILURE, OVERFLOW, PER_TRY_TIMEOUT, Outcome
from ketch.proxy.stats import ClusterStats, Store

OK, E500, E503 = Outcome.response(200), Outcome.response(500), Outcome.response(503)


def detector(n=4, **cfg):
    hosts = [Host(f"10.0.0.{i}:80") for i in range(n)]
    store = Store()
    cfg.setdefault("max_ejection_percent", 100)
    d = OutlierDetector(OutlierConfig(**cfg), hosts, random.Random(1),
                        ClusterStats(store, "c"))
    return d, hosts, store


def test_istio_shaped_proto():
    # What pilot sends for consecutive5xxErrors: 3, interval 1s, baseEjectionTime 2s.
    msg = od.OutlierDetection(
        consecutive_5xx=wrappers_pb2.UInt32Value(value=3),
        enforcing_consecutive_5xx=wrappers_pb2.UInt32Value(value=100),
        interval=duration_pb2.Duration(seconds=1),
        base_ejection_time=duration_pb2.Duration(seconds=2),
        max_ejection_percent=wrappers_pb2.UInt32Value(value=50),
        enforcing_success_rate=wrappers_pb2.UInt32Value(value=0))
    c = OutlierConfig.from_proto(msg)
    assert (c.consecutive_5xx, c.interval, c.base_ejection_time, c.max_ejection_percent) == (
        3, 1.0, 2.0, 50)
    assert c.consecutive_gateway_failure == 5 and c.enforcing_consecutive_gateway_failure == 0
    assert OutlierConfig.from_proto(od.OutlierDetection()) == OutlierConfig()
    assert c.enforcing_success_rate == 0
    assert OutlierConfig().enforcing_success_rate == 100  # Envoy's default
    with pytest.raises(Unsupported):
        OutlierConfig.from_proto(od.OutlierDetection(
            enforcing_local_origin_success_rate=wrappers_pb2.UInt32Value(value=100)))


def test_consecutive_5xx_ejects_and_success_resets():
    d, hosts, store = detector(consecutive_5xx=3)
    h = hosts[0]
    assert not d.record(h, E500, 0)
    assert not d.record(h, E500, 0)
    assert not d.record(h, OK, 0)  # resets the run
    assert not d.record(h, E500, 1) and not d.record(h, E500, 1)
    assert d.record(h, E500, 1)
    assert d.is_ejected(h) and h.ejected
    assert store.value("cluster.c.outlier_detection.ejections_enforced_consecutive_5xx") == 1
    assert store.value("cluster.c.outlier_detection.ejections_active") == 1


def test_gateway_failure_needs_enforcement():
    d, hosts, store = detector(consecutive_5xx=100, consecutive_gateway_failure=2)
    h = hosts[1]
    d.record(h, E503, 0)
    assert not d.record(h, Outcome.response(502), 0)  # detected, enforcing 0 by default
    assert not h.ejected
    assert store.value(
        "cluster.c.outlier_detection.ejections_detected_consecutive_gateway_failure") == 1
    d2, hosts2, _ = detector(consecutive_5xx=100, consecutive_gateway_failure=2,
                             enforcing_consecutive_gateway_failure=100)
    d2.record(hosts2[1], E503, 0)
    assert d2.record(hosts2[1], PER_TRY_TIMEOUT, 0)  # a timeout counts as 504


def test_local_origin_errors_count_as_5xx_unless_split():
    d, hosts, _ = detector(consecutive_5xx=2)
    d.record(hosts[0], CONNECT_FAILURE, 0)
    assert d.record(hosts[0], CONNECT_FAILURE, 0)
    assert not d.record(hosts[1], OVERFLOW, 0) and not d.record(hosts[1], OVERFLOW, 0)
    d, hosts, _ = detector(consecutive_5xx=2, split_external_local_origin_errors=True,
                           consecutive_local_origin_failure=3)
    d.record(hosts[0], CONNECT_FAILURE, 0)
    d.record(hosts[0], CONNECT_FAILURE, 0)
    assert not hosts[0].ejected
    assert d.record(hosts[0], CONNECT_FAILURE, 0)


def test_ejection_time_grows_with_ejections_and_is_capped():
    d, hosts, _ = detector(consecutive_5xx=1, interval=1.0, base_ejection_time=10.0,
                           max_ejection_time=25.0)
    h = hosts[0]
    assert d.record(h, E500, 0.0)
    assert d.tick(9.0) == []
    assert d.tick(10.0) == [h] and not h.ejected
    assert d.record(h, E500, 10.5)  # second ejection: 20 s
    assert d.tick(30.0) == []
    assert d.tick(30.5) == [h]
    assert d.record(h, E500, 31.0)  # third: 30 s capped at 25
    assert d.tick(55.9) == []
    assert d.tick(56.0) == [h]
    assert d.state(h)["ejections"] == 3
    # Healthy intervals forgive ejections one at a time.
    for t in (57.0, 58.0, 59.0):
        d.tick(t)
    assert d.state(h)["ejections"] == 0


def test_max_ejection_percent():
    d, hosts, store = detector(n=4, consecutive_5xx=1, max_ejection_percent=50)
    assert d.record(hosts[0], E500, 0)
    assert d.record(hosts[1], E500, 0)
    assert not d.record(hosts[2], E500, 0)  # would be 75%
    assert store.value("cluster.c.outlier_detection.ejections_overflow") == 1
    d, hosts, _ = detector(n=3, consecutive_5xx=1, max_ejection_percent=10)
    assert not d.record(hosts[0], E500, 0)  # 1/3 > 10%
    d, hosts, _ = detector(n=3, consecutive_5xx=1, max_ejection_percent=10,
                           always_eject_one_host=True)
    assert d.record(hosts[0], E500, 0)
    assert not d.record(hosts[1], E500, 0)


def test_ejected_host_leaves_the_balancer_and_returns():
    d, hosts, _ = detector(n=3, consecutive_5xx=2, base_ejection_time=5.0)
    lb = make_load_balancer("ROUND_ROBIN", hosts, rng=random.Random(1))
    bad = hosts[2]
    d.record(bad, E503, 0)
    if d.record(bad, E503, 0):
        lb.refresh()
    assert all(lb.choose() is not bad for _ in range(30))
    if d.tick(5.0):
        lb.refresh()
    assert any(lb.choose() is bad for _ in range(30))


def test_state_survives_host_set_update():
    d, hosts, _ = detector(n=2, consecutive_5xx=1)
    d.record(hosts[0], E500, 0)
    fresh = [Host(h.address) for h in hosts] + [Host("10.0.0.9:80")]
    d.set_hosts(fresh)
    assert fresh[0].ejected and d.is_ejected(fresh[0]) and d.ejections_active == 1
    assert "1 ejected of 3" in repr(d)


def test_success_rate_ejection_in_the_sweep():
    d, hosts, store = detector(n=6, consecutive_5xx=1000, max_ejection_percent=50)
    for i, h in enumerate(hosts):
        for k in range(200):
            bad = (i == 5 and k % 2 == 0) or (i < 5 and k % 50 == 0)  # 50% vs 98%
            d.record(h, E500 if bad else OK, 1.0)
    changed = d.tick(10.0)
    assert changed == [hosts[5]] and d.last_sweep_ejected == [hosts[5]] and hosts[5].ejected
    assert store.value("cluster.c.outlier_detection.ejections_enforced_success_rate") == 1
    # Counters restart each interval: too few requests now, nothing more happens.
    assert d.tick(20.0) == []


def test_success_rate_needs_enough_hosts_and_volume():
    d, hosts, _ = detector(n=4, consecutive_5xx=1000)  # fewer than 5 hosts
    for h in hosts:
        for k in range(200):
            d.record(h, E500 if h is hosts[0] else OK, 1.0)
    assert d.tick(10.0) == [] and not hosts[0].ejected


def test_failure_percentage_ejection_when_enforced():
    d, hosts, store = detector(n=5, consecutive_5xx=1000, enforcing_success_rate=0,
                               enforcing_failure_percentage=100)
    for h in hosts:
        for k in range(60):
            d.record(h, E503 if (h is hosts[2] and k % 10) else OK, 1.0)  # 90% failures
    assert d.tick(10.0) == [hosts[2]]
    assert store.value("cluster.c.outlier_detection.ejections_enforced_failure_percentage") == 1
