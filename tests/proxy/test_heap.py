"""The heap trimmer: when the proxy gives freed heap back (policy with an injected clock), and
that a real glibc trim runs and lowers a churned process's resident size."""

import subprocess
import sys
import textwrap

import pytest

from ketch.proxy.heap import HeapTrimmer, malloc_trim


class Calls:
    def __init__(self) -> None:
        self.n = 0

    def __call__(self) -> None:
        self.n += 1


def test_trims_only_after_churn_and_at_most_once_per_interval():
    calls = Calls()
    t = HeapTrimmer(calls, churn=100, interval=30.0)
    assert not t.sweep(5, 0.0)  # the first sweep sets the mark
    assert not t.sweep(104, 1.0)  # 99 new connections: not yet
    assert t.sweep(105, 2.0) and calls.n == 1
    assert not t.sweep(1000, 20.0)  # churn again, but within the interval
    assert t.sweep(1000, 32.0) and calls.n == 2
    assert not t.sweep(1050, 100.0)  # the mark moved to 1000 with that trim
    assert t.trims == 2


def test_steady_keep_alive_traffic_never_trims():
    calls = Calls()
    t = HeapTrimmer(calls, churn=256, interval=30.0)
    for second in range(600):  # 32 connections open for ten minutes
        t.sweep(32, float(second))
    assert calls.n == 0


def test_without_glibc_nothing_happens():
    t = HeapTrimmer(None, churn=1, interval=0.0)
    assert not t.sweep(0, 0.0) and not t.sweep(10, 1.0)
    t.trim_now()
    assert t.trims == 0


@pytest.mark.skipif(malloc_trim is None, reason="malloc_trim needs glibc")
def test_glibc_trim_returns_freed_heap():
    # a process that frees many small malloc'd blocks while keeping every 64th alive (what
    # closed connections among live ones leave): only a trim returns those pages
    script = textwrap.dedent("""
        import ctypes
        from ketch.proxy.heap import malloc_trim
        libc = ctypes.CDLL("libc.so.6")
        libc.malloc.restype = ctypes.c_void_p
        libc.free.argtypes = [ctypes.c_void_p]
        def rss():
            return int(open("/proc/self/status").read().split("VmRSS:")[1].split()[0])
        blocks = [libc.malloc(1000) for _ in range(60000)]
        for i, b in enumerate(blocks):
            if i % 64:
                libc.free(b)
        before = rss()
        malloc_trim()
        print(before, rss())
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    before, after = map(int, out.split())
    assert before - after > 20_000, (before, after)  # KB: most of the ~58 MB freed comes back


# -- closed connections are freed by refcounting, not left to the cyclic collector

async def test_closed_connections_leave_no_cyclic_garbage() -> None:
    """The runner collects the young generation only every 20000 allocations: a closed
    connection still in a reference cycle (llhttp holds its bound callbacks, the transport
    holds its protocol) would wait for that, and thousands of them fragment the heap."""
    import asyncio
    import gc
    from collections import Counter

    from aiohttp import web
    from conftest import free_port
    from proxy_harness import bootstrap, cluster, http_listener, route, running_proxy, upstream, vhost

    async def handler(request: web.Request) -> web.Response:
        # every other answer closes its upstream connection: upstream connections end too
        close = request.path == "/close"
        return web.Response(text="ok", headers={"Connection": "close"} if close else {})

    async def one(port: int, path: str) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(f"GET {path} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n".encode())
        assert b" 200 " in await reader.readuntil(b"\r\n")
        await reader.read()
        writer.close()

    listen = free_port()
    async with upstream(handler) as up:
        async with running_proxy(bootstrap([http_listener(listen, vhost(route("c")))], [cluster("c", up)])):
            await one(listen, "/")  # warm up: the first config, the pool
            gc.collect()
            gc.disable()
            gc.set_debug(gc.DEBUG_SAVEALL)
            try:
                for i in range(40):
                    await one(listen, "/close" if i % 2 else "/")
                await asyncio.sleep(0.1)  # connection_lost runs from the loop
                gc.collect()
                garbage = Counter(type(o).__name__ for o in gc.garbage)
            finally:
                gc.set_debug(0)
                gc.garbage.clear()
                gc.enable()
    proxy_types = {"Http1Downstream", "UpstreamConnection", "HttpRequestParser", "HttpResponseParser",
                   "Stream", "Attempt"}
    assert not proxy_types & garbage.keys(), garbage.most_common(10)
