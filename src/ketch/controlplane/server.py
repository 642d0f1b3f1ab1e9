"""The control-plane process: `ketch control-plane`, Ketch's istiod.

One process, one uvloop event loop, running
- the gRPC ADS server (xDS on 15010) and the REST app (15014: API, `/metrics`);
- a watch from the config store and the registry into the debounced push loop, which builds
  an immutable Snapshot off the loop and hands it to the xDS server;
- the registry's TTL expiry.
SIGTERM/SIGINT stop it gracefully: stop accepting, let streams end within a deadline, close
the store. Everything is built in `ControlPlane.from_options` and passed in; nothing runs
at import time.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import grpc

from ketch.controlplane.xds import PushLoop, PushRequest, XdsServer
from ketch.controlplane.xds.cache import Generate

log = logging.getLogger(__name__)

# (configs, instances, mesh, version, previous snapshot or None) -> snapshot
BuildSnapshot = Callable[[list[Any], tuple[Any, ...], Any, str, Any], Any]


@dataclass(frozen=True)
class ControlPlaneOptions:
    state_dir: Path | None = None  # None: config in memory only
    host: str = "0.0.0.0"
    xds_port: int = 15010
    http_port: int = 15014
    mesh_config_file: Path | None = None
    registry_ttl: float = 30.0  # an instance without heartbeats for this long is dropped
    expiry_interval: float = 5.0
    debounce_quiet: float = 0.1  # Istio's PILOT_DEBOUNCE_AFTER
    debounce_max: float = 10.0  # Istio's PILOT_DEBOUNCE_MAX
    grace: float = 5.0  # seconds streams get to finish on shutdown
    partial_updates: bool = True  # pushes carry only changed RDS/EDS resources (Envoy SotW)


class ControlPlane:
    def __init__(self, options: ControlPlaneOptions, *, store: Any, registry: Any, mesh: Any,
                 generate: Generate, parse_node: Callable[[Any], Any],
                 build_snapshot: BuildSnapshot, make_app: Callable[..., Any] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.options = options
        self.store = store
        self.registry = registry
        self.mesh = mesh
        self.xds = XdsServer(generate, parse_node, clock=clock, partial=options.partial_updates)
        self._build_snapshot = build_snapshot
        self._last_snapshot: Any = None
        self._make_app = make_app
        self._clock = clock
        self.push_loop = PushLoop(self._push, clock=clock, quiet=options.debounce_quiet,
                                  max_delay=options.debounce_max)
        self._tasks: list[asyncio.Task[None]] = []
        self._unsubscribe: list[Callable[[], None]] = []
        self._grpc: grpc.aio.Server | None = None
        self._runner: Any = None
        self.xds_port = 0
        self.http_port = 0

    def __repr__(self) -> str:
        return f"<ControlPlane xds={self.xds_port} http={self.http_port} {self.xds!r}>"

    @classmethod
    def from_options(cls, options: ControlPlaneOptions) -> ControlPlane:
        from ketch.controlplane.node import ProxyNode
        from ketch.controlplane.registry import Registry
        from ketch.controlplane.rest import make_app
        from ketch.controlplane.snapshot import Snapshot
        from ketch.controlplane.translate import generate
        from ketch.model.mesh import load_mesh_config
        from ketch.store import FileStore, MemoryStore

        mesh = load_mesh_config(options.mesh_config_file)
        store = FileStore(options.state_dir) if options.state_dir else MemoryStore()

        def build(configs: list[Any], instances: tuple[Any, ...], mesh: Any, version: str,
                  previous: Any) -> Any:
            # `previous` lets a registry-only change reuse everything derived from config.
            return Snapshot.build(configs, instances, mesh, version, previous=previous)

        return cls(options, store=store, registry=Registry(ttl=options.registry_ttl),
                   mesh=mesh, generate=generate, parse_node=ProxyNode.from_node,
                   build_snapshot=build, make_app=make_app)

    # -- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        o = self.options
        self._tasks.append(asyncio.create_task(self.push_loop.run(), name="push-loop"))
        self._tasks.append(asyncio.create_task(self._expire_forever(), name="registry-expiry"))
        await asyncio.sleep(0)  # let the push loop bind to the loop before changes arrive
        self._unsubscribe.append(self.store.subscribe(self._on_config_change))
        self._unsubscribe.append(self.registry.subscribe(self._on_registry_change))
        await self._push(PushRequest(True, self._clock(), self._clock(), frozenset({"startup"})))

        self._grpc = grpc.aio.server(options=[
            ("grpc.max_send_message_length", 64 * 1024 * 1024),
            ("grpc.max_receive_message_length", 16 * 1024 * 1024),
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.min_recv_ping_interval_without_data_ms", 5_000),
            ("grpc.http2.max_ping_strikes", 0),  # never GOAWAY a proxy for pinging
        ])
        self.xds.add_to(self._grpc)
        self.xds_port = self._grpc.add_insecure_port(f"{_grpc_host(o.host)}:{o.xds_port}")
        if self.xds_port == 0:
            raise OSError(f"cannot listen for xDS on {o.host}:{o.xds_port}")
        await self._grpc.start()
        if self._make_app is not None:
            from aiohttp import web

            app = self._make_app(self.store, self.registry, self.xds, self.mesh)
            self._runner = web.AppRunner(app, access_log=None)
            await self._runner.setup()
            site = web.TCPSite(self._runner, o.host, o.http_port)
            await site.start()
            self.http_port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        log.info("control plane serving xDS on %s:%d, HTTP on %s:%d",
                 o.host, self.xds_port, o.host, self.http_port)

    async def stop(self) -> None:
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe.clear()
        if self._grpc is not None:
            self.xds.close_streams()
            await self._grpc.stop(self.options.grace)
        if self._runner is not None:
            await self._runner.cleanup()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        close = getattr(self.store, "close", None)
        if close is not None:
            close()

    # -- changes into pushes ------------------------------------------------------------

    def _on_config_change(self, change: Any) -> None:
        self.push_loop.notify_threadsafe(full=True, reason="config")

    def _on_registry_change(self, change: Any) -> None:
        self.push_loop.notify_threadsafe(full=False, reason="registry")

    def _version(self) -> str:
        return f"{self.store.revision}.{self.registry.revision}"

    async def _push(self, request: PushRequest) -> None:
        version = self._version()
        if version == self.xds.version:
            return  # changes that cancelled out or were already built
        for reason in request.reasons:
            self.xds.metrics.full_pushes.inc({"type": reason})
        self.xds.metrics.debounced.inc(None, request.count)
        started = time.perf_counter()
        # An endpoint change is latency-bound (issue 3: every proxy within 200 ms): a full
        # collection of this large, long-lived heap takes 100-200 ms, so the cyclic GC waits
        # until the EDS responses are handed to gRPC (reference counting still frees).
        pause_gc = not request.full and gc.isenabled()
        if pause_gc:
            gc.disable()
        try:
            try:
                # Build off the loop: ADS streams keep reading ACKs meanwhile.
                snapshot, version = await asyncio.to_thread(self._snapshot_now)
            except Exception:
                log.exception("building the snapshot failed; keeping version %s", self.xds.version)
                return
            log.info("snapshot %s built in %.3fs (%d changes: %s)", version,
                     time.perf_counter() - started, request.count, ",".join(sorted(request.reasons)))
            self.xds.set_snapshot(snapshot, version, change=request.first_change,
                                  endpoints_only=not request.full)
        finally:
            if pause_gc:
                self.xds.when_eds_out(gc.enable)

    def _snapshot_now(self) -> tuple[Any, str]:
        # Read the revisions first: a change landing during the read triggers another push.
        version = self._version()
        configs = self.store.list()
        instances = tuple(self.registry.instances())
        snapshot = self._build_snapshot(configs, instances, self.mesh, version,
                                        self._last_snapshot)
        self._last_snapshot = snapshot
        return snapshot, version

    async def _expire_forever(self) -> None:
        while True:
            await asyncio.sleep(self.options.expiry_interval)
            try:
                self.registry.expire()
            except Exception:
                log.exception("registry expiry failed")


def _grpc_host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


async def serve(options: ControlPlaneOptions, *,
                on_ready: Callable[[ControlPlane], None] | None = None) -> None:
    """Run a control plane until SIGTERM or SIGINT."""
    control_plane = ControlPlane.from_options(options)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    try:
        await control_plane.start()
        if on_ready is not None:
            on_ready(control_plane)
        await stopping.wait()
        log.info("stopping")
    finally:
        await control_plane.stop()


def main(options: ControlPlaneOptions,
         on_ready: Callable[[ControlPlane], None] | None = None) -> int:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency; keep working without
        asyncio.run(serve(options, on_ready=on_ready))
    else:
        uvloop.run(serve(options, on_ready=on_ready))
    return 0
