"""The sans-IO HTTP/1.1 codec: any input parses or raises ProtocolError; nothing else escapes."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ketch.proxy.http1 import ProtocolError, RequestDecoder, encode_chunk, encode_request_head, strip_hop_by_hop
from ketch.proxy.stats import Counter
from ketch.proxy.upstream import UpstreamConnection


class Exchange:
    """What an upstream connection drives: the callbacks of one exchange (an Attempt's)."""

    stream = None  # no downstream stream: the express path never applies
    downstream = None

    def __init__(self) -> None:
        self.heads, self.body, self.ends, self.resets = [], b"", 0, []

    def on_response_head(self, head) -> None:
        self.heads.append(head)

    def on_response_body(self, data: bytes) -> None:
        self.body += data

    def on_response_end(self) -> None:
        self.ends += 1

    def on_upstream_reset(self, reason: str) -> None:
        self.resets.append(reason)


class Pool:
    """The HostPool side of an UpstreamConnection: stats, release, close."""

    class cluster:
        class stats:
            upstream_cx_protocol_error = Counter("e", "e", ())

    def __init__(self) -> None:
        self.released: list[bool] = []

    def release(self, conn, reusable: bool) -> None:
        self.released.append(reusable)

    def on_closed(self, conn) -> None:
        pass


class Transport:
    def write(self, data: bytes) -> None:
        pass

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass


def upstream_connection() -> tuple[UpstreamConnection, Pool]:
    pool = Pool()
    conn = UpstreamConnection(pool)  # type: ignore[arg-type]
    conn.connection_made(Transport())
    return conn, pool


class Events:
    def __init__(self) -> None:
        self.heads, self.body, self.ends, self.upgrades = [], b"", 0, []

    def on_head(self, head) -> None:
        self.heads.append(head)

    def on_body(self, data: bytes) -> None:
        self.body += data

    def on_end(self) -> None:
        self.ends += 1

    def on_upgrade(self, rest: bytes) -> None:
        self.upgrades.append(rest)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.binary(max_size=64), max_size=8))
def test_request_decoder_any_bytes(chunks):
    d = RequestDecoder(Events(), max_header_bytes=4096)
    try:
        for c in chunks:
            d.feed(c)
    except ProtocolError as exc:
        assert exc.status in (400, 431, 501)


_line = st.sampled_from([b"Host: a", b"Content-Length: 3", b"Transfer-Encoding: chunked", b"X-A: b",
                         b"Connection: close", b"Expect: 100-continue", b"Content-Length: x"])


@settings(max_examples=300, deadline=None)
@given(st.lists(_line, max_size=5), st.binary(max_size=40), st.integers(1, 20))
def test_request_decoder_structured_split_anywhere(lines, body, split):
    data = b"POST /p HTTP/1.1\r\n" + b"\r\n".join(lines) + b"\r\n\r\n" + body
    ev = Events()
    d = RequestDecoder(ev)
    try:
        for i in range(0, len(data), split):
            d.feed(data[i:i + split])
    except ProtocolError:
        return
    for h in ev.heads:
        assert h.method == "POST" and h.target == "/p"


def test_request_framing_and_errors():
    ev = Events()
    d = RequestDecoder(ev)
    d.feed(b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
           b"GET /b HTTP/1.1\r\nHost: x\r\n\r\n")
    assert [h.target for h in ev.heads] == ["/a", "/b"] and ev.body == b"hello" and ev.ends == 2
    assert ev.heads[0].chunked and not ev.heads[1].has_body
    with pytest.raises(ProtocolError) as err:
        RequestDecoder(Events()).feed(b"GET / HTTP/1.1\r\n\r\n")
    assert err.value.status == 400 and "host" in err.value.reason
    with pytest.raises(ProtocolError) as err:
        RequestDecoder(Events()).feed(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n")
    assert err.value.status == 501
    with pytest.raises(ProtocolError) as err:
        RequestDecoder(Events(), max_header_bytes=100).feed(b"GET / HTTP/1.1\r\nHost: x\r\nX: " + b"a" * 200 + b"\r\n\r\n")
    assert err.value.status == 431


def test_upstream_response_head_1xx_and_parser_reset():
    conn, pool = upstream_connection()
    ex = Exchange()
    conn.start(ex, head_request=True)  # a HEAD: the message ends at its head
    conn.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n")
    assert ex.ends == 1 and ex.heads[0].content_length == 10 and pool.released == [True]
    ex2 = Exchange()
    conn.start(ex2, head_request=False)  # llhttp would still wait for those 10 bytes: a fresh parser
    conn.data_received(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\nX-B: 2\r\n\r\n")
    assert [h.status for h in ex2.heads] == [204] and ex2.ends == 1
    assert ex2.heads[0].headers == [("x-b", "2")] and pool.released == [True, True]


def test_upstream_response_framing_from_the_raw_head():
    conn, _ = upstream_connection()
    ex = Exchange()
    conn.start(ex, head_request=False)
    conn.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: keep-alive, X-Drop\r\n"
                       b"X-Drop: 1\r\n\r\nabc")
    head = ex.heads[0]
    assert head.content_length == 3 and not head.chunked and not head.simple  # Connection names a header
    assert ex.body == b"abc" and ex.ends == 1
    ex = Exchange()
    conn.start(ex, head_request=False)
    conn.data_received(b"HTTP/1.1 500 Oops\r\nTransfer-Encoding: gzip\r\n\r\n")
    assert ex.heads == [] and ex.resets and "protocol error" in ex.resets[0]


def test_serializers():
    assert encode_request_head("GET", "/x", [("host", "a")]) == b"GET /x HTTP/1.1\r\nhost: a\r\n\r\n"
    assert encode_chunk(b"abc") == b"3\r\nabc\r\n"
    hs = [("connection", "keep-alive, x-drop"), ("x-drop", "1"), ("te", "trailers"), ("te", "gzip"),
          ("content-length", "3"), ("x-keep", "2")]
    assert strip_hop_by_hop(hs) == [("te", "trailers"), ("x-keep", "2")]
