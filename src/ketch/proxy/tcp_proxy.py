"""TCP proxy: opaque byte piping between a downstream connection and one cluster host.

The cluster is `cluster` or picked from `weighted_clusters` per connection; the host comes
from the cluster's balancer (or the original destination for ORIGINAL_DST clusters). Bytes
that arrive before the upstream connects are buffered; each side's write pressure pauses the
other side's reads; half-closes propagate; an idle timeout closes both sides.
"""

from __future__ import annotations

import asyncio
import time


class _Upstream(asyncio.Protocol):
    def __init__(self, down: TcpDownstream) -> None:
        self.down = down
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.down.from_upstream(data)

    def eof_received(self) -> bool:
        t = self.down.transport
        if t is not None and t.can_write_eof():
            t.write_eof()
        return True

    def connection_lost(self, exc) -> None:
        self.down.upstream_closed()

    def pause_writing(self) -> None:
        if self.down.transport is not None:
            self.down.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.down.transport is not None:
            self.down.transport.resume_reading()


class TcpDownstream(asyncio.Protocol):
    def __init__(self, state, config, peer: tuple[str, int], original_dst: tuple[str, int] | None,
                 listener_stats=None) -> None:
        self.state = state
        self.config = config
        self.peer = peer
        self.original_dst = original_dst
        self.transport: asyncio.Transport | None = None
        self.up: _Upstream | None = None
        self.pending: list[bytes] = []
        self.closed = False
        self.last = time.monotonic()
        self.idle_handle = None
        self.cluster = None
        self.host = None
        self.sent = self.received = 0
        self.t0 = time.monotonic()
        self.flags = ""

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.state.connections.add(self)
        snap = self.state.snapshot
        name = self.config.cluster
        if self.config.weighted:
            total = sum(w for _, w in self.config.weighted) or 1
            point = self.state.rng.random() * total
            for n, w in self.config.weighted:
                point -= w
                if point < 0:
                    name = n
                    break
            else:
                name = self.config.weighted[-1][0]
        cluster = snap.clusters.get(name)
        if cluster is None:
            self.flags = "NC"
            transport.close()
            return
        host = cluster.choose(None, frozenset(), self.original_dst)
        if host is None:
            self.flags = "UH"
            cluster.stats.upstream_cx_none_healthy.value += 1
            transport.close()
            return
        if not cluster.breakers.default.connections.try_acquire():
            self.flags = "UO"
            transport.close()
            return
        self.cluster, self.host = cluster, host
        cluster.stats.upstream_cx_total.value += 1
        self.state.loop.create_task(self._connect(cluster, host))
        if self.config.idle_timeout:
            self.idle_handle = self.state.loop.call_later(self.config.idle_timeout, self._idle_check)

    async def _connect(self, cluster, host) -> None:
        up = _Upstream(self)
        try:
            await asyncio.wait_for(self.state.loop.create_connection(lambda: up, host.metadata[0], host.metadata[1]),
                                   cluster.config.connect_timeout)
        except (OSError, asyncio.TimeoutError):
            cluster.stats.upstream_cx_connect_fail.value += 1
            cluster.breakers.default.connections.release()
            cluster.outlier_connect_failure(host)
            self.flags = "UF"
            self.cluster = None
            if self.transport is not None:
                self.transport.close()
            return
        cluster.stats.upstream_cx_active.value += 1
        if self.closed:
            up.transport.close()
            return
        self.up = up
        if self.pending:
            up.transport.write(b"".join(self.pending))
            self.pending.clear()
            self.transport.resume_reading()
        if getattr(self, "_eof_pending", False) and up.transport.can_write_eof():
            up.transport.write_eof()

    def data_received(self, data: bytes) -> None:
        self.last = time.monotonic()
        self.received += len(data)
        if self.up is not None and self.up.transport is not None:
            self.up.transport.write(data)
        else:
            self.pending.append(data)
            if sum(map(len, self.pending)) > 65536:
                self.transport.pause_reading()

    def eof_received(self) -> bool:
        if self.up is not None and self.up.transport is not None:
            if self.up.transport.can_write_eof():
                self.up.transport.write_eof()
        else:
            self._eof_pending = True
        return True

    def from_upstream(self, data: bytes) -> None:
        self.last = time.monotonic()
        self.sent += len(data)
        if self.transport is not None:
            self.transport.write(data)

    def upstream_closed(self) -> None:
        if self.cluster is not None:
            self.cluster.stats.upstream_cx_active.value -= 1
            self.cluster.stats.upstream_cx_destroy.value += 1
            self.cluster.breakers.default.connections.release()
            self.cluster = None
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc) -> None:
        if self.closed:
            return
        self.closed = True
        self.state.connections.discard(self)
        if self.idle_handle is not None:
            self.idle_handle.cancel()
        if self.up is not None and self.up.transport is not None:
            self.up.transport.close()
        self.state.observe_tcp(self)

    def pause_writing(self) -> None:
        if self.up is not None and self.up.transport is not None:
            self.up.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.up is not None and self.up.transport is not None:
            self.up.transport.resume_reading()

    def _idle_check(self) -> None:
        idle = self.config.idle_timeout
        left = self.last + idle - time.monotonic()
        if left <= 0:
            if self.transport is not None:
                self.transport.close()
            return
        self.idle_handle = self.state.loop.call_later(left, self._idle_check)
