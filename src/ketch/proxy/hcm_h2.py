"""HTTP/2 (h2c) downstream for the connection manager: the same `Stream`s, over `http2_io`.

A connection that starts with the HTTP/2 preface is handed from `Http1Downstream` to an
`H2Downstream`, which owns an `H2ServerProtocol`; each HTTP/2 stream becomes a `hcm.Stream`
whose response goes out through the stream's `DownstreamStream` (no HTTP/1 framing), and a
stream that cannot finish is reset alone, not the connection.
"""

from __future__ import annotations

import time

from ketch.proxy.http2_io import H2ServerProtocol


class _Handler:
    """The codec's per-stream handler: request events into the Stream."""

    __slots__ = ("stream",)

    def __init__(self, stream) -> None:
        self.stream = stream

    def on_body(self, data: bytes) -> None:
        self.stream.conn.last_active = time.monotonic()
        self.stream.on_request_body(data)

    def on_trailers(self, headers) -> None:
        pass  # request trailers are not forwarded to HTTP/1.1 upstreams (Envoy drops them too)

    def on_end(self) -> None:
        self.stream.on_request_end()

    def on_reset(self, reason: str) -> None:
        self.stream.downstream_reset()

    def on_drain(self) -> None:
        self.stream.resume_response()


class H2Downstream:
    """Plays the part of a downstream connection for Streams multiplexed on one h2 connection."""

    explicit_proxy = False

    def __init__(self, h1) -> None:
        self.state = h1.state
        self.hcm = h1.hcm
        self.stats = h1.stats
        self.peer = h1.peer
        self.local = h1.local
        self.original_dst = h1.original_dst
        self.external = h1.external
        self.listener_stats = h1.listener_stats
        self.streams: list = []
        self.paused = False
        self.closed = False
        self.corked = None
        self.drain_after = False
        self.last_active = 0.0
        self.server = H2ServerProtocol(self._on_request)
        self.transport = None

    def takeover(self, transport, first_bytes: bytes) -> None:
        self.transport = transport
        self.state.connections.add(self)
        orig_lost = self.server.connection_lost

        def lost(exc) -> None:
            self.closed = True
            self.state.connections.discard(self)
            orig_lost(exc)
            self.stats.downstream_cx_active.value -= 1
        self.server.connection_lost = lost  # type: ignore[method-assign]
        self.server.takeover(transport, first_bytes)

    def _on_request(self, dstream, head, end_stream: bool):
        from ketch.proxy.stream import Stream

        self.stats.downstream_rq_total.value += 1
        self.stats.downstream_rq_http2_total.value += 1
        self.stats.downstream_rq_active.value += 1
        stream = Stream(self, head, h2=dstream)
        self.streams.append(stream)
        if end_stream:
            stream.request_complete = True
        stream.start()
        return _Handler(stream)

    # what Stream and Attempt call on their downstream connection
    def stream_done(self, stream, keep_alive: bool) -> None:
        self.stats.downstream_rq_active.value -= 1
        if stream in self.streams:
            self.streams.remove(stream)
        if self.state.draining or self.drain_after:
            self.server.drain()

    def write(self, data: bytes) -> None:
        pass  # HTTP/1-only writes (100-continue, tunnels) do not apply

    def cork(self) -> None:
        pass

    def uncork(self) -> None:
        pass

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    @property
    def tunnel(self):
        return None
