"""The express path (stream.Stream._express, upstream.UpstreamConnection._express) gives the
same answers as the general path: the upstream's response header lines forwarded minus
exactly what Envoy drops, Envoy's additions appended both ways, and everything unusual handed
to the general path (a Connection header naming another header, pipelining, retries,
Connection: close)."""

from __future__ import annotations

import asyncio
import contextlib
import re
import uuid
from collections.abc import AsyncIterator

import pytest
from conftest import free_port
from proxy_harness import bootstrap, cluster, http_listener, raw_request, route, running_proxy, vhost

from ketch.proxy import hcm as hcm_mod
from ketch.proxy import http1_scan
from ketch.proxy import upstream as upstream_mod


class ScriptedUpstream:
    """A raw HTTP/1.1 server: records each request head and answers from a script (the last
    answer repeats), so a test controls header case and hop-by-hop lines exactly."""

    def __init__(self, *answers: bytes) -> None:
        self.answers = list(answers)
        self.heads: list[bytes] = []
        self.connections = 0
        self.server: asyncio.base_events.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                self.heads.append(head)
                if head.startswith(b"GET /slow"):
                    await asyncio.sleep(0.1)  # keeps concurrent requests on separate connections
                answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
                writer.write(answer)
                await writer.drain()
                if b"connection: close" in answer.lower():
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


def _split(response: bytes) -> tuple[str, bytes]:
    head, _, body = response.partition(b"\r\n\r\n")
    return head.decode("latin-1"), body


def _proxy(port: int, up: int, **vh) -> dict:
    return bootstrap([http_listener(port, vhost(route("c"), **vh))], [cluster("c", up)])


@contextlib.asynccontextmanager
async def scripted(*answers: bytes, bootstrap_for=_proxy) -> AsyncIterator[tuple[ScriptedUpstream, int]]:
    """A scripted upstream and a proxy in front of it; yields the upstream and the proxy's port."""
    up = ScriptedUpstream(*answers)
    port = await up.start()
    listen = free_port()
    try:
        async with running_proxy(bootstrap_for(listen, port)):
            yield up, listen
    finally:
        await up.stop()


OK_NGINX = (b"HTTP/1.1 200 OK\r\nServer: up\r\nX-Custom: A\r\nKeep-Alive: timeout=5\r\n"
            b"Connection: keep-alive\r\nContent-Length: 5\r\n\r\nhello")


async def test_response_lines_forwarded_minus_hop_by_hop_and_connection_reused() -> None:
    async with scripted(OK_NGINX) as (up, listen):
        for _ in range(2):
            head, body = _split(await raw_request(
                listen, b"GET /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"))
            lines = head.split("\r\n")
            assert lines[0] == "HTTP/1.1 200 OK" and body == b"hello"
            assert "X-Custom: A" in lines and "Content-Length: 5" in lines
            low = head.lower()
            assert "keep-alive:" not in low and low.count("\r\nserver:") == 1 and "\r\nserver: envoy" in low
            assert re.search(r"\r\nx-envoy-upstream-service-time: \d+", head)
            assert "connection: close" in low  # the downstream asked to close
        assert up.connections == 1  # the upstream connection went back to the pool both times


async def test_connection_header_naming_another_is_stripped_too() -> None:
    async with scripted(b"HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Secret\r\nX-Secret: 1\r\n"
                        b"X-Public: 2\r\nContent-Length: 2\r\n\r\nok") as (up, listen):
        head, body = _split(await raw_request(listen, b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"))
        assert body == b"ok" and "x-public: 2" in head.lower()
        assert "x-secret" not in head.lower()


async def test_request_lines_forwarded_with_envoy_additions() -> None:
    async with scripted(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n") as (up, listen):
        for _ in range(2):  # the first opens the upstream connection; the second finds it idle
            await raw_request(listen, b"GET /a?b=1 HTTP/1.1\r\nHost: h\r\nX-Mixed-Case: V\r\n\r\n",
                              read_until_close=False)
        await raw_request(listen, b"GET /b HTTP/1.1\r\nHost: h\r\nX-Request-Id: given-1\r\n"
                                  b"X-Forwarded-Proto: https\r\n\r\n", read_until_close=False)
    cold, first, second = (h.decode("latin-1") for h in up.heads)
    for head in (cold, first):  # the same request, whether a connection was idle or not
        lines = head.lower().split("\r\n")
        assert lines[:3] == ["get /a?b=1 http/1.1", "host: h", "x-mixed-case: v"]
        assert "x-forwarded-proto: http" in lines
        rid = [ln.split(": ", 1)[1] for ln in lines if ln.startswith("x-request-id: ")]
        assert len(rid) == 1 and uuid.UUID(rid[0]).version == 4
    low = second.lower()
    assert low.count("x-request-id:") == 1 and "x-request-id: given-1" in low
    assert low.count("x-forwarded-proto:") == 1 and "x-forwarded-proto: https" in low


async def test_hop_by_hop_request_headers_still_dropped() -> None:
    async with scripted(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n") as (up, listen):
        await raw_request(listen, b"GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, X-Hop\r\n"
                                  b"X-Hop: 1\r\nKeep-Alive: 5\r\nX-End: 2\r\n\r\n", read_until_close=False)
    low = up.heads[0].decode("latin-1").lower()
    assert "x-end: 2" in low and "x-hop" not in low and "keep-alive" not in low


async def test_pipelined_requests_in_one_write() -> None:
    async with scripted(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nzero",
                        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\none",
                        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\ntwo") as (up, listen):
        await raw_request(listen, b"GET /0 HTTP/1.1\r\nHost: h\r\n\r\n", read_until_close=False)
        up.heads.clear()
        out = await raw_request(listen, b"GET /1 HTTP/1.1\r\nHost: h\r\nX-A: 1\r\n\r\n"
                                        b"GET /2 HTTP/1.1\r\nHost: h\r\nX-B: 2\r\nConnection: close\r\n\r\n")
    assert out.count(b"HTTP/1.1 200 OK") == 2
    assert out.index(b"\r\n\r\none") < out.index(b"\r\n\r\ntwo")
    first, second = (h.decode("latin-1").lower() for h in up.heads)
    assert first.startswith("get /1 http/1.1\r\n") and "x-a: 1" in first and "x-b" not in first
    assert second.startswith("get /2 http/1.1\r\n") and "x-b: 2" in second and "x-a" not in second


async def test_retry_after_an_express_try_keeps_the_request_id() -> None:
    def boot(listen: int, port: int) -> dict:
        return bootstrap([http_listener(listen, vhost(
            route("c", retryPolicy={"retryOn": "5xx", "numRetries": 2, "retryBackOff": {"baseInterval": "0.001s"}}),
            includeRequestAttemptCount=True))], [cluster("c", port)])
    async with scripted(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\nbusy",
                        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", bootstrap_for=boot) as (up, listen):
        head, body = _split(await raw_request(listen, b"GET /r HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"))
    assert head.startswith("HTTP/1.1 200") and body == b"ok"
    tries = [h.decode("latin-1").lower() for h in up.heads]
    assert len(tries) == 2
    ids = [re.search(r"x-request-id: (\S+)", t).group(1) for t in tries]
    assert ids[0] == ids[1]
    assert "x-envoy-attempt-count: 1" in tries[0] and "x-envoy-attempt-count: 2" in tries[1]


async def test_upstream_connection_close_is_not_reused() -> None:
    async with scripted(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok") as (up, listen):
        for _ in range(2):
            head, body = _split(await raw_request(
                listen, b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"))
            assert head.startswith("HTTP/1.1 200") and body == b"ok"
            assert "connection: close" in head.lower()
    assert up.connections == 2


async def test_pipelined_twins_keep_their_own_headers() -> None:
    """Two pipelined requests with the same request line: the second's header lines are its own."""
    async with scripted(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok") as (up, listen):
        # two upstream connections in the pool, so the second pipelined request finds one idle
        await asyncio.gather(*(raw_request(listen, b"GET /slow HTTP/1.1\r\nHost: h\r\n\r\n",
                                           read_until_close=False) for _ in range(2)))
        assert up.connections == 2
        up.heads.clear()
        out = await raw_request(listen, b"GET /t HTTP/1.1\r\nHost: h\r\nX-One: 1\r\n\r\n"
                                        b"GET /t HTTP/1.1\r\nHost: h\r\nX-Two: 2\r\n\r\n"
                                        b"GET /end HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
    assert out.count(b"HTTP/1.1 200 OK") == 3
    first, second, _ = (h.decode("latin-1").lower() for h in up.heads)
    assert "x-one: 1" in first and "x-two" not in first
    assert "x-two: 2" in second and "x-one" not in second


# -- the compiled whole-message scanners (proxy/_http1_scan.pyx) change nothing on the wire

def _normalised(response: bytes) -> bytes:
    return re.sub(rb"x-envoy-upstream-service-time: \d+", b"x-envoy-upstream-service-time: N", response)


@pytest.mark.skipif(not http1_scan.compiled, reason="the compiled scanner is not built (no C compiler at install)")
@pytest.mark.parametrize("request_bytes", [
    b"GET /x?y=1 HTTP/1.1\r\nHost: a\r\nX-Request-Id: r1\r\nUser-Agent: t/1\r\n\r\n",
    b"DELETE /item/7 HTTP/1.1\r\nHost: a:80\r\nX-Request-Id: r2\r\nConnection: close\r\n\r\n",
    b"POST /form HTTP/1.1\r\nhost: a\r\nx-request-id: r3\r\nConnection: keep-alive\r\nAccept: */*\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nX-Request-Id: r4\r\nContent-Length: 0\r\n\r\n",  # declined: llhttp
])
@pytest.mark.parametrize("answer", [
    OK_NGINX,
    b"HTTP/1.1 302 Found\r\nLocation: /there\r\nServer: up\r\nTE: x\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",  # declined: llhttp
    b"HTTP/1.1 404 Not Found\r\nContent-Length: 4\r\n\r\nnope",  # not express
])
async def test_scanners_on_and_off_give_the_same_bytes(monkeypatch, request_bytes: bytes, answer: bytes) -> None:
    accepted = {"request": 0, "response": 0}

    def counting(kind: str, scan):
        def wrapper(*args):
            out = scan(*args)
            accepted[kind] += out is not None
            return out
        return wrapper

    seen = {}
    for mode in ("on", "off"):
        if mode == "on":
            # (the compiled functions themselves: KETCH_HTTP1_SCAN=off leaves http1_scan's names None)
            from ketch.proxy import _http1_scan
            monkeypatch.setattr(hcm_mod, "_scan_request", counting("request", _http1_scan.scan_request))
            monkeypatch.setattr(upstream_mod, "_scan_response", counting("response", _http1_scan.scan_response))
        else:
            monkeypatch.setattr(hcm_mod, "_scan_request", None)
            monkeypatch.setattr(upstream_mod, "_scan_response", None)
        async with scripted(answer) as (up, listen):
            responses = [_normalised(await raw_request(listen, request_bytes,
                                                       read_until_close=b"Connection: close" in request_bytes))
                         for _ in range(2)]
        seen[mode] = (responses, up.heads, up.connections)
    assert seen["on"] == seen["off"]
    simple_request = b"Content-Length" not in request_bytes
    assert accepted["request"] == (2 if simple_request else 0)
    express_answer = answer.startswith((b"HTTP/1.1 200", b"HTTP/1.1 302")) and b"close" not in answer
    # (the express path keeps to downstream keep-alive: a closing request takes the general one)
    keep_alive = b"Connection: close" not in request_bytes
    assert accepted["response"] == (2 if express_answer and keep_alive else 0)
