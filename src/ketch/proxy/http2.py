"""HTTP/2 codec for the proxy (sans-IO, on the `h2` library): server and client sides.

No sockets here: ``feed(data)`` parses bytes and calls stream handlers; every send method
queues frames that ``data_to_send()`` returns. The asyncio shells are in `http2_io`.

API
---
- `is_h2_preface(data) -> bool | None`: does a plaintext connection start with the HTTP/2
  client preface (h2c prior knowledge)? None while too few bytes arrived to tell.
- `H2Codec(client_side, on_request=None, max_concurrent_streams=1024,
  initial_window_size=1 MiB, max_frame_size=16384, connection_window_size=None,
  header_table_size=4096)`; ``initiate()`` queues the preface and SETTINGS.
  `H2Settings.from_proto(envoy.config.core.v3.Http2ProtocolOptions)` validates a
  cluster's or connection manager's options (`Unsupported` for what would change
  behaviour, e.g. ``connection_keepalive``, ``allow_metadata``) and ``.codec_options()``
  gives these keyword arguments.
- Server side: for each new stream ``on_request(stream_id, head, end_stream)`` is called with
  the same `http1.RequestHead` the HTTP/1.1 codec produces (``version="2"``, ``:authority``
  as a ``host`` header, ``:path`` as ``target``; ``chunked`` means "a body of unknown length
  follows", ``content_length`` from the header) and returns the stream's handler, which
  then receives ``on_body(data)``, ``on_trailers(headers)``, ``on_end()``,
  ``on_reset(reason)`` and ``on_drain()`` (its queued output was all sent). Answer with
  ``send_response(stream_id, status, headers, end_stream)``, ``send_data(stream_id, data,
  end_stream)``, ``send_trailers(stream_id, headers)``, ``reset(stream_id, code)``.
- Client side: ``open_stream(handler, method, authority, path, headers, scheme="http",
  end_stream=False) -> stream_id``. The handler gets the callbacks the HTTP/1.1 pool's
  exchanges get: ``on_response_head(ResponseHead)`` (``version="2"``),
  ``on_response_body(data)``, ``on_response_trailers(headers)``, ``on_response_end()``,
  ``on_upstream_reset(reason)``, and ``on_drain()``. A gRPC trailers-only response (one
  HEADERS frame ending the stream) arrives as a head with ``grpc-status`` then the end, so
  the router can classify it (and retry on it) at head time, as Envoy does; on the server
  side ``send_response`` with a ``grpc-status`` header ends the stream in that frame. ``capacity()`` is how many more streams
  the peer's SETTINGS_MAX_CONCURRENT_STREAMS allows; ``goaway_received`` marks a connection
  that takes no new streams.
- ``drain()`` queues a graceful GOAWAY (open streams finish, new ones are refused);
  ``close(error_code=0)`` queues a final GOAWAY; ``connection_lost()`` resets every open stream with
  "connection termination".

Reset reasons are Envoy's words (they end up in "reset reason: …" bodies and feed
`retry.Outcome`): a peer's RST_STREAM with REFUSED_STREAM, or a stream above a GOAWAY's last
stream id, is "remote refused stream reset" (safe to retry); any other RST_STREAM is "remote
reset"; a lost connection or protocol error is "connection termination".

Flow control: received DATA is acknowledged as soon as the handler has taken it (backpressure
is the transport's pause_reading in the shell); outbound DATA beyond the peer's windows is
queued per stream and sent as WINDOW_UPDATEs arrive; end of stream and trailers wait behind
queued data. Hop-by-hop headers are dropped on the way out, as HTTP/2 forbids them.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
import h2.stream
from h2.errors import ErrorCodes
from hyperframe.frame import GoAwayFrame

from ketch.proxy.http1 import RequestHead, ResponseHead

__all__ = ["PREFACE", "is_h2_preface", "H2Codec", "H2ProtocolError", "ErrorCodes",
           "H2Settings"]

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
_HOP = frozenset({"connection", "keep-alive", "proxy-connection", "transfer-encoding",
                  "upgrade", "host", "http2-settings"})

_LOCAL_DONE = (h2.stream.StreamState.HALF_CLOSED_LOCAL, h2.stream.StreamState.CLOSED)
REFUSED = "remote refused stream reset"
REMOTE_RESET = "remote reset"
TERMINATION = "connection termination"


class H2ProtocolError(Exception):
    """The peer broke HTTP/2; the connection is finished (GOAWAY queued)."""


def is_h2_preface(data: bytes) -> bool | None:
    n = min(len(data), len(PREFACE))
    if data[:n] != PREFACE[:n]:
        return False
    return True if n == len(PREFACE) else None


def _outbound(headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    out = []
    for k, v in headers:
        if k in _HOP or k.startswith(":"):
            continue
        if k == "te" and v.strip().lower() != "trailers":
            continue
        out.append((k, v))
    return out


# Envoy's flood and abuse limits: without them we are less defended, but valid traffic
# behaves the same, so accepting them is honest.
_TOLERATED = ("allow_connect", "max_outbound_frames", "max_outbound_control_frames",
              "max_consecutive_inbound_frames_with_empty_payload",
              "max_inbound_priority_frames_per_stream",
              "max_inbound_window_update_frames_per_data_frame_sent",
              "stream_error_on_invalid_http_messaging",
              "override_stream_error_on_invalid_http_message", "use_oghttp2_codec")


@dataclass(frozen=True, slots=True)
class H2Settings:
    """What `H2Codec` takes from Envoy's ``Http2ProtocolOptions`` (Envoy's defaults:
    unlimited streams, 256 MiB windows; ours are smaller: a Python proxy buffers less)."""

    max_concurrent_streams: int = 1024
    initial_stream_window_size: int = 1 << 20
    initial_connection_window_size: int = 1 << 20
    header_table_size: int = 4096

    @classmethod
    def from_proto(cls, msg: Any, where: str = "http2_protocol_options") -> "H2Settings":
        """Raises `Unsupported` (the NACK reason) for options that would change behaviour."""
        from ketch.proxy.protoutil import Unsupported

        allowed = {"hpack_table_size", "max_concurrent_streams", "initial_stream_window_size",
                   "initial_connection_window_size", *_TOLERATED}
        for field, _ in msg.ListFields():
            if field.name not in allowed:
                raise Unsupported(f"{where}: field '{field.name}' is not supported")

        def u32(name: str, default: int) -> int:
            return getattr(msg, name).value if msg.HasField(name) else default

        return cls(
            max_concurrent_streams=min(u32("max_concurrent_streams", 1024), 2**31 - 1),
            initial_stream_window_size=min(u32("initial_stream_window_size", 1 << 20),
                                           2**31 - 1),
            initial_connection_window_size=min(u32("initial_connection_window_size", 1 << 20),
                                               2**31 - 1),
            header_table_size=u32("hpack_table_size", 4096),
        )

    def codec_options(self) -> dict[str, int]:
        return {"max_concurrent_streams": self.max_concurrent_streams,
                "initial_window_size": self.initial_stream_window_size,
                "connection_window_size": self.initial_connection_window_size,
                "header_table_size": self.header_table_size}


class _Connection(h2.connection.H2Connection):
    """h2 treats any GOAWAY as the end: its state machine closes and in-flight responses
    become protocol errors. A graceful GOAWAY (NO_ERROR) only forbids new streams, so for
    that one we report the event and keep the connection open for the streams below it."""

    def _receive_goaway_frame(self, frame: Any) -> Any:
        if frame.error_code != 0:
            return super()._receive_goaway_frame(frame)
        ev = h2.events.ConnectionTerminated()
        ev.error_code = ErrorCodes.NO_ERROR
        ev.last_stream_id = frame.last_stream_id
        ev.additional_data = frame.additional_data or None
        return [], [ev]


class _Out:
    """Queued outbound data of one stream (what flow control has not let through yet)."""

    __slots__ = ("chunks", "end", "trailers")

    def __init__(self) -> None:
        self.chunks: deque[bytes] = deque()
        self.end = False
        self.trailers: list[tuple[str, str]] | None = None


class H2Codec:
    def __init__(self, client_side: bool, on_request: Callable[..., Any] | None = None,
                 max_concurrent_streams: int = 1024, initial_window_size: int = 1 << 20,
                 max_frame_size: int = 16384, connection_window_size: int | None = None,
                 header_table_size: int = 4096) -> None:
        config = h2.config.H2Configuration(client_side=client_side, header_encoding="latin-1",
                                           validate_inbound_headers=True)
        self.conn = _Connection(config=config)
        self.conn.local_settings = h2.settings.Settings(client=client_side, initial_values={
            h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: max_concurrent_streams,
            h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: initial_window_size,
            h2.settings.SettingCodes.MAX_FRAME_SIZE: max_frame_size,
            h2.settings.SettingCodes.ENABLE_PUSH: 0,
            h2.settings.SettingCodes.HEADER_TABLE_SIZE: header_table_size,
        })
        self.client_side = client_side
        self.on_request = on_request
        self.handlers: dict[int, Any] = {}
        self._out: dict[int, _Out] = {}
        self._window = (connection_window_size if connection_window_size is not None
                        else initial_window_size)
        self.goaway_received = False
        self.draining = False
        self.closed = False
        self.streams_opened = 0
        self._extra = b""

    # ------------------------------------------------------------------ plumbing
    def initiate(self) -> None:
        self.conn.initiate_connection()
        extra = self._window - 65535
        if extra > 0:  # the connection window starts at 64 KiB whatever SETTINGS say
            self.conn.increment_flow_control_window(extra)

    def data_to_send(self) -> bytes:
        if self._extra:
            data, self._extra = self._extra + self.conn.data_to_send(), b""
            return data
        return self.conn.data_to_send()

    def capacity(self) -> int:
        if self.goaway_received or self.closed:
            return 0
        limit = self.conn.remote_settings.max_concurrent_streams
        return max(0, limit - self.conn.open_outbound_streams)

    @property
    def active_streams(self) -> int:
        return len(self.handlers)

    def feed(self, data: bytes) -> None:
        try:
            events = self.conn.receive_data(data)
        except h2.exceptions.ProtocolError as exc:
            self.closed = True
            self.connection_lost()
            raise H2ProtocolError(str(exc) or type(exc).__name__) from None
        for ev in events:
            self._dispatch(ev)

    def _dispatch(self, ev: Any) -> None:
        t = type(ev)
        if t is h2.events.DataReceived:
            handler = self.handlers.get(ev.stream_id)
            if handler is not None and ev.data:
                if self.client_side:
                    handler.on_response_body(ev.data)
                else:
                    handler.on_body(ev.data)
            if ev.flow_controlled_length:
                try:
                    self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                except h2.exceptions.StreamClosedError:
                    pass
        elif t is h2.events.RequestReceived:
            self._request(ev)
        elif t is h2.events.ResponseReceived:
            self._response(ev)
        elif t is h2.events.TrailersReceived:
            handler = self.handlers.get(ev.stream_id)
            if handler is not None:
                (handler.on_response_trailers if self.client_side
                 else handler.on_trailers)(list(ev.headers))
        elif t is h2.events.StreamEnded:
            # h2 also reports the end on the DATA/HEADERS event (``stream_ended``); this
            # separate event is the one place the end is dispatched, so it happens once.
            self._ended(ev.stream_id)
        elif t is h2.events.StreamReset:
            reason = REFUSED if ev.error_code == ErrorCodes.REFUSED_STREAM else REMOTE_RESET
            self._reset(ev.stream_id, reason)
        elif t is h2.events.WindowUpdated:
            if ev.stream_id:
                self._flush(ev.stream_id, notify=True)
            else:
                for sid in list(self._out):
                    self._flush(sid, notify=True)
        elif t is h2.events.RemoteSettingsChanged:
            for sid in list(self._out):  # INITIAL_WINDOW_SIZE may have grown
                self._flush(sid, notify=True)
        elif t is h2.events.ConnectionTerminated:
            self.goaway_received = True
            last = ev.last_stream_id if ev.last_stream_id is not None else 0
            for sid in [s for s in self.handlers if s > last and self._ours(s)]:
                self._reset(sid, REFUSED)
            if ev.error_code != ErrorCodes.NO_ERROR:
                self.connection_lost()

    def _ours(self, stream_id: int) -> bool:
        return (stream_id % 2 == 1) == self.client_side

    def _request(self, ev: Any) -> None:
        pseudo: dict[str, str] = {}
        headers: list[tuple[str, str]] = []
        length = None
        for k, v in ev.headers:
            if k[0] == ":":
                pseudo[k] = v
            else:
                if k == "content-length":
                    length = int(v) if v.isdigit() else None
                headers.append((k, v))
        authority = pseudo.get(":authority")
        if authority is not None and not any(k == "host" for k, _ in headers):
            headers.insert(0, ("host", authority))
        method = pseudo.get(":method", "GET")
        target = pseudo.get(":path") or (authority if method == "CONNECT" else "/")
        ended = ev.stream_ended is not None
        head = RequestHead(method, target, "2", headers, True,
                           not ended and length is None, length, False)
        handler = (self.on_request(ev.stream_id, head, ended)
                   if self.on_request and not self.draining else None)
        if handler is None or self.draining:
            self.reset(ev.stream_id, ErrorCodes.REFUSED_STREAM)
            return
        self.handlers[ev.stream_id] = handler

    def _response(self, ev: Any) -> None:
        handler = self.handlers.get(ev.stream_id)
        status = 200
        headers: list[tuple[str, str]] = []
        length = None
        for k, v in ev.headers:
            if k == ":status":
                status = int(v)
            elif k[0] != ":":
                if k == "content-length":
                    length = int(v) if v.isdigit() else None
                headers.append((k, v))
        ended = ev.stream_ended is not None
        if handler is not None:
            handler.on_response_head(ResponseHead(status, headers, True,
                                                  not ended and length is None, length, "2"))

    def _ended(self, stream_id: int) -> None:
        handler = self.handlers.get(stream_id)
        if handler is None:
            return
        if self.client_side:
            # The response is complete; the stream is done unless we are still sending.
            self._forget_if_closed(stream_id)
            handler.on_response_end()
        else:
            handler.on_end()
            self._forget_if_closed(stream_id)

    def _forget_if_closed(self, stream_id: int) -> None:
        try:
            closed = self.conn.streams[stream_id].closed
        except KeyError:
            closed = True
        if closed:
            self.handlers.pop(stream_id, None)
            self._out.pop(stream_id, None)

    def _reset(self, stream_id: int, reason: str) -> None:
        handler = self.handlers.pop(stream_id, None)
        self._out.pop(stream_id, None)
        if handler is not None:
            (handler.on_upstream_reset if self.client_side else handler.on_reset)(reason)

    def connection_lost(self) -> None:
        self.closed = True
        for sid in list(self.handlers):
            self._reset(sid, TERMINATION)

    # ------------------------------------------------------------------ sending
    def open_stream(self, handler: Any, method: str, authority: str, path: str,
                    headers: Iterable[tuple[str, str]], scheme: str = "http",
                    end_stream: bool = False) -> int:
        sid = self.conn.get_next_available_stream_id()
        block = [(":method", method), (":scheme", scheme), (":authority", authority)]
        if method != "CONNECT":
            block.append((":path", path))
        block += _outbound(headers)
        self.conn.send_headers(sid, block, end_stream=end_stream)
        self.handlers[sid] = handler
        self.streams_opened += 1
        return sid

    def send_response(self, stream_id: int, status: int, headers: Iterable[tuple[str, str]],
                      end_stream: bool = False) -> None:
        block = [(":status", str(status))] + _outbound(headers)
        if not end_stream:
            # A head carrying grpc-status is a gRPC trailers-only response: it is complete
            # by definition, and gRPC clients need it as one HEADERS frame ending the
            # stream. A relay forwards heads before it sees the end, so end it here; the
            # end or trailers the relay sends next find the stream ended and are dropped.
            for k, _ in block:
                if k == "grpc-status":
                    end_stream = True
                    break
        self.conn.send_headers(stream_id, block, end_stream=end_stream)
        if end_stream:
            self._forget_if_closed(stream_id)

    def send_data(self, stream_id: int, data: bytes, end_stream: bool = False) -> bool:
        """Queue body bytes; True when all of it went out now (else wait for on_drain)."""
        out = self._out.get(stream_id)
        if out is None:
            out = self._out[stream_id] = _Out()
        if data:
            out.chunks.append(data)
        out.end = out.end or end_stream
        return self._flush(stream_id)

    def send_trailers(self, stream_id: int, headers: Iterable[tuple[str, str]]) -> None:
        out = self._out.get(stream_id)
        if out is None:
            out = self._out[stream_id] = _Out()
        out.trailers = _outbound(headers)
        out.end = True
        self._flush(stream_id)

    def end_stream(self, stream_id: int) -> None:
        self.send_data(stream_id, b"", end_stream=True)

    def reset(self, stream_id: int, code: int = ErrorCodes.CANCEL) -> None:
        self._out.pop(stream_id, None)
        self.handlers.pop(stream_id, None)
        try:
            self.conn.reset_stream(stream_id, error_code=code)
        except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError, KeyError):
            pass

    def drain(self) -> None:
        """Graceful GOAWAY: streams so far finish, the peer opens no new ones here. (h2's own
        GOAWAY closes its state machine at once, so this frame is written beside it.)"""
        if self.draining or self.closed:
            return
        self.draining = True
        last = self.conn.highest_inbound_stream_id
        self._extra += GoAwayFrame(0, last_stream_id=last, error_code=0).serialize()

    def close(self, error_code: int = ErrorCodes.NO_ERROR) -> None:
        if not self.closed:
            self.conn.close_connection(error_code=error_code)
            self.closed = True

    def ping(self, payload: bytes = b"ketchpng") -> None:
        self.conn.ping(payload)

    def _flush(self, stream_id: int, notify: bool = False) -> bool:
        out = self._out.get(stream_id)
        if out is None:
            return True
        conn = self.conn
        chunks = out.chunks
        st = conn.streams.get(stream_id)
        if st is None or st.state_machine.state in _LOCAL_DONE:
            # Already ended on our side (e.g. a trailers-only head): sending more would be
            # an h2 error that also wrecks the stream's state for the peer's remaining data.
            self._out.pop(stream_id, None)
            self._forget_if_closed(stream_id)
            return True
        try:
            while chunks:
                window = conn.local_flow_control_window(stream_id)
                if window <= 0:
                    return False
                chunk = chunks[0]
                size = min(window, conn.max_outbound_frame_size)
                if len(chunk) > size:
                    conn.send_data(stream_id, chunk[:size])
                    chunks[0] = chunk[size:]
                    continue
                chunks.popleft()
                last = not chunks and out.end and out.trailers is None
                conn.send_data(stream_id, chunk, end_stream=last)
                if last:
                    out.end = False
            if out.trailers is not None:
                conn.send_headers(stream_id, out.trailers, end_stream=True)
                out.trailers = None
            elif out.end:
                conn.end_stream(stream_id)
        except (h2.exceptions.ProtocolError, KeyError):
            # The stream is closed or already ended locally (a reset raced us): nothing
            # more can go out on it, which is not the connection's problem.
            self._out.pop(stream_id, None)
            return True
        self._out.pop(stream_id, None)
        self._forget_if_closed(stream_id)
        if notify:  # only a sender that was told "not yet" waits for this
            handler = self.handlers.get(stream_id)
            if handler is not None and hasattr(handler, "on_drain"):
                handler.on_drain()
        return True

    def __repr__(self) -> str:
        side = "client" if self.client_side else "server"
        state = " GOAWAY" if self.goaway_received else (" closed" if self.closed else "")
        return f"<H2Codec {side} [{len(self.handlers)} streams, {len(self._out)} blocked]{state}>"
