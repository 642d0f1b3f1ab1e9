"""Assemble and run one proxy process (or N workers sharing listeners with SO_REUSEPORT).

`Proxy(bootstrap, ...)` builds everything in `start()`, in the manner of linkerd's
`sidecar.rs`: state, static config, admin (15000) and readiness (15021), then the ADS client.
`stop(drain_timeout)` is the SIGTERM path: stop accepting, finish in-flight requests, exit.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import random
import signal
import sys

from envoy.config.bootstrap.v3 import bootstrap_pb2

from ketch.proxy.admin import admin_routes, health_routes, serve_admin
from ketch.proxy.bootstrap import ads_target, node_metadata
from ketch.proxy.server import NodeInfo, ProxyState
from ketch.proxy.xds import ConfigManager

GC_THRESHOLD0 = 20000  # allocations between young-generation collections (CPython: 700)

log = logging.getLogger("ketch.proxy")


def node_info(b: bootstrap_pb2.Bootstrap) -> NodeInfo:
    md = node_metadata(b)
    kind = b.node.id.split("~", 1)[0] if "~" in b.node.id else "sidecar"
    return NodeInfo(id=b.node.id or "ketch", cluster=b.node.cluster, workload=str(md.get("WORKLOAD_NAME", "unknown")),
                    namespace=str(md.get("NAMESPACE", "default")), kind=kind, metadata=md)


class Proxy:
    def __init__(self, bootstrap: bootstrap_pb2.Bootstrap, *, health_port: int | None = 15021,
                 admin_port: int | None = None, reuse_port: bool = False, serve_admin: bool = True,
                 access_log=None, rng: random.Random | None = None) -> None:
        self.bootstrap = bootstrap
        self.health_port = health_port
        self.admin_port = admin_port
        self.reuse_port = reuse_port
        self.serve_admin = serve_admin
        self.access_log = access_log
        self.rng = rng
        self.state: ProxyState | None = None
        self.config: ConfigManager | None = None
        self.ads = None  # ads.AdsClient when the bootstrap names a control plane
        self._servers: list[asyncio.base_events.Server] = []
        self._ads_task: asyncio.Task | None = None
        self.stopped = asyncio.Event()
        self.admin_bound: int | None = None
        self.health_bound: int | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        b = self.bootstrap
        node = node_info(b)
        explicit = str(node.metadata.get("INTERCEPTION_MODE", "")).upper() == "NONE"
        self.state = state = ProxyState(loop, node, rng=self.rng, explicit_proxy=explicit,
                                        reuse_port=self.reuse_port, access_log=self.access_log)
        state.start_sweeps()
        self.config = config = ConfigManager(state, b.static_resources.listeners, b.static_resources.clusters)
        await config.apply_static()
        target = ads_target(b)
        if target is None:
            state.ready = True
        else:
            from ketch.proxy.ads import AdsClient  # grpc (~20 MB) only when a control plane is configured

            def ready() -> None:
                state.ready = True
            self.ads = AdsClient(target, b.node, config, on_ready=ready, rng=self.rng)
        if self.serve_admin:
            admin_addr = ("127.0.0.1", 15000)
            if b.HasField("admin") and b.admin.address.HasField("socket_address"):
                sa = b.admin.address.socket_address
                admin_addr = (sa.address, sa.port_value)
            if self.admin_port is not None:
                admin_addr = (admin_addr[0], self.admin_port)
            self.admin_bound = await self._serve(admin_routes(state, config, on_quit=self._quit, ads=self.ads),
                                                 *admin_addr)
            if self.health_port is not None:
                self.health_bound = await self._serve(health_routes(state), "0.0.0.0", self.health_port)
        if self.ads is not None:
            self._ads_task = loop.create_task(self.ads.run())

    async def _serve(self, routes, host: str, port: int) -> int:
        server = await serve_admin(routes, host, port)
        self._servers.append(server)
        return server.sockets[0].getsockname()[1]

    def _quit(self) -> None:
        asyncio.get_running_loop().create_task(self.stop(0.0))

    async def stop(self, drain_timeout: float = 5.0) -> None:
        if self.stopped.is_set():
            return
        if self.ads is not None:
            self.ads.stop()
        if self._ads_task is not None:
            self._ads_task.cancel()
        if self.state is not None:
            await self.state.drain(drain_timeout)
        for server in self._servers:
            server.close()
        self.stopped.set()


async def serve(bootstrap: bootstrap_pb2.Bootstrap, drain_timeout: float, **kw) -> None:
    proxy = Proxy(bootstrap, **kw)
    await proxy.start()
    # The cyclic collector is pure overhead on the request path (no request leaves cycles
    # behind: Stream.finish breaks its one): move everything loaded so far (modules, protobuf
    # descriptors, the first config) out of its reach, and collect the young generation
    # far less often than CPython's default of every 700 allocations.
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_THRESHOLD0, 20, 20)
    if proxy.state is not None:
        proxy.state.heap.trim_now()  # what loading and the first config left free (~1.3 MB)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: loop.create_task(proxy.stop(drain_timeout)))
    await proxy.stopped.wait()


def run(bootstrap: bootstrap_pb2.Bootstrap, *, concurrency: int = 1, drain_timeout: float = 5.0,
        health_port: int | None = 15021, admin_port: int | None = None) -> int:
    """Blocking entry point for the CLI. With concurrency > 1, forks workers; worker 0 serves admin."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency
        uvloop = None

    def worker(index: int) -> None:
        kw = dict(health_port=health_port, admin_port=admin_port, reuse_port=concurrency > 1,
                  serve_admin=index == 0)
        if uvloop is not None:
            uvloop.run(serve(bootstrap, drain_timeout, **kw))
        else:
            asyncio.run(serve(bootstrap, drain_timeout, **kw))

    if concurrency <= 1:
        worker(0)
        return 0
    children = []
    for i in range(concurrency):
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                worker(i)
            except BaseException:  # noqa: BLE001 - report and exit the child
                logging.getLogger("ketch.proxy").exception("worker %d failed", i)
                code = 1
            os._exit(code)
        children.append(pid)

    def forward(signum, frame) -> None:
        for pid in children:
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    status = 0
    for pid in children:
        _, st = os.waitpid(pid, 0)
        status = status or os.waitstatus_to_exitcode(st)
    sys.stdout.flush()
    return status
