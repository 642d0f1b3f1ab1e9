"""asyncio shells around `http2.H2Codec`: a downstream server connection and an upstream
client connection (a pool entry that multiplexes streams). They only move bytes; all HTTP/2
logic is in the codec.

API
---
- `H2ServerProtocol(on_request, **codec_options)`: an ``asyncio.Protocol``. For each request
  ``on_request(stream, head, end_stream)`` gets a `DownstreamStream` and the
  `http1.RequestHead`, and returns the stream's handler (``on_body``, ``on_trailers``,
  ``on_end``, ``on_reset(reason)``, optional ``on_drain``), or None to refuse the stream.
  A listener that sniffed the preface (`http2.is_h2_preface`) on a connection it already
  owns hands it over with ``H2ServerProtocol.takeover(transport, first_bytes)``.
  ``drain()`` sends a graceful GOAWAY and closes once open streams finish. Nothing is
  written before the client's preface has arrived whole; bytes that are not the preface
  close the connection silently.
- `DownstreamStream`: ``send_response(status, headers, end_stream=False)``,
  ``send_data(data, end_stream=False) -> bool`` (False: wait for the handler's
  ``on_drain``), ``send_trailers(headers)``, ``reset(code=CANCEL)``; ``peer`` is the
  downstream address.
- `H2ClientConnection(max_concurrent_streams=None, max_requests=None, on_capacity=None,
  on_closed=None)`: a pool entry. ``capacity()`` is how many more streams it may carry
  now: the peer's SETTINGS_MAX_CONCURRENT_STREAMS, the cluster's own cap
  (``max_concurrent_streams``), ``max_requests`` (Envoy's max_requests_per_connection: the
  connection retires after that many streams) and GOAWAY all count. ``open_stream(handler,
  method, authority, path, headers, scheme="http", end_stream=False) -> UpstreamStream``;
  the handler gets the exchange callbacks of `http2.H2Codec`'s client side.
  ``on_capacity(conn)`` fires when a stream finishes (hand the slot to a pending request);
  ``on_closed(conn)`` when the connection is gone (its open streams were reset with
  "connection termination").
- ``await connect_h2(host, port, ssl=None, server_hostname=None, timeout=5.0, **kw)`` opens
  one (ALPN ``h2`` when ``ssl`` is given).
"""

from __future__ import annotations

import asyncio
import ssl as _ssl
from collections.abc import Callable, Iterable
from typing import Any

from ketch.proxy.http2 import ErrorCodes, H2Codec, H2ProtocolError, is_h2_preface

__all__ = ["H2ServerProtocol", "DownstreamStream", "H2ClientConnection", "UpstreamStream",
           "connect_h2"]


class _Shell(asyncio.Protocol):
    codec: H2Codec
    transport: asyncio.Transport | None = None
    _flush_pending = False

    def flush(self) -> None:
        self._flush_pending = False
        data = self.codec.data_to_send()
        if data and self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def flush_soon(self) -> None:
        """Frames queued by stream calls go out together at the end of this loop turn:
        head, body and trailers of a response become one write (one syscall), not three."""
        if not self._flush_pending:
            self._flush_pending = True
            asyncio.get_running_loop().call_soon(self.flush)

    def _feed(self, data: bytes) -> bool:
        try:
            self.codec.feed(data)
        except H2ProtocolError:
            self.flush()  # h2 queued a GOAWAY(PROTOCOL_ERROR)
            if self.transport is not None:
                self.transport.close()
            return False
        self.flush()
        return True


class DownstreamStream:
    __slots__ = ("conn", "id")

    def __init__(self, conn: "H2ServerProtocol", stream_id: int) -> None:
        self.conn = conn
        self.id = stream_id

    @property
    def peer(self) -> Any:
        t = self.conn.transport
        return t.get_extra_info("peername") if t is not None else None

    def send_response(self, status: int, headers: Iterable[tuple[str, str]],
                      end_stream: bool = False) -> None:
        self.conn.codec.send_response(self.id, status, headers, end_stream)
        self.conn.flush_soon()
        if self.conn._draining:
            self.conn._maybe_close()

    def send_data(self, data: bytes, end_stream: bool = False) -> bool:
        done = self.conn.codec.send_data(self.id, data, end_stream)
        self.conn.flush_soon()
        if self.conn._draining:
            self.conn._maybe_close()
        return done

    def send_trailers(self, headers: Iterable[tuple[str, str]]) -> None:
        self.conn.codec.send_trailers(self.id, headers)
        self.conn.flush_soon()
        if self.conn._draining:
            self.conn._maybe_close()

    def reset(self, code: int = ErrorCodes.CANCEL) -> None:
        self.conn.codec.reset(self.id, code)
        self.conn.flush_soon()
        if self.conn._draining:
            self.conn._maybe_close()


class H2ServerProtocol(_Shell):
    def __init__(self, on_request: Callable[..., Any], **codec_options: Any) -> None:
        self._on_request = on_request
        self.codec = H2Codec(False, on_request=self._request, **codec_options)
        self.transport = None
        self._draining = False
        self._sniff: bytes | None = b""  # bytes held until the client preface is confirmed

    def _request(self, stream_id: int, head: Any, end_stream: bool) -> Any:
        return self._on_request(DownstreamStream(self, stream_id), head, end_stream)

    def connection_made(self, transport: Any) -> None:
        # Our SETTINGS wait for the client's preface: a peer that is not speaking HTTP/2
        # (say an HTTP/1 request that happens to start with "PRI") gets the connection
        # closed, never binary frames it cannot read.
        self.transport = transport

    def takeover(self, transport: Any, first_bytes: bytes = b"") -> None:
        transport.set_protocol(self)
        self.connection_made(transport)
        if first_bytes:
            self.data_received(first_bytes)

    def data_received(self, data: bytes) -> None:
        if self._sniff is not None:
            data = self._sniff + data
            verdict = is_h2_preface(data)
            if verdict is None:
                self._sniff = data
                return
            self._sniff = None
            if not verdict:
                if self.transport is not None:
                    self.transport.close()
                return
            self.codec.initiate()
        if self._feed(data) and self._draining:
            self._maybe_close()

    def connection_lost(self, exc: BaseException | None) -> None:
        self.codec.connection_lost()
        self.transport = None

    def drain(self) -> None:
        self._draining = True
        if self._sniff is not None:  # no HTTP/2 spoken yet: nothing to wind down
            if self.transport is not None:
                self.transport.close()
            return
        self.codec.drain()
        self.flush()
        self._maybe_close()

    def _maybe_close(self) -> None:
        if self.codec.active_streams == 0 and self.transport is not None:
            self.flush()  # anything a stream queued this turn goes out first
            self.transport.close()

    def __repr__(self) -> str:
        return f"<H2ServerProtocol {self.codec!r}>"


class UpstreamStream:
    __slots__ = ("conn", "id")

    def __init__(self, conn: "H2ClientConnection", stream_id: int) -> None:
        self.conn = conn
        self.id = stream_id

    def send_data(self, data: bytes, end_stream: bool = False) -> bool:
        done = self.conn.codec.send_data(self.id, data, end_stream)
        self.conn.flush_soon()
        if end_stream:
            self.conn._stream_done()  # the response may have ended first
        return done

    def send_trailers(self, headers: Iterable[tuple[str, str]]) -> None:
        self.conn.codec.send_trailers(self.id, headers)
        self.conn.flush_soon()
        self.conn._stream_done()

    def end(self) -> None:
        self.send_data(b"", end_stream=True)

    def reset(self, code: int = ErrorCodes.CANCEL) -> None:
        self.conn.codec.reset(self.id, code)
        self.conn.flush_soon()
        self.conn._stream_done()


class H2ClientConnection(_Shell):
    def __init__(self, max_concurrent_streams: int | None = None, max_requests: int | None = None,
                 on_capacity: Callable[["H2ClientConnection"], None] | None = None,
                 on_closed: Callable[["H2ClientConnection"], None] | None = None,
                 **codec_options: Any) -> None:
        self.codec = H2Codec(True, **codec_options)
        self.transport = None
        self.max_concurrent_streams = max_concurrent_streams
        self.max_requests = max_requests
        self.on_capacity = on_capacity
        self.on_closed = on_closed
        self.closed = False
        self._active = 0

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.codec.initiate()
        self.flush()

    def data_received(self, data: bytes) -> None:
        self._feed(data)
        self._stream_done()

    def connection_lost(self, exc: BaseException | None) -> None:
        self.closed = True
        self.transport = None
        self.codec.connection_lost()
        if self.on_closed is not None:
            self.on_closed(self)

    def capacity(self) -> int:
        if self.closed:
            return 0
        room = self.codec.capacity()
        if self.max_concurrent_streams is not None:
            room = min(room, self.max_concurrent_streams - self.codec.active_streams)
        if self.max_requests is not None:
            room = min(room, self.max_requests - self.codec.streams_opened)
        return max(0, room)

    @property
    def retired(self) -> bool:
        """Takes no new streams ever again (GOAWAY, max_requests, closed)."""
        return (self.closed or self.codec.goaway_received or
                (self.max_requests is not None and
                 self.codec.streams_opened >= self.max_requests))

    @property
    def active_streams(self) -> int:
        return self.codec.active_streams

    def open_stream(self, handler: Any, method: str, authority: str, path: str,
                    headers: Iterable[tuple[str, str]], scheme: str = "http",
                    end_stream: bool = False) -> UpstreamStream:
        if self.capacity() <= 0:
            raise RuntimeError("no stream capacity on this connection")
        sid = self.codec.open_stream(handler, method, authority, path, headers, scheme,
                                     end_stream)
        self._active = self.codec.active_streams
        self.flush_soon()
        return UpstreamStream(self, sid)

    def _stream_done(self) -> None:
        active = self.codec.active_streams
        freed = active < self._active
        self._active = active
        if self.retired and active == 0 and self.transport is not None:
            self.flush()
            self.transport.close()  # retired and idle: nothing more to carry
            return
        if freed and self.on_capacity is not None:
            self.on_capacity(self)

    def close(self) -> None:
        if self.transport is not None:
            self.codec.close()
            self.flush()
            self.transport.close()

    def __repr__(self) -> str:
        return (f"<H2ClientConnection [{self.codec.active_streams} active, "
                f"{self.codec.streams_opened} served, capacity {self.capacity()}]>")


async def connect_h2(host: str, port: int, ssl: _ssl.SSLContext | None = None,
                     server_hostname: str | None = None, timeout: float = 5.0,
                     **options: Any) -> H2ClientConnection:
    loop = asyncio.get_running_loop()
    conn = H2ClientConnection(**options)
    if ssl is not None:
        ssl.set_alpn_protocols(["h2"])
    await asyncio.wait_for(loop.create_connection(lambda: conn, host, port, ssl=ssl,
                                                  server_hostname=server_hostname), timeout)
    return conn
