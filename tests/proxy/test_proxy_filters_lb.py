"""CORS, hash-policy stickiness (ring hash), attempt count header, direct response header ops."""

from __future__ import annotations

import httpx
from aiohttp import web

from proxy_harness import CORS, bootstrap, cluster, http_listener, route, running_proxy, upstream, vhost
from conftest import free_port


async def test_cors_preflight_and_simple_request():
    async def ok(req: web.Request) -> web.Response:
        return web.Response(text="ok")

    async with upstream(ok) as up:
        port = free_port()
        cors = {"@type": "type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy",
                "allowOriginStringMatch": [{"exact": "https://app.example"}], "allowMethods": "GET,POST",
                "allowHeaders": "x-custom", "exposeHeaders": "x-exposed", "maxAge": "60",
                "allowCredentials": True}
        b = bootstrap([http_listener(port, vhost(route("c"), typedPerFilterConfig={"envoy.filters.http.cors": cors}),
                                     filters=[CORS])], [cluster("c", up)])
        async with running_proxy(b), httpx.AsyncClient() as c:
            pre = await c.options(f"http://127.0.0.1:{port}/x", headers={
                "origin": "https://app.example", "access-control-request-method": "POST"})
            assert pre.status_code == 200
            assert pre.headers["access-control-allow-origin"] == "https://app.example"
            assert pre.headers["access-control-allow-methods"] == "GET,POST"
            assert pre.headers["access-control-max-age"] == "60"
            simple = await c.get(f"http://127.0.0.1:{port}/x", headers={"origin": "https://app.example"})
            assert simple.text == "ok" and simple.headers["access-control-expose-headers"] == "x-exposed"
            assert simple.headers["access-control-allow-credentials"] == "true"
            other = await c.get(f"http://127.0.0.1:{port}/x", headers={"origin": "https://evil.example"})
            assert "access-control-allow-origin" not in other.headers


async def test_ring_hash_on_header_is_sticky_and_spreads():
    def tagged(tag: str):
        async def h(req: web.Request) -> web.Response:
            return web.Response(text=tag, headers={"x-attempts": req.headers.get("x-envoy-attempt-count", "")})
        return h

    async with upstream(tagged("a")) as pa, upstream(tagged("b")) as pb, upstream(tagged("c")) as pc:
        port = free_port()
        b = bootstrap([http_listener(port, vhost(route("c", hashPolicy=[{"header": {"headerName": "x-user"}}]),
                                                 includeRequestAttemptCount=True))],
                      [cluster("c", pa, pb, pc, lbPolicy="RING_HASH")])
        async with running_proxy(b), httpx.AsyncClient() as c:
            owners = {}
            for user in range(30):
                seen = {(await c.get(f"http://127.0.0.1:{port}/", headers={"x-user": f"u{user}"})).text
                        for _ in range(4)}
                assert len(seen) == 1  # the same user always reaches the same host
                owners[user] = seen.pop()
            assert len(set(owners.values())) >= 2
            r = await c.get(f"http://127.0.0.1:{port}/", headers={"x-user": "u1"})
            assert r.headers["x-attempts"] == "1"
