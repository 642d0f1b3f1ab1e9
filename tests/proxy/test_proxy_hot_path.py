"""The hot path's cheaper pieces keep their semantics: x-request-id format, the FIFO route
timeouts (order, cancel, bounded queue), hop-by-hop stripping, trailers not leaking into the
next message's head."""

from __future__ import annotations

import asyncio
import uuid

from ketch.proxy.http1 import RequestDecoder, strip_hop_by_hop
from ketch.proxy.stream import _TIMEOUT_QUEUES, _request_id, _RouteTimeouts, route_timeout


def test_request_ids_are_unique_version_4_uuids() -> None:
    ids = [_request_id() for _ in range(1000)]  # crosses several random batches
    assert len(set(ids)) == len(ids)
    for rid in ids:
        u = uuid.UUID(rid)
        assert str(u) == rid and u.version == 4 and u.variant == uuid.RFC_4122


class _TimedStream:
    """What a route timeout needs of a stream: `deadline`, `deadline_q`, `_global_timeout()`."""

    deadline_q = None
    deadline = 0.0

    def __init__(self, name: str, fired: list, loop) -> None:
        self.name, self.fired, self.loop, self.t0 = name, fired, loop, loop.time()

    def _global_timeout(self) -> None:
        self.fired.append((self.name, self.loop.time() - self.t0))


def test_route_timeouts_fire_in_order_and_honour_cancel() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        fired: list[tuple[str, float]] = []
        a = _TimedStream("a", fired, loop)
        route_timeout(loop, 0.05, a)
        await asyncio.sleep(0.01)
        b, c, d = (_TimedStream(n, fired, loop) for n in "bcd")
        route_timeout(loop, 0.05, b)
        route_timeout(loop, 0.05, c)
        route_timeout(loop, 0.15, d)
        _RouteTimeouts.cancel(b)
        _RouteTimeouts.cancel(b)  # idempotent
        await asyncio.sleep(0.3)
        assert [n for n, _ in fired] == ["a", "c", "d"]
        assert fired[0][1] >= 0.045 and fired[1][1] >= 0.045 and fired[2][1] >= 0.145
        assert a.deadline_q is None and c.deadline_q is None  # fired entries are off the queue
        # a long-lived request at the head does not let finished ones pile up (nor keep them alive)
        head = _TimedStream("head", fired, loop)
        route_timeout(loop, 30.0, head)
        for _ in range(10000):
            s = _TimedStream("x", fired, loop)
            route_timeout(loop, 30.0, s)
            _RouteTimeouts.cancel(s)
        q = _TIMEOUT_QUEUES[loop][30.0]
        assert q.live == 1 and len(q.entries) <= 2 * q.live + 65
        _RouteTimeouts.cancel(head)
        assert q.live == 0

    asyncio.run(main())


def test_strip_hop_by_hop_fast_and_general_paths() -> None:
    nginx = [("server", "nginx"), ("content-type", "text/plain"), ("content-length", "12"),
             ("connection", "keep-alive")]
    assert strip_hop_by_hop(nginx) == [("server", "nginx"), ("content-type", "text/plain")]
    assert strip_hop_by_hop([("a", "1"), ("connection", "Keep-Alive"), ("keep-alive", "timeout=5")]) == [("a", "1")]
    assert strip_hop_by_hop([("a", "1"), ("connection", "keep-alive, x-foo"), ("x-foo", "2"),
                             ("te", "trailers")]) == [("a", "1"), ("te", "trailers")]
    assert strip_hop_by_hop([("a", "1"), ("connection", "close"), ("close", "x")]) == [("a", "1")]
    assert strip_hop_by_hop([("a", "1"), ("te", "gzip")]) == [("a", "1")]
    assert strip_hop_by_hop([("upgrade", "websocket"), ("connection", "upgrade")], keep_upgrade=True) == [
        ("upgrade", "websocket"), ("connection", "upgrade")]


class _Sink:
    def __init__(self) -> None:
        self.heads: list = []
        self.ends = 0

    def on_head(self, head) -> None:
        self.heads.append(head)

    def on_body(self, data: bytes) -> None:
        pass

    def on_end(self) -> None:
        self.ends += 1


def test_trailers_do_not_leak_into_the_next_head() -> None:
    from test_proxy_http1_codec import Exchange, upstream_connection

    conn, _ = upstream_connection()
    ex = Exchange()
    conn.start(ex, head_request=False)
    conn.data_received(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nx-trailer: 1\r\n\r\n")
    ex2 = Exchange()
    conn.start(ex2, head_request=False)
    conn.data_received(b"HTTP/1.1 100 Continue\r\nx-info: 1\r\n\r\nHTTP/1.1 204 No Content\r\nx-b: 2\r\n\r\n")
    assert [h.status for h in ex.heads + ex2.heads] == [200, 204]
    assert ex.body == b"abc" and ex.ends == 1
    assert ex2.heads[0].headers == [("x-b", "2")] and ex2.ends == 1
    req = _Sink()
    r = RequestDecoder(req)
    r.feed(b"POST /a HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n0\r\nx-t: 1\r\n\r\n"
           b"GET /b HTTP/1.1\r\nhost: y\r\n\r\n")
    assert [(h.target, h.headers) for h in req.heads] == [
        ("/a", [("host", "x"), ("transfer-encoding", "chunked")]), ("/b", [("host", "y")])]


def test_forward_block_strips_hop_by_hop_lines_in_any_case() -> None:
    from ketch.proxy.http1 import forward_block

    block = (b"HTTP/1.1 200 OK\r\nCONNECTION: keep-alive\r\nkEEp-ALIVE: x\r\nProxy-Authenticate: y\r\n"
             b"TE: trailers\r\nUpgrade: h2c\r\nTrailer: x\r\nServer: s\r\nX-Server: keep\r\nServers: keep\r\n"
             b"TEx: keep\r\nProxy-Connection: close\r\nproxy-authorization: z\r\nTransfer-Encoding: chunked\r\n"
             b"Date: d")
    kept = b"\r\nX-Server: keep\r\nServers: keep\r\nTEx: keep\r\nDate: d"
    assert forward_block(block, drop_server=True) == kept
    assert forward_block(block, drop_server=False) == b"\r\nServer: s" + kept
    assert forward_block(b"HTTP/1.1 204 No Content", drop_server=True) == b""
