"""Stats store: Envoy names, /stats and /stats/prometheus rendering, Istio metrics."""

from __future__ import annotations

import time

import pytest

from ketch.proxy.stats import (
    ClusterStats, HttpStats, IstioMetrics, ListenerStats, Store, istio_labels,
)

CLUSTER = "outbound|9080|v1|reviews.default.svc.cluster.local"


def test_cluster_stats_names_and_text_rendering():
    store = Store()
    cs = ClusterStats(store, CLUSTER)
    cs.upstream_rq_total.inc()
    cs.upstream_rq_total.inc()
    cs.response(200)
    cs.response(503)
    cs.upstream_cx_active.inc()
    cs.upstream_rq_pending_overflow.inc()
    assert store.value(f"cluster.{CLUSTER}.upstream_rq_total") == 2
    assert store.value(f"cluster.{CLUSTER}.upstream_rq_200") == 1
    assert store.value(f"cluster.{CLUSTER}.upstream_rq_5xx") == 1
    assert store.value(f"cluster.{CLUSTER}.upstream_rq_completed") == 2
    text = store.render_text()
    assert f"cluster.{CLUSTER}.upstream_cx_active: 1\n" in text
    assert f"cluster.{CLUSTER}.upstream_rq_pending_overflow: 1\n" in text
    lines = text.splitlines()
    assert lines == sorted(lines)
    assert store.render_text(filter="pending_overflow").count("\n") == 1


def test_prometheus_rendering_tags_like_envoy():
    store = Store()
    cs = ClusterStats(store, CLUSTER)
    cs.upstream_rq_total.inc(3)
    cs.response(200)
    cs.response(404)
    ls = ListenerStats(store, "0.0.0.0_15001")
    ls.downstream_cx_total.inc()
    hs = HttpStats(store, "outbound_0.0.0.0_9080")
    hs.downstream_rq_total.inc()
    hs.response(200)
    prom = store.render_prometheus()
    assert "# TYPE envoy_cluster_upstream_rq_total counter" in prom
    assert f'envoy_cluster_upstream_rq_total{{envoy_cluster_name="{CLUSTER}"}} 3' in prom
    assert (f'envoy_cluster_upstream_rq{{envoy_cluster_name="{CLUSTER}",'
            f'envoy_response_code="404"}} 1') in prom
    assert (f'envoy_cluster_upstream_rq_xx{{envoy_cluster_name="{CLUSTER}",'
            f'envoy_response_code_class="2"}} 1') in prom
    assert ('envoy_listener_downstream_cx_total{envoy_listener_address="0.0.0.0_15001"} 1'
            in prom)
    assert ('envoy_http_downstream_rq_total{envoy_http_conn_manager_prefix='
            '"outbound_0.0.0.0_9080"} 1') in prom
    assert "# TYPE envoy_cluster_upstream_cx_active gauge" in prom
    # Each family has exactly one TYPE line.
    types = [line for line in prom.splitlines() if line.startswith("# TYPE")]
    assert len(types) == len(set(types))


def test_histogram_buckets_and_summary():
    store = Store()
    h = store.histogram("cluster.c.upstream_rq_time")
    for v in (0.3, 3, 3, 7, 70, 20000):
        h.record(v)
    prom = store.render_prometheus()
    assert 'envoy_cluster_c_upstream_rq_time_bucket{le="0.5"} 1' in prom
    assert 'envoy_cluster_c_upstream_rq_time_bucket{le="5"} 3' in prom
    assert 'envoy_cluster_c_upstream_rq_time_bucket{le="100"} 5' in prom
    assert 'envoy_cluster_c_upstream_rq_time_bucket{le="+Inf"} 6' in prom
    assert "envoy_cluster_c_upstream_rq_time_count 6" in prom
    assert 1 <= h.quantile(50) <= 5
    assert "P50(nan," in store.render_text()


def test_kind_conflict_is_an_error():
    store = Store()
    store.counter("x.y")
    with pytest.raises(TypeError):
        store.gauge("x.y")


def test_istio_metrics_labels_and_histograms():
    m = IstioMetrics()
    peer = istio_labels(reporter="destination", source_workload="productpage-v1",
                        destination_workload="reviews-v1", destination_service=
                        "reviews.default.svc.cluster.local", request_protocol="http",
                        connection_security_policy="mutual_tls")
    for _ in range(3):
        m.record_request(peer, 200, "-", "-", 12.0, 0, 300)
    m.record_request(peer, 503, "-", "UO", 0.2, 10, 81)
    assert m.requests_total(response_code="200") == 3
    assert m.requests_total(response_flags="UO") == 1
    assert m.requests_total(source_workload="productpage-v1") == 4
    prom = m.render_prometheus()
    line = next(x for x in prom.splitlines()
                if x.startswith("istio_requests_total{") and 'response_code="200"' in x)
    assert line.endswith(" 3")
    for label in ('reporter="destination"', 'source_workload="productpage-v1"',
                  'destination_service="reviews.default.svc.cluster.local"',
                  'grpc_response_status="-"', 'response_flags="-"',
                  'connection_security_policy="mutual_tls"', 'source_app="unknown"'):
        assert label in line
    assert ('istio_request_duration_milliseconds_bucket{' in prom
            and 'response_code="200",grpc_response_status="-",response_flags="-",'
                'connection_security_policy="mutual_tls",le="25"} 3' in prom)
    assert "# TYPE istio_response_bytes histogram" in prom
    m.record_tcp_open(peer)
    m.record_tcp_close(peer, "-", 100, 50)
    prom = m.render_prometheus()
    assert any(x.startswith("istio_tcp_sent_bytes_total{") and x.endswith(" 100")
               and 'request_protocol="tcp"' in x for x in prom.splitlines())


def test_istio_unknown_label_is_rejected():
    with pytest.raises(KeyError):
        istio_labels(no_such_label="x")


def test_per_request_update_is_cheap():
    store = Store()
    cs = ClusterStats(store, CLUSTER)
    m = IstioMetrics()
    peer = istio_labels(reporter="source")
    n = 20000
    t0 = time.perf_counter()
    for _ in range(n):
        cs.upstream_rq_total.inc()
        cs.response(200)
        cs.upstream_rq_time.record(1.5)
        m.record_request(peer, 200, "-", "-", 1.5, 0, 100)
    per_request = (time.perf_counter() - t0) / n
    assert cs.upstream_rq_total.value == n
    assert per_request < 50e-6  # generous bound on a shared machine; ~3 µs idle


def test_json_rendering_like_envoy():
    store = Store()
    cs = ClusterStats(store, "c")
    cs.upstream_rq_total.inc(2)
    cs.upstream_rq_time.record(3.0)
    doc = store.render_json(filter="upstream_rq_t[io]")
    values = {e["name"]: e["value"] for e in doc["stats"] if "name" in e}
    assert values == {"cluster.c.upstream_rq_total": 2, "cluster.c.upstream_rq_timeout": 0}
    hist = doc["stats"][-1]["histograms"]
    assert hist["supported_quantiles"][2] == 50
    (entry,) = hist["computed_quantiles"]
    assert entry["name"] == "cluster.c.upstream_rq_time"
    assert 1 <= entry["values"][2]["cumulative"] <= 5
