"""The HTTP/1.1 path through a real proxy to real aiohttp upstreams."""

from __future__ import annotations

import asyncio

import httpx
from aiohttp import web

from proxy_harness import (bootstrap, cluster, http_listener, raw_request, route, running_proxy, upstream, vhost)
from conftest import free_port


async def echo(req: web.Request) -> web.StreamResponse:
    body = await req.read()
    return web.json_response({"path": req.path_qs, "method": req.method, "len": len(body),
                              "headers": {k.lower(): v for k, v in req.headers.items()},
                              "peer_port": req.transport.get_extra_info("peername")[1]})


async def test_get_post_keepalive_and_standard_headers():
    async with upstream(echo) as up:
        port = free_port()
        b = bootstrap([http_listener(port, vhost(route("c")))], [cluster("c", up)])
        async with running_proxy(b) as p, httpx.AsyncClient() as c:
            r1 = await c.get(f"http://127.0.0.1:{port}/a?x=1", headers={"connection": "keep-alive, x-hop",
                                                                       "x-hop": "drop-me"})
            r2 = await c.post(f"http://127.0.0.1:{port}/b", content=b"z" * 300_000)
            assert r1.status_code == 200 and r2.status_code == 200
            j1, j2 = r1.json(), r2.json()
            assert j1["path"] == "/a?x=1" and j2["len"] == 300_000
            assert "x-hop" not in j1["headers"]
            assert j1["headers"]["x-forwarded-proto"] == "http"
            assert len(j1["headers"]["x-request-id"]) == 36
            assert "x-envoy-upstream-service-time" in r1.headers
            # the proxy reused its upstream connection
            assert j1["peer_port"] == j2["peer_port"]
            r3 = await c.get(f"http://127.0.0.1:{port}/", headers={"x-request-id": "given"})
            assert r3.json()["headers"]["x-request-id"] == "given"
        stats = p.state.store.render_text()
        assert "cluster.c.upstream_rq_total: 3" in stats
        assert "cluster.c.upstream_cx_total: 1" in stats


async def test_chunked_upload_and_streamed_chunked_response():
    async def stream_back(req: web.Request) -> web.StreamResponse:
        data = await req.read()
        resp = web.StreamResponse()
        resp.enable_chunked_encoding()
        await resp.prepare(req)
        for i in range(0, len(data), 1000):
            await resp.write(data[i:i + 1000])
        await resp.write_eof()
        return resp

    async with upstream(stream_back) as up:
        port = free_port()
        b = bootstrap([http_listener(port, vhost(route("c")))], [cluster("c", up)])
        async with running_proxy(b):
            async def gen():
                for i in range(20):
                    yield bytes([65 + i]) * 500
            async with httpx.AsyncClient() as c:
                r = await c.post(f"http://127.0.0.1:{port}/s", content=gen())
            assert r.status_code == 200
            assert r.headers["transfer-encoding"] == "chunked"
            assert r.content == b"".join(bytes([65 + i]) * 500 for i in range(20))


async def test_head_and_expect_continue_and_http10():
    async with upstream(echo) as up:
        port = free_port()
        b = bootstrap([http_listener(port, vhost(route("c")))], [cluster("c", up)])
        async with running_proxy(b):
            out = await raw_request(port, b"HEAD /h HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            head, _, body = out.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200") and b"content-length" in head.lower() and body == b""
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"POST /c HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
            line = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            assert line.startswith(b"HTTP/1.1 100 Continue")
            writer.write(b"hello")
            resp = await asyncio.wait_for(reader.readuntil(b"}"), 5)
            assert b'"len": 5' in resp and b"expect" not in resp.split(b"\r\n\r\n", 1)[1]
            writer.close()
            out = await raw_request(port, b"GET /ten HTTP/1.0\r\n\r\n")
            assert out.startswith(b"HTTP/1.1 200") and b'"/ten"' in out


async def test_local_replies_nr_uh_uf():
    dead = free_port()
    async with upstream(echo) as up:
        port = free_port()
        b = bootstrap([http_listener(port, vhost(route("empty", prefix="/empty"), route("dead", prefix="/dead"),
                                                 domains=["known"]))],
                      [{"name": "empty", "type": "STATIC", "connectTimeout": "1s"}, cluster("dead", dead)])
        async with running_proxy(b) as p, httpx.AsyncClient() as c:
            r = await c.get(f"http://127.0.0.1:{port}/", headers={"host": "unknown"})
            assert r.status_code == 404
            r = await c.get(f"http://127.0.0.1:{port}/empty", headers={"host": "known"})
            assert r.status_code == 503 and r.text == "no healthy upstream"
            r = await c.get(f"http://127.0.0.1:{port}/dead", headers={"host": "known"})
            assert r.status_code == 503
            assert r.text == "upstream connect error or disconnect/reset before headers. reset reason: connection failure"
        log = p.access_log.getvalue() if hasattr(p, "access_log") else ""
        del log, up


async def test_direct_response_redirect_rewrites_and_header_ops():
    async with upstream(echo) as up:
        port = free_port()
        vh = vhost(
            {"match": {"prefix": "/direct"}, "directResponse": {"status": 418, "body": {"inlineString": "tea"}}},
            {"match": {"prefix": "/old"}, "redirect": {"prefixRewrite": "/new", "responseCode": "FOUND"}},
            {"match": {"prefix": "/api/"}, "route": {"cluster": "c", "prefixRewrite": "/v2/",
                                                    "hostRewriteLiteral": "backend.local"},
             "requestHeadersToAdd": [{"header": {"key": "x-route", "value": "api"}}],
             "responseHeadersToAdd": [{"header": {"key": "x-resp", "value": "yes"}}],
             "requestHeadersToRemove": ["x-secret"]},
            {"match": {"safeRegex": {"regex": "/re/([a-z]+)"}},
             "route": {"cluster": "c", "regexRewrite": {"pattern": {"regex": "^/re/([a-z]+)$"},
                                                         "substitution": "/got/\\1"}}},
            requestHeadersToAdd=[{"header": {"key": "x-vh", "value": "1"}}])
        b = bootstrap([http_listener(port, vh)], [cluster("c", up)])
        async with running_proxy(b), httpx.AsyncClient() as c:
            r = await c.get(f"http://127.0.0.1:{port}/direct")
            assert (r.status_code, r.text) == (418, "tea")
            r = await c.get(f"http://127.0.0.1:{port}/old/x?q=1", headers={"host": "h.example:8080"})
            assert r.status_code == 302 and r.headers["location"] == "http://h.example:8080/new/x?q=1"
            r = await c.get(f"http://127.0.0.1:{port}/api/items", headers={"x-secret": "s"})
            j = r.json()
            assert j["path"] == "/v2/items" and j["headers"]["host"] == "backend.local"
            assert j["headers"]["x-route"] == "api" and j["headers"]["x-vh"] == "1" and "x-secret" not in j["headers"]
            assert r.headers["x-resp"] == "yes"
            r = await c.get(f"http://127.0.0.1:{port}/re/abc")
            assert r.json()["path"] == "/got/abc"


async def test_normalize_path_and_merge_slashes_before_routing():
    async with upstream(echo) as up:
        port = free_port()
        vh = vhost(route("c", prefix="/public"),
                   {"match": {"prefix": "/"}, "directResponse": {"status": 403}})
        b = bootstrap([http_listener(port, vh, hcm_extra={"normalizePath": True, "mergeSlashes": True})],
                      [cluster("c", up)])
        async with running_proxy(b):
            out = await raw_request(port, b"GET /x/..//public/./a?q=/../ HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
            assert out.startswith(b"HTTP/1.1 200") and b'"path": "/public/a?q=/../"' in out
            out = await raw_request(port, b"GET /public/../private HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
            assert out.startswith(b"HTTP/1.1 403")


async def test_stream_idle_request_and_connection_idle_timeouts():
    async def slow(req: web.Request) -> web.Response:
        await asyncio.sleep(3)  # beyond the 0.5 s idle timeout plus the 1 s sweep
        return web.Response(text="late")

    async with upstream(slow) as up:
        port = free_port()
        b = bootstrap([http_listener(port, vhost(route("c", timeout="0s")), hcm_extra={
            "streamIdleTimeout": "0.5s", "requestTimeout": "0.5s",
            "commonHttpProtocolOptions": {"idleTimeout": "0.5s"}})], [cluster("c", up)])
        async with running_proxy(b):
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            out = await raw_request(port, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", timeout=10)
            assert out.startswith(b"HTTP/1.1 408") and out.endswith(b"stream timeout")
            assert loop.time() - t0 < 4
            out = await raw_request(port, b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nab", timeout=10)
            assert out.startswith(b"HTTP/1.1 408") and out.endswith(b"request timeout")
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            assert await asyncio.wait_for(reader.read(), 10) == b""  # an idle connection is closed
            writer.close()


async def test_large_bodies_stream_both_ways_with_backpressure():
    blob = bytes(range(256)) * 4096 * 16  # 16 MiB

    async def big(req: web.Request) -> web.StreamResponse:
        if req.method == "POST":
            n = 0
            async for chunk in req.content.iter_any():
                n += len(chunk)
            return web.Response(text=str(n))
        return web.Response(body=blob)

    async with upstream(big) as up:
        port = free_port()
        b = bootstrap([http_listener(port, vhost(route("c")))], [cluster("c", up)])
        async with running_proxy(b), httpx.AsyncClient(timeout=30) as c:
            got = bytearray()
            async with c.stream("GET", f"http://127.0.0.1:{port}/big") as r:
                async for chunk in r.aiter_bytes():
                    got += chunk
                    if len(got) < 1 << 20:
                        await asyncio.sleep(0.01)  # a slow reader at first: the proxy must hold back
            assert bytes(got) == blob

            async def gen():
                for i in range(0, len(blob), 1 << 16):
                    yield blob[i:i + (1 << 16)]
            r = await c.post(f"http://127.0.0.1:{port}/up", content=gen())
            assert r.text == str(len(blob))


async def test_server_header_request_id_in_response_and_host_port_stripping():
    async with upstream(echo) as up:
        port = free_port()
        b = bootstrap([http_listener(port, vhost(route("c"), domains=["svc.example"]), hcm_extra={
            "serverName": "istio-envoy", "alwaysSetRequestIdInResponse": True, "stripAnyHostPort": True})],
            [cluster("c", up)])
        async with running_proxy(b), httpx.AsyncClient() as c:
            r = await c.get(f"http://127.0.0.1:{port}/", headers={"host": "svc.example:1234"})
            assert r.status_code == 200  # the port is stripped before virtual-host matching
            assert r.headers["server"] == "istio-envoy"
            assert r.headers["x-request-id"] == r.json()["headers"]["x-request-id"]


async def test_client_half_close_after_request_still_gets_the_response():
    async with upstream(echo) as up:
        port = free_port()
        b = bootstrap([http_listener(port, vhost(route("c")))], [cluster("c", up)])
        async with running_proxy(b):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /half HTTP/1.1\r\nHost: a\r\n\r\n")
            writer.write_eof()
            out = await asyncio.wait_for(reader.read(), 5)
            writer.close()
            assert out.startswith(b"HTTP/1.1 200") and b'"/half"' in out
