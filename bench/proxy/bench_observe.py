"""Cost of `ProxyState.observe(stream)` per completed request, without sockets.

Builds a ProxyState with one static cluster and fake streams carrying the attributes observe()
reads, then times observe() per call (time.perf_counter over N calls, best of 5). When the
state defers its statistics (`flush_stats()`), observe() runs in chunks of bound-1 records
(so the bound flush never fires inside a timed chunk) and each chunk's flush is timed on its
own, reported per record; "total" is observe + flush per request.

    .venv/bin/python bench/proxy/bench_observe.py [N]
    PYTHONPATH=/tmp/before/src .venv/bin/python bench/proxy/bench_observe.py   # another tree
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[2] / "tests" / "proxy")]

from proxy_harness import bootstrap, cluster  # noqa: E402

from ketch.proxy.bootstrap import parse_bootstrap  # noqa: E402
from ketch.proxy.server import NodeInfo, ProxyState  # noqa: E402
from ketch.proxy.xds import ConfigManager  # noqa: E402


class _Hcm:
    __slots__ = ("access_log",)

    def __init__(self) -> None:
        self.access_log = False


class _Conn:
    __slots__ = ("stats", "local", "peer")

    def __init__(self, stats) -> None:
        self.stats, self.local, self.peer = stats, ("127.0.0.1", 15001), ("127.0.0.1", 40000)


class FakeStream:
    """The attributes observe() reads, as `stream.Stream` has them (slots)."""

    __slots__ = ("status", "flags", "t0", "conn", "cluster", "authority", "req_bytes", "resp_bytes", "hcm",
                 "head", "upstream_host", "attempt", "upstream_target", "hdrs", "request_id")

    def __init__(self, conn, cluster, hcm, status: int = 200, flags=(), t0: float = 0.0,
                 authority: str = "reviews:9080", req_bytes: int = 0, resp_bytes: int = 12) -> None:
        self.conn, self.cluster, self.hcm = conn, cluster, hcm
        self.status, self.flags, self.t0 = status, list(flags), t0
        self.authority, self.req_bytes, self.resp_bytes = authority, req_bytes, resp_bytes
        self.head = self.upstream_host = self.attempt = None
        self.upstream_target, self.hdrs, self.request_id = "/", {}, ""


async def make_state() -> ProxyState:
    loop = asyncio.get_running_loop()
    b = parse_bootstrap(bootstrap([], [cluster("outbound|9080||reviews.default.svc.cluster.local", 2)]))
    st = ProxyState(loop, NodeInfo(), access_log=None)
    await ConfigManager(st, [], b.static_resources.clusters).apply_static()
    return st


def streams(st: ProxyState, n: int = 64) -> list[FakeStream]:
    conn = _Conn(st.http_stats("outbound_0.0.0.0_9080"))
    hcm = _Hcm()
    rt = next(iter(st.snapshot.clusters.values()))
    now = time.monotonic()
    # mostly 200s with a few 503s, durations spread over the buckets
    return [FakeStream(conn, rt, hcm, status=503 if i % 16 == 0 else 200, flags=("UF",) if i % 16 == 0 else (),
                       t0=now - (i % 40) * 0.0007, req_bytes=0, resp_bytes=12 + i % 3) for i in range(n)]


def bench(st: ProxyState, pool: list[FakeStream], n: int) -> None:
    observe = st.observe
    calls = (pool * (n // len(pool) + 1))[:n]
    deferred = hasattr(st, "flush_stats")
    # Deferred: observe() in chunks just under the bound, each chunk timed alone, then the
    # flush of that chunk timed alone (a realistic list size for the allocator and the GC).
    chunk = st.stats_flush_bound - 1 if deferred else n
    chunks = [calls[i:i + chunk] for i in range(0, n, chunk)]
    clock = time.perf_counter
    best_obs = best_flush = float("inf")
    for _ in range(5):
        t_obs = t_flush = 0.0
        for part in chunks:
            t0 = clock()
            for s in part:
                observe(s)
            t1 = clock()
            t_obs += t1 - t0
            if deferred:
                st.flush_stats()
                t_flush += clock() - t1
        best_obs = min(best_obs, t_obs / n)
        best_flush = min(best_flush, t_flush / n)
    print(f"observe(): {best_obs * 1e6:.3f} us/call (best of 5, {n} calls)")
    if deferred:
        print(f"flush:     {best_flush * 1e6:.3f} us/record amortised (flushes of {chunk} records)")
        print(f"total:     {(best_obs + best_flush) * 1e6:.3f} us/request")


async def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    st = await make_state()
    bench(st, streams(st), n)
    total = st.store.value("http.outbound_0.0.0.0_9080.downstream_rq_completed")
    print(f"(sanity: downstream_rq_completed = {total})")


if __name__ == "__main__":
    asyncio.run(main())
