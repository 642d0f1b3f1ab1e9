"""Deferred per-request stats: ProxyState.observe() records, flush_stats() aggregates.

Whatever reads the stats (Store/IstioMetrics methods, admin /stats, /stats/prometheus) must
see exactly what counting each request one by one would have produced; the bound and the 1 s
sweep keep directly read `.value`s fresh and memory bounded."""

from __future__ import annotations

import asyncio
import random
import re

import httpx
from aiohttp import web

from conftest import free_port
from proxy_harness import bootstrap, cluster, http_listener, route, running_proxy, upstream, vhost
from ketch.proxy import server as server_mod
from ketch.proxy.bootstrap import parse_bootstrap
from ketch.proxy.config import compile_cluster
from ketch.proxy.server import NodeInfo, ProxyState
from ketch.proxy.stats import ClusterStats, Histogram, HttpStats, IstioMetrics, Store
from ketch.proxy.xds import ConfigManager

OUT = "outbound|9080||reviews.default.svc.cluster.local"
IN = "inbound|9080||"


class _Hcm:
    def __init__(self, access_log: bool = False) -> None:
        self.access_log = access_log


class _Conn:
    def __init__(self, stats: HttpStats) -> None:
        self.stats, self.local, self.peer = stats, ("127.0.0.1", 15001), ("127.0.0.1", 40000)


class FakeStream:
    """What observe() reads from a stream.Stream."""

    def __init__(self, conn, rt, status: int, flags: list[str], t0: float, authority: str,
                 req_bytes: int, resp_bytes: int) -> None:
        self.conn, self.cluster, self.hcm = conn, rt, _Hcm()
        self.status, self.flags, self.t0 = status, flags, t0
        self.authority, self.req_bytes, self.resp_bytes = authority, req_bytes, resp_bytes
        self.head = self.upstream_host = self.attempt = None
        self.upstream_target, self.hdrs, self.request_id = "/", {}, ""


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def make_state(*names: str) -> ProxyState:
    b = parse_bootstrap(bootstrap([], [cluster(n, 1) for n in names]))
    st = ProxyState(asyncio.get_running_loop(), NodeInfo(), access_log=None)
    await ConfigManager(st, [], b.static_resources.clusters).apply_static()
    return st


def observe(st: ProxyState, clock: FakeClock, n: int, *, cname: str | None = OUT, status: int = 200,
            prefix: str = "outbound_0.0.0.0_9080", duration_s: float = 0.003) -> None:
    conn = _Conn(st.http_stats(prefix))
    rt = st.snapshot.clusters[cname] if cname else None
    for _ in range(n):
        st.observe(FakeStream(conn, rt, status, [], clock.now - duration_s, "reviews:9080", 10, 20))


def _assert_same_stat(got, want) -> None:
    assert type(got) is type(want), want.name
    if isinstance(want, Histogram):
        # the float sum is compared exactly: the bulk fold runs in arrival order
        assert (got.counts, got.sum, got.count) == (want.counts, want.sum, want.count), want.name
    else:
        assert got.value == want.value, want.name


async def test_deferred_aggregation_equals_one_by_one(monkeypatch):
    """Random mix of HCMs, clusters (and none), authorities, codes (0 too), flags, durations
    and sizes; bound flushes happen mid-way. Every touched stat, every Istio series and
    every float sum must equal counting each request on its own."""
    clock = FakeClock()
    monkeypatch.setattr(server_mod, "_monotonic", clock)
    st = await make_state(OUT, IN, "other")
    st.stats_flush_bound = 257
    ref_store, ref_istio = Store(), IstioMetrics()
    rng = random.Random(7)
    prefixes = ["outbound_0.0.0.0_9080", "inbound_0.0.0.0_9080"]
    conns = {p: _Conn(st.http_stats(p)) for p in prefixes}
    ref_http = {p: HttpStats(ref_store, p) for p in prefixes}
    ref_clusters = {n: ClusterStats(ref_store, n) for n in (OUT, IN, "other")}
    n = 3000
    for i in range(n):
        prefix = rng.choice(prefixes)
        cname = rng.choice([OUT, OUT, OUT, IN, "other", None])
        rt = st.snapshot.clusters[cname] if cname else None
        status = rng.choice([200] * 8 + [201, 404, 503, 0])
        flags = rng.choice([[], [], [], ["UF"], ["UF", "URX"]])
        authority = rng.choice(["reviews:9080", "reviews", "reviews.default.svc.cluster.local:9080"])
        q, r = rng.choice([0, 0, 17, 4096]), rng.randrange(0, 100000)
        duration_s = rng.choice([rng.random() * 0.05, rng.random() * 3, 0.0005, 0.001])
        clock.now += 0.01
        st.observe(FakeStream(conns[prefix], rt, status, flags, clock.now - duration_s, authority, q, r))
        # the reference: what the proxy did per request before deferring
        d = (clock.now - (clock.now - duration_s)) * 1000.0
        ref_http[prefix].downstream_rq_completed.value += 1
        ref_http[prefix].downstream_rq_time.record(d)
        if cname is not None and status:
            ref_clusters[cname].response(status)
            ref_clusters[cname].upstream_rq_time.record(d)
        labels = st._labels_for(cname or "-", authority)
        ref_istio.record_request(labels, status, "-", ",".join(flags) if flags else "-", d, q, r)
    assert len(st._records) < st.stats_flush_bound  # the bound flushed along the way
    per_request = re.compile(r"\.(upstream_rq_(\d+|\dxx|completed|time)|downstream_rq_(completed|time))$")
    compared = 0
    for want in ref_store:
        if per_request.search(want.name):
            got = st.store.get(want.name)  # a read: flushes the rest
            assert got is not None, want.name
            _assert_same_stat(got, want)
            compared += 1
    assert compared >= 2 * 2 + 3 * (2 + 4 + 3)  # HCMs x 2, clusters x (completed, time, codes, classes)
    assert st.istio.render_prometheus() == ref_istio.render_prometheus()
    assert st.istio._http.keys() == ref_istio._http.keys()
    for key, want in ref_istio._http.items():
        got = st.istio._http[key]
        assert (got.requests, got.duration, got.req_bytes, got.resp_bytes, got.d_sum, got.q_sum, got.r_sum) == (
            want.requests, want.duration, want.req_bytes, want.resp_bytes, want.d_sum, want.q_sum, want.r_sum)
    assert sum(s.downstream_rq_completed.value for s in ref_http.values()) == n


async def test_every_read_flushes(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(server_mod, "_monotonic", clock)
    st = await make_state(OUT)
    cs = st.snapshot.clusters[OUT].stats
    readers = [
        lambda: st.store.value(f"cluster.{OUT}.upstream_rq_200"),
        lambda: st.store.get(f"cluster.{OUT}.upstream_rq_completed").value,
        lambda: int(re.search(r"upstream_rq_2xx: (\d+)", st.store.render_text()).group(1)),
        lambda: next(e["value"] for e in st.store.render_json()["stats"]
                     if e.get("name") == f"cluster.{OUT}.upstream_rq_200"),
        lambda: int(re.search(r'envoy_cluster_upstream_rq_completed\{[^}]*\} (\d+)',
                              st.store.render_prometheus()).group(1)),
        lambda: next(s for s in st.store if s.name == f"cluster.{OUT}.upstream_rq_time").count,
        lambda: st.istio.requests_total(response_code="200"),
        lambda: int(re.search(r"^istio_requests_total\{.*\} (\d+)$", st.istio.render_prometheus(), re.M).group(1)),
    ]
    for i, read in enumerate(readers, 1):
        observe(st, clock, 5)
        assert cs.upstream_rq_completed.value == 5 * (i - 1)  # not yet aggregated
        assert read() == 5 * i, i
        assert cs.upstream_rq_completed.value == 5 * i


async def test_bound_triggers_flush(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(server_mod, "_monotonic", clock)
    st = await make_state(OUT)
    st.stats_flush_bound = 100
    cs = st.snapshot.clusters[OUT].stats
    c200, c2xx = cs.coded("upstream_rq", 200), cs.coded_class("upstream_rq", 2)  # direct: no read hook
    hs = st.http_stats("outbound_0.0.0.0_9080")
    observe(st, clock, 99)
    assert c200.value == 0 and hs.downstream_rq_completed.value == 0
    observe(st, clock, 1)  # the 100th record flushes all of them
    assert c200.value == c2xx.value == cs.upstream_rq_completed.value == 100
    assert hs.downstream_rq_completed.value == hs.downstream_rq_time.count == 100
    assert cs.upstream_rq_time.count == 100 and abs(cs.upstream_rq_time.sum - 300.0) < 1e-6
    observe(st, clock, 150)
    assert c200.value == 200  # 100 more flushed at the bound, 50 pending
    assert st.store.value(f"cluster.{OUT}.upstream_rq_200") == 250


async def test_periodic_sweep_flushes_within_a_second():
    st = await make_state(OUT)
    st.start_sweeps()  # the runner's 1 s period
    try:
        cs = st.snapshot.clusters[OUT].stats
        c503, c5xx = cs.coded("upstream_rq", 503), cs.coded_class("upstream_rq", 5)
        conn = _Conn(st.http_stats("p"))
        rt = st.snapshot.clusters[OUT]
        loop = asyncio.get_running_loop()
        for _ in range(7):
            st.observe(FakeStream(conn, rt, 503, ["UF"], loop.time(), "reviews", 0, 0))
        assert c503.value == 0  # read directly: no hook ran
        await asyncio.sleep(1.25)
        assert c503.value == c5xx.value == cs.upstream_rq_completed.value == 7
        assert st.http_stats("p").downstream_rq_completed.value == 7
        assert sum(s.requests for s in st.istio._http.values()) == 7
    finally:
        await st.drain(0)


async def test_records_survive_a_config_swap(monkeypatch):
    """Requests observed on a cluster runtime that is replaced (or removed) before anybody
    reads still count, under the cluster's name."""
    clock = FakeClock()
    monkeypatch.setattr(server_mod, "_monotonic", clock)
    st = await make_state(OUT, "gone")
    old = st.snapshot.clusters[OUT]
    observe(st, clock, 3, cname=OUT)
    observe(st, clock, 4, cname="gone", status=503)
    b = parse_bootstrap(bootstrap([], [cluster(OUT, 2)]))  # other endpoints: a new runtime; "gone" removed
    st.set_clusters({c.name: compile_cluster(c) for c in b.static_resources.clusters})
    assert st.snapshot.clusters[OUT] is not old and "gone" not in st.snapshot.clusters
    observe(st, clock, 2, cname=OUT)
    assert st.store.value(f"cluster.{OUT}.upstream_rq_200") == 5
    assert st.store.value(f"cluster.{OUT}.upstream_rq_completed") == 5
    assert st.store.value("cluster.gone.upstream_rq_503") == 4
    assert st.store.get("cluster.gone.upstream_rq_time").count == 4
    assert st.istio.requests_total(destination_service="reviews.default.svc.cluster.local") == 5
    assert st.istio.requests_total(response_code="503") == 4


async def test_access_log_line_unchanged_format(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(server_mod, "_monotonic", clock)
    st = await make_state(OUT)
    lines: list[str] = []

    class Sink:
        def write(self, s: str) -> None:
            lines.append(s)

    class Head:
        method, version = "GET", "1.1"

        def get(self, k):
            return "curl" if k == "user-agent" else None

    st.access_log = Sink()
    s = FakeStream(_Conn(st.http_stats("p")), st.snapshot.clusters[OUT], 200, [], clock.now - 0.0125,
                   "reviews:9080", 0, 5)
    s.hcm = _Hcm(access_log=True)
    s.head = Head()
    st.observe(s)
    st.observe(s)
    assert len(lines) == 2
    assert re.fullmatch(r'\[\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\] "GET / HTTP/1.1" 200 - 0 5 12 - "-" "curl" "-" '
                        rf'"reviews:9080" "-" {re.escape(OUT)} 127.0.0.1:15001 127.0.0.1:40000\n', lines[0]), lines[0]
    assert st.store.value(f"cluster.{OUT}.upstream_rq_200") == 2


async def test_real_proxy_stats_are_exact():
    async def ok(req: web.Request) -> web.Response:
        await req.read()
        return web.Response(text="ok" if req.path != "/missing" else "no", status=404 if req.path == "/missing" else 200)

    async with upstream(ok) as up:
        port = free_port()
        b = bootstrap([http_listener(port, vhost(route("c")), name="web")], [cluster("c", up)])
        async with running_proxy(b) as p, httpx.AsyncClient() as c:
            n_ok, n_missing = 23, 6
            for _ in range(n_ok):
                assert (await c.post(f"http://127.0.0.1:{port}/x", content=b"abc")).status_code == 200
            for _ in range(n_missing):
                assert (await c.get(f"http://127.0.0.1:{port}/missing")).status_code == 404
            n = n_ok + n_missing
            base = f"http://127.0.0.1:{p.admin_bound}"
            text = (await c.get(f"{base}/stats")).text
            values = dict(line.split(": ", 1) for line in text.splitlines())
            assert values["cluster.c.upstream_rq_200"] == str(n_ok)
            assert values["cluster.c.upstream_rq_2xx"] == str(n_ok)
            assert values["cluster.c.upstream_rq_404"] == str(n_missing)
            assert values["cluster.c.upstream_rq_4xx"] == str(n_missing)
            assert values["cluster.c.upstream_rq_completed"] == str(n)
            assert values["http.web.downstream_rq_completed"] == str(n)
            prom = (await c.get(f"{base}/stats/prometheus")).text
            assert f'envoy_cluster_upstream_rq_time_count{{envoy_cluster_name="c"}} {n}' in prom
            assert f'envoy_cluster_upstream_rq_time_bucket{{envoy_cluster_name="c",le="+Inf"}} {n}' in prom
            assert f'envoy_http_downstream_rq_time_count{{envoy_http_conn_manager_prefix="web"}} {n}' in prom
            assert f'envoy_cluster_upstream_rq{{envoy_cluster_name="c",envoy_response_code="404"}} {n_missing}' in prom
            totals = {m.group(1): int(m.group(2)) for m in re.finditer(
                r'^istio_requests_total\{.*response_code="(\d+)".*\} (\d+)$', prom, re.M)}
            assert totals == {"200": n_ok, "404": n_missing}
            req_sum = re.search(r'^istio_request_bytes_sum\{.*response_code="200".*\} (\S+)$', prom, re.M)
            assert float(req_sum.group(1)) == 3 * n_ok
            counts = [int(x) for x in re.findall(r'^istio_request_duration_milliseconds_count\{.*\} (\d+)$', prom, re.M)]
            assert sorted(counts) == [n_missing, n_ok]
            # the health port's scrape endpoint reads the same, flushed numbers
            prom2 = (await c.get(f"http://127.0.0.1:{p.health_bound}/stats/prometheus")).text
            assert f'envoy_cluster_upstream_rq_completed{{envoy_cluster_name="c"}} {n}' in prom2
            # and a direct read of the state after the stats were served has nothing pending
            assert p.state.snapshot.clusters["c"].stats.upstream_rq_completed.value == n
