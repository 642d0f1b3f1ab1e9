"""The compiled whole-message scanners (proxy/_http1_scan.pyx) against llhttp, input by input.

The scanners may decline anything, but what they accept must be exactly what llhttp makes of
the same bytes: one complete message and nothing after it, the same method, target, header
pairs and keep-alive for a request; the same status, framing and body for a response, with
the forwarded header lines equal to `http1.forward_block` (the pure-Python express path).
And they must accept the ordinary shapes, or the express path would never use them."""

from __future__ import annotations

import httptools
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ketch.proxy import http1_scan
from ketch.proxy.http1 import _STATUS_LINES_B, _header_lines, forward_block, status_line

pytestmark = pytest.mark.skipif(not http1_scan.compiled,
                                reason="the compiled scanner is not built (no C compiler when the package was installed)")

if http1_scan.compiled:
    from ketch.proxy._http1_scan import scan_request, scan_response


class Recorder:
    """llhttp's view of the bytes, recorded the way hcm.Http1Downstream records it."""

    def __init__(self) -> None:
        self.url = b""
        self.headers: list[tuple[str, str]] = []
        self.begun = self.completed = 0
        self.body = b""
        self.keep_alive: bool | None = None
        self.status: int | None = None

    def on_message_begin(self) -> None:
        self.begun += 1

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.lower().decode("latin-1"), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        self.keep_alive = self.parser.should_keep_alive()

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        self.completed += 1


def llhttp(data: bytes, request: bool) -> tuple[Recorder, str | None]:
    """llhttp's parse of `data`: the recording and None, or the failure."""
    r = Recorder()
    r.parser = (httptools.HttpRequestParser if request else httptools.HttpResponseParser)(r)
    try:
        r.parser.feed_data(data)
    except httptools.HttpParserUpgrade:
        return r, "upgrade"
    except httptools.HttpParserError as exc:
        return r, f"error: {exc}"
    if request:
        r.method = r.parser.get_method().decode("ascii")
    else:
        r.status = r.parser.get_status_code()
    r.version = r.parser.get_http_version()
    return r, None


def check_request(data: bytes) -> tuple | None:
    scanned = scan_request(data)
    if scanned is None:
        return None
    method, target, headers, hdrs, keep_alive, lines = scanned
    r, failure = llhttp(data, request=True)
    assert failure is None, (data, failure)
    assert r.begun == r.completed == 1, data  # one whole message, nothing after it
    assert (r.method, r.url.decode("latin-1"), r.version) == (method, target, "1.1")
    assert r.headers == headers
    assert hdrs == dict(headers) and len(hdrs) == len(headers)
    assert r.keep_alive == keep_alive
    assert lines == _header_lines(headers).encode("latin-1")
    assert r.body == b""
    assert "host" in hdrs and not {"content-length", "transfer-encoding", "upgrade", "expect"} & hdrs.keys()
    return scanned


TAIL = b"\r\nx-envoy-upstream-service-time: 3\r\nserver: envoy\r\n\r\n"


def check_response(data: bytes, drop_server: bool) -> tuple | None:
    """The scanner's answer against llhttp's parse; returns (status, forwarded lines, body)."""
    scanned = scan_response(data, drop_server, _STATUS_LINES_B, TAIL)
    if scanned is None:
        return None
    status, out, body_length = scanned
    body_start = len(data) - body_length
    r, failure = llhttp(data, request=False)
    assert failure is None, (data, failure)
    assert r.begun == r.completed == 1, data
    assert (r.status, r.version, r.keep_alive) == (status, "1.1", True)
    assert 200 <= status < 400 and status not in (204, 304)
    assert r.body == data[body_start:]
    names = [k for k, _ in r.headers]
    assert names.count("content-length") == 1 and "transfer-encoding" not in names
    assert int(dict(r.headers)["content-length"]) == len(data) - body_start
    block = data[:data.index(b"\r\n\r\n")]
    lines = forward_block(block, drop_server)
    assert out == status_line(status) + lines + TAIL + r.body
    return status, lines, r.body


# -- the ordinary shapes are taken

def test_ordinary_requests_are_scanned() -> None:
    wrk = b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n"
    assert check_request(wrk) == ("GET", "/", [("host", "127.0.0.1:8080")], {"host": "127.0.0.1:8080"}, True,
                                  b"host: 127.0.0.1:8080\r\n")
    curl = (b"GET /api/v1/items?id=7&x=%20y HTTP/1.1\r\nHost: reviews:9080\r\nUser-Agent: curl/7.88.1\r\n"
            b"Accept: */*\r\nX-Request-Id: 3f1c\r\nX-B3-TraceId: 80f198ee56343ba864fe8b2a57d3eff7\r\n\r\n")
    method, target, headers, _, keep_alive, _ = check_request(curl)
    assert (method, target, keep_alive) == ("GET", "/api/v1/items?id=7&x=%20y", True)
    assert headers[1] == ("user-agent", "curl/7.88.1") and headers[3] == ("x-request-id", "3f1c")
    closing = b"DELETE /x HTTP/1.1\r\nhost: a\r\nConnection:  Close\r\n\r\n"
    assert check_request(closing)[4] is False
    assert scan_request(closing.replace(b"Close", b"Close ")) is None  # llhttp keeps the blank: declined


def test_ordinary_responses_are_scanned() -> None:
    nginx = (b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Sat, 05 Dec 2026 21:00:00 GMT\r\n"
             b"Content-Type: text/plain\r\nContent-Length: 12\r\nConnection: keep-alive\r\n\r\nhello world\n")
    status, lines, body = check_response(nginx, False)
    assert (status, body) == (200, b"hello world\n")
    assert lines == (b"\r\nServer: nginx/1.22.1\r\nDate: Sat, 05 Dec 2026 21:00:00 GMT\r\nContent-Type: text/plain"
                     b"\r\nContent-Length: 12")
    assert b"Server" not in check_response(nginx, True)[1]
    hop = (b"HTTP/1.1 302 Found\r\nKeep-Alive: timeout=5\r\nLocation: /next\r\nTE: x\r\n"
           b"Content-Length: 0\r\n\r\n")
    assert check_response(hop, False)[1] == b"\r\nLocation: /next\r\nContent-Length: 0"


# -- and everything else is left to llhttp

@pytest.mark.parametrize("data", [
    b"GET / HTTP/1.0\r\nHost: a\r\n\r\n",                                   # HTTP/1.0
    b"GET / HTTP/1.1\r\n\r\n",                                              # no Host (llhttp path: 400)
    b"GET / HTTP/1.1\nHost: a\n\n",                                         # bare LF
    b"GET / HTTP/1.1\r\nHost : a\r\n\r\n",                                  # blank before the colon
    b"GET / HTTP/1.1\r\nHost: a\r\n b\r\n\r\n",                             # obs-fold
    b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",                        # repeated name
    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n",             # any framing header
    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
    b"PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n\r\n",
    b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n",                        # CONNECT
    b"GET http://a/x HTTP/1.1\r\nHost: a\r\n\r\n",                          # absolute form
    b"GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, x-secret\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nProxy-Connection: close\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",  # pipelined
    b"GET / HTTP/1.1\r\nHost: a\r\n",                                       # incomplete
    b"GET / HTTP/1.1\r\nHost: a\x00b\r\n\r\n",                              # control character
    b"GET /a b HTTP/1.1\r\nHost: a\r\n\r\n",
    b"BREW /pot HTTP/1.1\r\nHost: a\r\n\r\n",
])
def test_unusual_requests_are_declined(data: bytes) -> None:
    assert scan_request(data) is None


@pytest.mark.parametrize("data", [
    b"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nx",
    b"HTTP/1.1 204 No Content\r\n\r\n",
    b"HTTP/1.1 304 Not Modified\r\nContent-Length: 3\r\n\r\n",
    b"HTTP/1.1 100 Continue\r\n\r\n",
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 1\r\n\r\nx",      # retries decide on 5xx
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx",
    b"HTTP/1.1 200 OK\r\n\r\nuntil close",                                 # no Content-Length
    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nabc",                      # body in the next read
    b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nxy",                       # bytes after the body
    b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nConnection: close\r\n\r\nx",
    b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nProxy-Connection: close\r\n\r\nx",  # llhttp: like Connection
    b"HTTP/1.1 200 OK\r\nContent-Length: +1\r\n\r\nx",
    b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nX: a\r\n  folded\r\n\r\nx",
    b"HTTP/1.1 200 OK\nContent-Length: 1\n\nx",
    b"HTTP/1.1 200 OK\r\nContent-Length : 1\r\n\r\nx",
    b"HTTP/1.1 200 OK\r\nConnection: upgrade\r\nUpgrade: h2c\r\nContent-Length: 1\r\n\r\nx",
])
def test_unusual_responses_are_declined(data: bytes) -> None:
    assert scan_response(data, False, _STATUS_LINES_B, TAIL) is None


# -- differential fuzzing against llhttp

_TCHARS = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
_BYTE = st.one_of(st.sampled_from(list(b" \t\r\n:;,=/\"()\x00\x7f\x80\xff")), st.integers(0, 255),
                  st.sampled_from(list(_TCHARS.encode())))
_NAMES = st.one_of(st.sampled_from(["User-Agent", "Accept", "X-B3-Sampled", "Host", "host", "HOST", "Content-Length", "Transfer-Encoding", "Connection",
                                    "Upgrade", "Expect", "Keep-Alive", "TE", "Server", "X-Request-Id", "Trailer",
                                    "Proxy-Connection", "content-length"]),
                   st.text(alphabet=_TCHARS, min_size=1, max_size=12))
_VALUES = st.one_of(st.sampled_from(["a", "a", "curl/8", "*/*", "keep-alive", "close", " Keep-Alive ", "chunked", "0", "12", "5",
                                     "100-continue", "websocket", "trailers", "upgrade", "12, 12"]),
                    st.binary(max_size=12).map(lambda b: b.decode("latin-1")))
_SEPS = st.sampled_from([": ", ":", ":\t", " :", ": \t", ":  "])
_EOLS = st.sampled_from(["\r\n"] * 16 + ["\n", "\r", "\r\r\n"])


@st.composite
def messages(draw, request: bool) -> bytes:
    """Mostly well-formed messages (so that the scanners accept a good share of them), then
    some of their bytes corrupted."""
    if request:
        method = draw(st.sampled_from(["GET"] * 6 + ["HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "CONNECT",
                                                      "get", "PRI", "G ET"]))
        target = draw(st.one_of(st.just("/"), st.text(alphabet="/abcxyz?&=%#;~!$'()*+,.-_:@[]{}<>|\\^` \"", max_size=16)
                                .map(lambda t: "/" + t), st.sampled_from(["*", "http://a/b", ""])))
        start = f"{method} {target} {draw(st.sampled_from(['HTTP/1.1'] * 8 + ['HTTP/1.0', 'HTTP/2.0', 'HTTP/1.1 ']))}"
    else:
        status = draw(st.one_of(st.sampled_from([200] * 5 + [201, 204, 301, 302, 304, 404, 503, 101, 100]),
                                st.integers(0, 999)))
        reason = draw(st.sampled_from(["OK", "OK", "", " Found", "Weird\tphrase", "\x7f", "\xe9t\xe9"]))
        version = draw(st.sampled_from(["HTTP/1.1"] * 8 + ["HTTP/1.0", "HTTP/1.1 "]))
        start = f"{version} {status:03d} {reason}"
    fields = draw(st.lists(st.tuples(_NAMES, _SEPS, _VALUES), max_size=6))
    body = draw(st.binary(max_size=20)) if draw(st.booleans()) else b""
    if request and draw(st.integers(0, 9)) < 8:
        fields.insert(draw(st.integers(0, len(fields))), ("Host", ": ", draw(_VALUES)))
    if not request and draw(st.integers(0, 9)) < 8:
        fields.insert(draw(st.integers(0, len(fields))), ("Content-Length", ": ", str(len(body))))
    eol = draw(_EOLS)
    head = eol.join([start] + [f"{name}{sep}{value}" for name, sep, value in fields]) + eol + eol
    data = bytearray(head.encode("latin-1") + body)
    for _ in range(draw(st.sampled_from([0, 0, 0, 1, 2]))):  # a few corrupted bytes
        data[draw(st.integers(0, len(data) - 1))] = draw(_BYTE)
    return bytes(data)


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messages(request=True))
@example(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
def test_accepted_requests_are_what_llhttp_parses(data: bytes) -> None:
    check_request(data)


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messages(request=False), st.booleans())
@example(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", False)
def test_accepted_responses_are_what_llhttp_parses(data: bytes, drop_server: bool) -> None:
    check_response(data, drop_server)


@settings(max_examples=2000, deadline=None)
@given(st.binary(max_size=200), st.booleans())
def test_arbitrary_bytes_never_break_the_scanners(data: bytes, drop_server: bool) -> None:
    check_request(data)
    check_response(data, drop_server)
