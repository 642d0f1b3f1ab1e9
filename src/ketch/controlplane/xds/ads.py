"""The ADS server: `envoy.service.discovery.v3.AggregatedDiscoveryService` on grpc.aio.

Each stream is one task that handles, in order, the proxy's requests and the pushes the
server asks of it. A push only sets a flag on the connection (at most one pending push per
proxy; later pushes merge into it, keeping the earliest change time) and the stream
regenerates from the newest snapshot when it gets to it. The one exception is the EDS-first
step of an endpoint-only push, computed in `set_snapshot` (same thread, no await) and queued
as a ready response, so responses still leave in the order they were computed.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from typing import Any, AsyncIterator, Callable

import grpc
from envoy.service.discovery.v3 import ads_pb2_grpc
from envoy.service.discovery.v3.discovery_pb2 import (
    DeltaDiscoveryRequest,
    DeltaDiscoveryResponse,
    DiscoveryRequest,
    DiscoveryResponse,
)

from ketch.controlplane.xds.cache import Generate, GenerationCache, ResourceSet
from ketch.controlplane.xds.connection import Connection, Response
from ketch.controlplane.xds.delta import DeltaConnection
from ketch.controlplane.xds.metrics import XdsMetrics
from ketch.controlplane.xds.status import config_dump, proxy_status
from ketch.controlplane.xds.types import ENDPOINT, FULL_STATE_TYPES, short_name
from ketch.controlplane.xds.watch import Watch

log = logging.getLogger(__name__)

ParseNode = Callable[[Any], Any]  # envoy Node -> proxy with .id and .scope_key()

SERVICE = "envoy.service.discovery.v3.AggregatedDiscoveryService"

_EOF = object()
_PUSH = object()


def _serialize(response: Response | DiscoveryResponse | DeltaDiscoveryResponse) -> bytes:
    if isinstance(response, Response):
        return response.to_bytes()
    return response.SerializeToString()


class _Stream:
    """The event queue of one stream and its one pending (merged) push."""

    def __init__(self) -> None:
        self.events: asyncio.Queue[object] = asyncio.Queue()
        self.push_pending = False
        self.push_change: float | None = None
        self.eds_queued = False  # an EDS-first response waits in `events`

    def note_change(self, change: float | None) -> None:
        """Remember a change for the next push without queueing that push yet."""
        if change is not None:
            self.push_change = change if self.push_change is None else min(change, self.push_change)

    def request_push(self, change: float | None) -> None:
        if change is not None:
            self.push_change = change if self.push_change is None else min(change, self.push_change)
        if not self.push_pending:
            self.push_pending = True
            self.events.put_nowait(_PUSH)

    def take_push(self) -> float | None:
        change, self.push_change, self.push_pending = self.push_change, None, False
        return change


class XdsServer(ads_pb2_grpc.AggregatedDiscoveryServiceServicer):
    def __init__(self, generate: Generate, parse_node: ParseNode, *,
                 clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time,
                 metrics: XdsMetrics | None = None, partial: bool = True) -> None:
        self.metrics = metrics or XdsMetrics()
        self._partial = partial  # RDS/EDS responses carry only what changed
        self.metrics.connected.set(None, 0)
        self._parse_node = parse_node
        self._clock = clock
        self._wall = wall
        self._cache = GenerationCache(generate)
        self._snapshot: Any = None
        self._version = ""
        self._connections: dict[str, tuple[Connection, _Stream]] = {}
        self._ids = itertools.count(1)
        # EDS-first responses queued but not yet handed to gRPC; the full comparison waits
        # for them (at most `defer_limit` seconds), so no stream's EDS is held up behind
        # other streams regenerating clusters and listeners.
        self._eds_in_flight = 0
        self._deferred: asyncio.TimerHandle | None = None
        self.defer_limit = 0.2
        self._when_eds_out: list[Callable[[], None]] = []

    def __repr__(self) -> str:
        return f"<XdsServer version={self._version!r} connections={len(self._connections)}>"

    # -- the snapshot and pushes --------------------------------------------------------

    @property
    def version(self) -> str:
        return self._version

    def set_snapshot(self, snapshot: Any, version: str, *, change: float | None = None,
                     endpoints_only: bool = False) -> None:
        """Make `snapshot` current and queue a push to every connected proxy.

        `endpoints_only` (a registry change): EDS goes out first, computed right here for
        every proxy and queued ahead of the full comparison, so a moved endpoint does not
        wait behind regenerating every proxy's clusters and listeners. Only names a proxy
        already subscribed are sent, so this cannot break Envoy's warming order."""
        self._snapshot, self._version = snapshot, version
        if endpoints_only:
            for conn, stream in self._connections.values():
                if stream.eds_queued:  # a slow proxy: its pending full push covers this
                    continue
                conn.version = version
                for response in conn.on_push(self._resources, change, types=(ENDPOINT,)):
                    stream.eds_queued = True
                    self._eds_in_flight += 1
                    stream.events.put_nowait(response)
        if self._eds_in_flight and self._defer():
            for _, stream in self._connections.values():
                stream.note_change(change)
            return
        self._push_all(change)

    def _defer(self) -> bool:
        if self._deferred is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # not on the loop (tests): push now
                return False
            self._deferred = loop.call_later(self.defer_limit, self._push_all)
        return True

    def when_eds_out(self, callback: Callable[[], None]) -> None:
        """Call `callback` once the EDS-first responses of the last push are handed to gRPC
        (or the full push stopped waiting for them); now if none are queued."""
        self._when_eds_out.append(callback)
        if self._deferred is None:
            self._eds_out()

    def _eds_out(self) -> None:
        callbacks, self._when_eds_out = self._when_eds_out, []
        for callback in callbacks:
            try:
                callback()
            except Exception:
                log.exception("when_eds_out callback failed")

    def _push_all(self, change: float | None = None) -> None:
        if self._deferred is not None:
            self._deferred.cancel()
            self._deferred = None
        self._eds_out()
        for _, stream in self._connections.values():
            stream.request_push(change)

    def _eds_sent(self, stream: _Stream) -> None:
        if stream.eds_queued:
            stream.eds_queued = False
            self._eds_in_flight -= 1
            if self._eds_in_flight == 0 and self._deferred is not None:
                self._push_all()

    def close_streams(self) -> None:
        """End every ADS stream (on shutdown): proxies keep their config and reconnect."""
        for _, stream in self._connections.values():
            stream.events.put_nowait(_EOF)

    def add_to(self, server: grpc.aio.Server) -> None:
        # Registered by hand rather than with the generated helper, so responses can be
        # serialized from pre-encoded resources (`Response.to_bytes`).
        handlers = {
            "StreamAggregatedResources": grpc.stream_stream_rpc_method_handler(
                self.StreamAggregatedResources,
                request_deserializer=DiscoveryRequest.FromString,
                response_serializer=_serialize),
            "DeltaAggregatedResources": grpc.stream_stream_rpc_method_handler(
                self.DeltaAggregatedResources,
                request_deserializer=DeltaDiscoveryRequest.FromString,
                response_serializer=_serialize),
        }
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))

    def _resources(self, proxy: Any, watch: Watch) -> ResourceSet | None:
        if self._snapshot is None:
            return None
        type_url = watch.type_url
        # Listeners and clusters asked for by name (proxyless gRPC) are generated under
        # those names; everything else is generated whole and filtered per proxy.
        names = (tuple(sorted(watch.names))
                 if not watch.wildcard and type_url in FULL_STATE_TYPES else None)
        started = time.perf_counter()
        try:
            return self._cache.resources(self._snapshot, self._version, proxy, type_url, names)
        except Exception:  # a translation bug must not take the stream down
            log.exception("generating %s for %s failed", short_name(type_url), proxy.id)
            return None
        finally:
            self.metrics.push_time.observe(time.perf_counter() - started,
                                           {"type": short_name(type_url).lower()})

    # -- the stream ---------------------------------------------------------------------

    # grpc.aio needs async generator functions here, not functions returning one.
    async def StreamAggregatedResources(self, request_iterator: AsyncIterator[DiscoveryRequest],
                                        context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        async for response in self._stream(request_iterator, context, Connection):
            yield response

    async def DeltaAggregatedResources(self, request_iterator: AsyncIterator[DeltaDiscoveryRequest],
                                       context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        async for response in self._stream(request_iterator, context, DeltaConnection):
            yield response

    async def _stream(self, request_iterator: AsyncIterator[Any],
                      context: grpc.aio.ServicerContext,
                      kind: type[Connection]) -> AsyncIterator[Any]:
        stream = _Stream()
        reader = asyncio.create_task(self._read(request_iterator, stream.events))
        conn: Connection | None = None
        try:
            while True:
                event = await stream.events.get()
                if event is _EOF:
                    return
                if isinstance(event, (Response, DeltaDiscoveryResponse)):  # EDS first
                    yield event
                    self._eds_sent(stream)
                    continue
                if event is _PUSH:
                    change = stream.take_push()
                    if conn is None:
                        continue
                    conn.version = self._version
                    responses = conn.on_push(self._resources, change)
                else:
                    if conn is None:
                        conn = await self._connect(event, stream, context, kind)
                    conn.version = self._version
                    responses = conn.on_request(event, self._resources)
                for response in responses:
                    yield response
        finally:
            reader.cancel()
            self._eds_sent(stream)
            if conn is not None:
                self._disconnect(conn)

    async def _read(self, requests: AsyncIterator[DiscoveryRequest],
                    events: asyncio.Queue[object]) -> None:
        try:
            async for request in requests:
                events.put_nowait(request)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the client went away mid-read
            log.debug("ADS read ended: %s", exc)
        events.put_nowait(_EOF)

    async def _connect(self, request: Any, stream: _Stream, context: grpc.aio.ServicerContext,
                       kind: type[Connection]) -> Connection:
        if not request.HasField("node") or not request.node.id:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "first request has no node id")
        try:
            proxy = self._parse_node(request.node)
        except Exception as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"bad node: {exc}")
        conn = kind(
            id=f"{request.node.id}-{next(self._ids)}", proxy=proxy, node_id=request.node.id,
            connected_at=self._wall(), metrics=self.metrics, clock=self._clock, wall=self._wall,
            partial=self._partial)
        self._connections[conn.id] = (conn, stream)
        self.metrics.connected.set(None, len(self._connections))
        log.info("ADS connection %s from %s", conn.id, context.peer())
        return conn

    def _disconnect(self, conn: Connection) -> None:
        self._connections.pop(conn.id, None)
        conn.close()
        self.metrics.connected.set(None, len(self._connections))
        log.info("ADS connection %s closed", conn.id)

    # -- what the REST app shows --------------------------------------------------------

    def connections(self) -> list[Connection]:
        return [conn for conn, _ in self._connections.values()]

    def proxies(self) -> list[dict]:
        return [proxy_status(conn) for conn in self.connections()]

    def config_dump(self, proxy_id: str) -> dict | None:
        matches = [c for c in self.connections() if proxy_id in (c.id, c.node_id)]
        return config_dump(matches[-1]) if matches else None

    def metrics_text(self) -> str:
        return self.metrics.text()
