"""The HTTP/1.1 connection manager: one downstream connection, its codec and its streams.

`Http1Downstream` is the asyncio Protocol of one downstream connection: it feeds bytes to the
llhttp codec and runs one `stream.Stream` per request (pipelined requests wait their turn,
responses go out in order). A connection that opens with the HTTP/2 preface is handed to
`hcm_h2.H2Downstream`. Strict parsing errors answer 400/431/501 and close only this
connection. Writes made while an upstream read is parsed are corked into one syscall.
"""

from __future__ import annotations

import asyncio
import ipaddress
import time

import httptools

from ketch.proxy.http1 import MAX_HEADERS, ProtocolError, RequestHead, _framing, encode_response_head
from ketch.proxy.http1_scan import scan_request as _scan_request  # None: llhttp takes every message
from ketch.proxy.stream import Stream

_monotonic = time.monotonic
_new_head = tuple.__new__


class Http1Downstream:
    """asyncio Protocol for one downstream HTTP/1.1 connection."""

    def __init__(self, state, hcm, peer: tuple[str, int], local: tuple[str, int],
                 original_dst: tuple[str, int] | None = None, explicit_proxy: bool = False,
                 listener_stats=None) -> None:
        self.state = state
        self.hcm = hcm
        self.peer = peer
        self.local = local
        self.original_dst = original_dst
        self.explicit_proxy = explicit_proxy
        self.listener_stats = listener_stats
        self.stats = state.http_stats(hcm.stat_prefix)
        # llhttp calls this object back directly (on_url/on_header/on_headers_complete/...)
        self.parser = httptools.HttpRequestParser(self)
        self.header_limit = hcm.max_request_headers_kb * 1024
        self._url = b""
        self._headers: list[tuple[str, str]] = []
        # header-size limit: bytes fed since the previous message ended bound the head's size
        # (exact sizes are summed only when that bound is over the limit)
        self._fed = 0
        self._fed_mark = 0
        self.transport: asyncio.Transport | None = None
        self.streams: list[Stream] = []
        self.parsing: Stream | None = None
        self.closed = False
        self.closing = False  # close after the current responses
        self.paused = False
        self.tunnel: Stream | None = None
        self.idle_timer = None
        self.corked: list[bytes] | None = None
        self.fresh = True
        self.in_message = False  # llhttp has begun a message it has not completed
        self.listener_name = ""
        self.external = hcm.use_remote_address and not _internal(peer[0])
        self.drain_after = False  # its listener was removed: close after the current response
        self.last_active = time.monotonic()

    # -- asyncio
    def connection_made(self, transport) -> None:
        self.transport = transport
        self.stats.downstream_cx_total.value += 1
        self.stats.downstream_cx_active.value += 1
        self.state.connections.add(self)

    def data_received(self, data: bytes) -> None:
        self.last_active = _monotonic()
        if self.tunnel is not None:
            self.tunnel.tunnel_from_downstream(data)
            return
        if self.closing:
            return
        if self.fresh:
            self.fresh = False
            if data[:3] == b"PRI" and self.hcm.codec != "HTTP1":  # h2c with prior knowledge
                from ketch.proxy.hcm_h2 import H2Downstream

                self.state.connections.discard(self)
                self.closed = True
                H2Downstream(self).takeover(self.transport, data)
                return
        self._fed += len(data)
        if (_scan_request is not None and not self.in_message and self.parsing is None
                and self._fed - self._fed_mark <= self.header_limit):
            scanned = _scan_request(data)
            if scanned is not None:
                self._fed_mark = self._fed
                self._whole_request(*scanned)
                return
        try:
            self.parser.feed_data(data)
            if (self._headers or self._url) and (self._fed - self._fed_mark > self.header_limit
                                                 or len(self._headers) > MAX_HEADERS):  # a head still arriving
                try:
                    self._check_head_size(self._url, self._headers)
                except ProtocolError as exc:
                    self.protocol_error(exc)
        except httptools.HttpParserUpgrade as exc:
            offset = exc.args[0] if exc.args else len(data)
            self.on_upgrade(data[offset:])
        except httptools.HttpParserError as exc:
            ctx = exc.__context__
            self.protocol_error(ctx if isinstance(ctx, ProtocolError)
                                else ProtocolError(400, str(exc) or "malformed request"))

    def eof_received(self) -> bool:
        if self.tunnel is not None:
            self.tunnel.tunnel_downstream_eof()
            return True
        if self.streams and all(s.request_complete for s in self.streams):
            # the client half-closed after whole requests: answer them, then close
            self.closing = True
            return True
        return False

    def connection_lost(self, exc) -> None:
        if self.closed:
            return
        self.closed = True
        self.stats.downstream_cx_active.value -= 1
        self.state.connections.discard(self)
        for s in list(self.streams):
            s.downstream_reset()
        self.streams.clear()
        # Break the connection's reference cycles (llhttp holds our bound callbacks, the
        # transport holds us) so that refcounting frees it now: left to the young-generation
        # collector (every 20000 allocations, see runner.py) closed connections pile up
        # between collections and fragment the heap (RSS 36 -> 42 MB over 16k connections).
        self.parser = None
        self.transport = None

    def pause_writing(self) -> None:
        if self.streams:
            self.streams[0].pause_response()

    def resume_writing(self) -> None:
        if self.streams:
            self.streams[0].resume_response()

    def _whole_request(self, method: str, target: str, headers: list[tuple[str, str]], hdrs: dict[str, str],
                       keep_alive: bool, lines: bytes) -> None:
        """A whole bodiless request scanned in C (llhttp never saw it and stays between
        messages): what on_headers_complete and on_message_complete do for it."""
        self._open_stream(_new_head(RequestHead, (method, target, "1.1", headers, keep_alive, False, None, False)),
                          hdrs, lines).on_request_end()

    def _open_stream(self, head: RequestHead, hdrs: dict[str, str], lines: bytes | None = None) -> Stream:
        """Count the request and start its stream, or queue it behind the ones still being
        answered (pipelining: reading pauses until they are done)."""
        stats = self.stats
        stats.downstream_rq_total.value += 1
        stats.downstream_rq_http1_total.value += 1
        stats.downstream_rq_active.value += 1
        stream = Stream(self, head, None, hdrs)
        if lines is not None:
            stream.head_lines = lines
        streams = self.streams
        streams.append(stream)
        if len(streams) == 1:
            stream.start()
        elif not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()
        return stream

    # -- llhttp callbacks (strictness: see http1.py)
    def on_message_begin(self) -> None:
        self.in_message = True

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        # (decoding here measured cheaper than batching it at the end of the head)
        self._headers.append((name.lower().decode("latin-1"), value.decode("latin-1")))

    def _check_head_size(self, url: bytes, headers: list[tuple[str, str]]) -> None:
        if len(headers) > MAX_HEADERS:
            raise ProtocolError(431, "too many headers")
        if len(url) + sum([len(k) + len(v) + 4 for k, v in headers]) > self.header_limit:
            raise ProtocolError(431, "headers too large")

    def on_headers_complete(self) -> None:
        p = self.parser
        url, headers = self._url, self._headers
        self._url, self._headers = b"", []
        if self._fed - self._fed_mark > self.header_limit or len(headers) > MAX_HEADERS:
            self._check_head_size(url, headers)
        hdrs = dict(headers)
        if len(hdrs) == len(headers):
            te = hdrs.get("transfer-encoding")
            chunked = te is not None
            if chunked and te.strip().lower() != "chunked":
                raise ProtocolError(501, f"unsupported transfer encoding {te!r}")
            cl = hdrs.get("content-length")
            length = None if cl is None else int(cl)
        else:  # repeated names: framing from every line; the rest joined with "," (Host: the first)
            chunked, length = _framing(headers)
            hdrs = {}
            for k, v in headers:
                hdrs[k] = hdrs[k] + "," + v if k in hdrs else v
        version = p.get_http_version()
        if "host" not in hdrs and version == "1.1":
            raise ProtocolError(400, "missing host header")
        self.parsing = self._open_stream(_new_head(RequestHead, (  # tuple.__new__: no Python frame
            p.get_method().decode("ascii"), url.decode("latin-1"), version, headers, p.should_keep_alive(),
            chunked, length, p.should_upgrade())), hdrs)

    def on_body(self, data: bytes) -> None:
        if self.parsing is not None:
            self.parsing.on_request_body(data)

    def on_message_complete(self) -> None:
        self.in_message = False
        self._fed_mark = self._fed  # the next head starts after this
        if self._headers:
            self._headers = []  # chunked trailers: not forwarded
        s, self.parsing = self.parsing, None
        if s is not None:
            s.on_request_end()

    def on_upgrade(self, rest: bytes) -> None:
        s = self.streams[-1] if self.streams else None
        if s is None or not s.upgrade_requested:
            self.protocol_error(ProtocolError(400, "unexpected upgrade"))
            return
        self.tunnel = s
        if rest:
            s.tunnel_from_downstream(rest)

    def protocol_error(self, exc: ProtocolError) -> None:
        self.stats.downstream_cx_protocol_error.value += 1
        if self.transport is None or self.closed:
            return
        if not any(s.response_started for s in self.streams):
            body = exc.reason.encode()
            self.transport.write(encode_response_head(exc.status, [
                ("content-length", str(len(body))), ("content-type", "text/plain"), ("connection", "close")]) + body)
        self.closing = True
        self.transport.close()

    # -- stream lifecycle
    def stream_done(self, stream: Stream, keep_alive: bool) -> None:
        self.stats.downstream_rq_active.value -= 1
        streams = self.streams
        if streams and streams[0] is stream:
            if len(streams) == 1 and keep_alive and not self.paused and not (
                    self.closing or self.drain_after or self.state.draining):
                streams.clear()  # the usual case: nothing pipelined behind it
                return
            streams.pop(0)
        if not keep_alive or self.closing or self.drain_after or self.state.draining:
            self.closing = True
            if self.corked is not None:
                self.uncork()
            if self.transport is not None:
                self.transport.close()
            return
        if self.streams:
            self.streams[0].start()
        if self.paused and len(self.streams) <= 1 and self.transport is not None:
            self.paused = False
            self.transport.resume_reading()

    def write(self, data: bytes) -> None:
        if self.corked is not None:
            self.corked.append(data)
        elif self.transport is not None and not self.closed:
            self.transport.write(data)

    def cork(self) -> None:
        """Collect writes (one syscall for a response's head and body arriving together)."""
        if self.corked is None:
            self.corked = []

    def uncork(self) -> None:
        out, self.corked = self.corked, None
        if out and self.transport is not None and not self.closed:
            self.transport.write(out[0] if len(out) == 1 else b"".join(out))

    def abort(self) -> None:
        self.corked = None
        if self.transport is not None and not self.closed:
            self.transport.abort()


def _internal(ip: str) -> bool:
    try:
        return ipaddress.ip_address(ip.split("%")[0]).is_private
    except ValueError:
        return False
