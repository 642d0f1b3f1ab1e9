"""One upstream try (`Attempt`) and fire-and-forget shadow requests (`MirrorAttempt`).

An attempt is the connection pool's waiter (`on_pool_ready` for HTTP/1.1, `on_pool_ready_h2`
for HTTP/2) and then the connection's exchange (`on_response_head/_body/_trailers/_end`,
`on_upstream_reset`, upgrades). It holds the cluster's request slot until it ends, runs the
per-try timeout, and reports one `retry.Outcome` per try to its stream.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from ketch.proxy import retry as retry_mod
from ketch.proxy.http1 import LAST_CHUNK, encode_chunk

_monotonic = time.monotonic

if TYPE_CHECKING:
    from ketch.proxy.stream import Stream


class Attempt:
    """One upstream try: the pool waiter and the connection's exchange."""

    # class defaults: an attempt sets only what it uses
    conn = pool = per_try = h2s = None  # h2s: http2_io.UpstreamStream when the cluster speaks HTTP/2
    released = discard = req_paused = False
    sent_at = 0.0

    def __init__(self, stream: Stream, cluster, host, number: int) -> None:
        self.stream = stream
        self.cluster = cluster
        self.host = host
        self.number = number
        self.downstream = stream.conn
        self.sent_at = stream.t0  # until it is sent

    def _release(self) -> None:
        if not self.released:
            self.released = True
            self.cluster.release_request(self.host)
        if self.per_try is not None:
            self.per_try.cancel()
            self.per_try = None

    # pool waiter
    def on_pool_ready(self, conn) -> None:
        s = self.stream
        if s.done or s.attempt is not self:
            self._release()
            conn.pool.release(conn, True)
            return
        self.conn = conn
        head = s.head
        conn.start(self, head.method == "HEAD")
        self.sent_at = _monotonic()
        data = s.attempt_headers(self)
        chunked = head.chunked
        if s.body:
            payload = b"".join(s.body)
            data += encode_chunk(payload) if chunked else payload
            if s.body_overflow:
                s.body.clear()
        if s.request_complete:
            if chunked:
                data += LAST_CHUNK
        else:
            s.sink = self
            if s.conn.paused and len(s.conn.streams) <= 1 and s.conn.transport is not None:
                s.conn.paused = False
                s.conn.transport.resume_reading()
        conn.write(data)
        pt = s.route.action.retry_policy.per_try_timeout
        if pt:
            self.per_try = s.state.loop.call_later(pt, self._per_try_timeout)

    def on_pool_ready_h2(self, conn) -> None:
        s = self.stream
        if s.done or s.attempt is not self:
            self._release()
            return
        self.sent_at = time.monotonic()
        headers = [(k, v) for k, v in s.upstream_headers
                   if k not in ("host", "transfer-encoding", "connection", "keep-alive", "upgrade")]
        if s.route.include_attempt_count:
            headers.append(("x-envoy-attempt-count", str(self.number)))
        authority = next((v for k, v in s.upstream_headers if k == "host"), s.authority)
        body = b"".join(s.body)
        end_now = s.request_complete and not body
        try:
            self.h2s = conn.open_stream(self, s.head.method, authority, s.upstream_target, headers,
                                        end_stream=end_now)
        except Exception:  # noqa: BLE001 - the connection went away between check and use
            self.on_pool_failure("connection failure", "UF")
            return
        if body:
            self.h2s.send_data(body, end_stream=s.request_complete)
            if s.body_overflow:
                s.body.clear()
        if not s.request_complete:
            s.sink = self
        pt = s.route.action.retry_policy.per_try_timeout
        if pt:
            self.per_try = s.state.loop.call_later(pt, self._per_try_timeout)

    def on_response_trailers(self, trailers) -> None:
        if not self.discard:
            self.stream.on_response_trailers(list(trailers))

    def on_drain(self) -> None:
        self.resume_request()

    def pause_response(self) -> None:
        if self.conn is not None and self.conn.transport is not None:
            self.conn.transport.pause_reading()

    def resume_response(self) -> None:
        if self.conn is not None and self.conn.transport is not None:
            self.conn.transport.resume_reading()

    def on_pool_failure(self, reason: str, flag: str) -> None:
        self._release()
        self.stream.attempt_failed(self, retry_mod.CONNECT_FAILURE if reason == "connection failure"
                                   else retry_mod.Outcome(retry_mod.CONNECT, 503, None, "UF", reason))

    def write_body(self, data: bytes) -> None:
        if self.h2s is not None:
            if not self.h2s.send_data(data):
                self.pause_request()
        elif self.conn is not None:
            self.conn.write(encode_chunk(data) if self.stream.head.chunked else data)

    def write_end(self) -> None:
        if self.h2s is not None:
            self.h2s.end()
        elif self.conn is not None and self.stream.head.chunked:
            self.conn.write(LAST_CHUNK)

    def _per_try_timeout(self) -> None:
        self.per_try = None
        self.cluster.stats.upstream_rq_per_try_timeout.value += 1
        self.cluster.outlier_outcome(self.host, retry_mod.PER_TRY_TIMEOUT)
        s = self.stream
        self.cancel()
        s.attempt_failed(self, retry_mod.PER_TRY_TIMEOUT)

    def cancel(self) -> None:
        """Abandon this try: the connection cannot be reused mid-exchange."""
        self._release()
        if self.h2s is not None:
            h2s, self.h2s = self.h2s, None
            self.discard = True
            h2s.reset()
        elif self.conn is not None:
            conn, self.conn = self.conn, None
            conn.abort()
        else:
            self.cluster.cancel(self)

    # connection exchange
    def on_response_head(self, resp) -> None:
        self.cluster.outlier_response(self.host, resp.status)
        if not self.stream.on_response_head(self, resp):
            self.discard = True
            self._release()

    def on_response_body(self, data: bytes) -> None:
        if not self.discard:
            self.stream.on_response_body(data)

    def on_response_end(self) -> None:
        self._release()
        if not self.discard:
            self.stream.on_response_end(self)

    def on_upstream_reset(self, reason: str) -> None:
        self._release()
        if self.discard:
            return
        outcome = retry_mod.CONNECTION_TERMINATION
        if reason.startswith("protocol error"):
            outcome = retry_mod.Outcome(retry_mod.RESET, 503, None, "UPE", reason)
        self.cluster.outlier_outcome(self.host, outcome)
        self.conn = None
        self.stream.attempt_failed(self, outcome)

    def on_upgrade(self, rest: bytes) -> None:
        self.stream.on_upgrade(self, rest)

    def on_tunnel_data(self, data: bytes) -> None:
        self.stream.on_tunnel_data(data)

    def on_tunnel_closed(self) -> None:
        self._release()
        self.stream.on_tunnel_closed()

    def pause_request(self) -> None:
        t = self.stream.conn.transport
        if t is not None and not self.req_paused:
            self.req_paused = True
            t.pause_reading()

    def resume_request(self) -> None:
        t = self.stream.conn.transport
        if t is not None and self.req_paused:
            self.req_paused = False
            t.resume_reading()


class MirrorAttempt:
    """Fire-and-forget shadow request: its response is read and dropped."""

    __slots__ = ("cluster", "host", "data", "head_request", "pool", "conn", "released", "downstream")
    stream = None  # no downstream stream to answer

    def __init__(self, cluster, host, data: bytes, head_request: bool) -> None:
        self.cluster, self.host, self.data, self.head_request = cluster, host, data, head_request
        self.pool = self.conn = self.downstream = None
        self.released = False

    def _release(self) -> None:
        if not self.released:
            self.released = True
            self.cluster.release_request(self.host)

    def on_pool_ready(self, conn) -> None:
        self.conn = conn
        conn.start(self, self.head_request)
        conn.write(self.data)

    def on_pool_ready_h2(self, conn) -> None:
        head, _, body = self.data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, target, _ = lines[0].split(" ", 2)
        headers = [tuple(x.split(": ", 1)) for x in lines[1:]]
        authority = next((v for k, v in headers if k == "host"), "")
        headers = [(k, v) for k, v in headers if k not in ("host", "transfer-encoding", "connection")]
        try:
            st = conn.open_stream(self, method, authority, target, headers, end_stream=not body)
            if body:
                st.send_data(body, end_stream=True)
        except Exception:  # noqa: BLE001 - fire and forget
            self._release()

    def on_response_trailers(self, trailers) -> None:
        pass

    def on_drain(self) -> None:
        pass

    def on_pool_failure(self, reason: str, flag: str) -> None:
        self._release()

    def on_response_head(self, resp) -> None:
        self.cluster.outlier_response(self.host, resp.status)

    def on_response_body(self, data: bytes) -> None:
        pass

    def on_response_end(self) -> None:
        self._release()

    def on_upstream_reset(self, reason: str) -> None:
        self._release()

    def on_upgrade(self, rest: bytes) -> None:
        if self.conn is not None:
            self.conn.abort()

    def pause_request(self) -> None:
        pass

    def resume_request(self) -> None:
        pass
