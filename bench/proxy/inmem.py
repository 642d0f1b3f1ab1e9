"""Python cost per proxied request, no sockets: fake transports on both sides."""
import asyncio, time, sys, io
sys.path[:0] = [str(__import__("pathlib").Path(__file__).resolve().parents[2] / "tests" / d) for d in ("proxy", "")]
from proxy_harness import bootstrap, cluster, http_listener, route, vhost
from ketch.proxy.bootstrap import parse_bootstrap
from ketch.proxy.server import ProxyState, NodeInfo
from ketch.proxy.xds import ConfigManager
from ketch.proxy.hcm import Http1Downstream
from ketch.proxy.upstream import UpstreamConnection

class FakeT:
    def __init__(self): self.out = []; self.closing = False
    def write(self, d): self.out.append(d)
    def is_closing(self): return False
    def close(self): self.closing = True
    def abort(self): self.closing = True
    def pause_reading(self): pass
    def resume_reading(self): pass
    def get_extra_info(self, k, d=None): return None

async def main():
    loop = asyncio.get_running_loop()
    b = parse_bootstrap(bootstrap([http_listener(1, vhost(route("c")))], [cluster("c", 2)]))
    st = ProxyState(loop, NodeInfo(), access_log=None)
    cm = ConfigManager(st, [], b.static_resources.clusters)
    await cm.apply_static()
    from ketch.proxy.config import compile_listener
    lc = compile_listener(b.static_resources.listeners[0])
    hcm = lc.filter_chains[0].http
    rt = st.snapshot.clusters["c"]
    host = next(iter(rt.hosts.values()))
    from ketch.proxy.upstream import HostPool
    pool = rt.pools[host.address] = HostPool(rt, host, ("127.0.0.1", 2))
    up = UpstreamConnection(pool); ut = FakeT(); up.connection_made(ut)
    pool.conns.add(up); pool.idle.append(up); rt.breakers.default.connections.try_acquire()
    st.start_sweeps()  # the 1 s sweep flushes deferred stats, as in the proxy
    down = Http1Downstream(st, hcm, ("127.0.0.1", 5555), ("127.0.0.1", 1), None, True, None)
    dt = FakeT(); down.connection_made(dt)
    req = b"GET /x HTTP/1.1\r\nHost: 127.0.0.1:1\r\nUser-Agent: wrk\r\n\r\n"
    resp = b"HTTP/1.1 200 OK\r\nServer: nginx\r\nDate: Sun, 22 Nov 2026 03:00:00 GMT\r\nContent-Type: text/plain\r\nContent-Length: 12\r\nConnection: keep-alive\r\n\r\nhello world\n"
    N = int(__import__("os").environ.get("N", "50000"))
    for i in range(2000):
        down.data_received(req); up.data_received(resp)
    dt.out.clear(); ut.out.clear()
    for r in range(5):
        dt.out.clear(); ut.out.clear()
        t0 = time.perf_counter(); c0 = time.process_time()
        for i in range(N):
            down.data_received(req); up.data_received(resp)
        t1 = time.perf_counter(); c1 = time.process_time()
        assert len(dt.out) == N, len(dt.out)
        print(f"{(t1-t0)/N*1e6:.1f} us wall, {(c1-c0)/N*1e6:.1f} us cpu per request (Python only)")
    print(dt.out[-1][:300])
    print(ut.out[-1][:300])
    if sys.argv[1:] == ["lines"]:
        count_lines(down, up, req, resp)
    elif len(sys.argv) > 1:
        import cProfile, pstats
        pr = cProfile.Profile(); pr.enable()
        for i in range(N):
            down.data_received(req); up.data_received(resp)
        pr.disable(); pstats.Stats(pr).sort_stats("tottime").print_stats(22)
def count_lines(down, up, req, resp) -> None:
    """Python lines and calls executed for one proxied request (the cost model that matters)."""
    from collections import Counter
    lines: Counter = Counter()
    calls = [0]

    ops: Counter = Counter()

    def tracer(frame, event, arg):
        if event == "call":
            calls[0] += 1
            frame.f_trace_lines = True
            frame.f_trace_opcodes = True
            return tracer
        if event == "line":
            lines[(frame.f_code.co_filename.rsplit("/", 1)[-1], frame.f_code.co_name)] += 1
        elif event == "opcode":
            ops[(frame.f_code.co_filename.rsplit("/", 1)[-1], frame.f_code.co_name)] += 1
        return tracer
    sys.settrace(tracer)
    down.data_received(req)
    up.data_received(resp)
    sys.settrace(None)
    print(f"python calls {calls[0]}, lines {sum(lines.values())}, bytecodes {sum(ops.values())}")
    for (f, fn), n in ops.most_common(40):
        print(f"  {n:4d} ops {lines[(f, fn)]:3d} lines  {f}:{fn}")


import gc
import uvloop

from ketch.proxy.runner import GC_THRESHOLD0

gc.collect()
gc.freeze()  # as the proxy's runner does
gc.set_threshold(GC_THRESHOLD0, 20, 20)
uvloop.run(main())

