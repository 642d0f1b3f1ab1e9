"""The sans-IO HTTP/1.1 codec: any input parses or raises ProtocolError; nothing else escapes."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ketch.proxy.http1 import (ProtocolError, RequestDecoder, ResponseDecoder, encode_chunk, encode_request_head,
                               strip_hop_by_hop)


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


def test_response_decoder_head_1xx_and_until_close():
    ev = Events()
    d = ResponseDecoder(ev)
    d.head_request = True
    d.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n")
    assert ev.ends == 1 and ev.heads[0].content_length == 10
    d.head_request = False
    d.feed(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n")
    assert [h.status for h in ev.heads] == [200, 204] and ev.ends == 2


def test_serializers():
    assert encode_request_head("GET", "/x", [("host", "a")]) == b"GET /x HTTP/1.1\r\nhost: a\r\n\r\n"
    assert encode_chunk(b"abc") == b"3\r\nabc\r\n"
    hs = [("connection", "keep-alive, x-drop"), ("x-drop", "1"), ("te", "trailers"), ("te", "gzip"),
          ("content-length", "3"), ("x-keep", "2")]
    assert strip_hop_by_hop(hs) == [("te", "trailers"), ("x-keep", "2")]
