"""gRPC through the proxy: h2c downstream, HTTP/2 upstream cluster, unary and streaming, status codes."""

from __future__ import annotations

import asyncio

import grpc
import httpx
from aiohttp import web

from proxy_harness import bootstrap, cluster, http_listener, route, running_proxy, upstream, vhost
from conftest import free_port

SERVICE = "ketch.test.Echo"


async def start_grpc_server():
    async def unary(request: bytes, context) -> bytes:
        if request == b"fail":
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, "nope")
        md = dict(context.invocation_metadata())
        return b"echo:" + request + b" via " + md.get("x-forwarded-proto", "-").encode()

    async def stream(request: bytes, context):
        for i in range(int(request)):
            yield f"item{i}".encode()

    async def collect(request_iterator, context) -> bytes:
        parts = [r async for r in request_iterator]
        return b"+".join(parts)

    handler = grpc.method_handlers_generic_handler(SERVICE, {
        "Unary": grpc.unary_unary_rpc_method_handler(unary),
        "Stream": grpc.unary_stream_rpc_method_handler(stream),
        "Collect": grpc.stream_unary_rpc_method_handler(collect),
    })
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, port


async def test_grpc_unary_streaming_and_status_through_proxy():
    server, gport = await start_grpc_server()
    port = free_port()
    b = bootstrap([http_listener(port, vhost(route("grpc", timeout="0s")))],
                  [cluster("grpc", gport, http2ProtocolOptions={})])
    try:
        async with running_proxy(b) as p:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
                unary = ch.unary_unary(f"/{SERVICE}/Unary")
                assert await unary(b"hi", timeout=5) == b"echo:hi via http"
                with __import__("pytest").raises(grpc.aio.AioRpcError) as err:
                    await unary(b"fail", timeout=5)
                assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED and err.value.details() == "nope"
                items = [m async for m in ch.unary_stream(f"/{SERVICE}/Stream")(b"5", timeout=5)]
                assert items == [f"item{i}".encode() for i in range(5)]

                async def gen():
                    for x in (b"a", b"b", b"c"):
                        yield x
                assert await ch.stream_unary(f"/{SERVICE}/Collect")(gen(), timeout=5) == b"a+b+c"
                # several concurrent calls multiplex on one upstream HTTP/2 connection
                results = await asyncio.gather(*(unary(str(i).encode(), timeout=5) for i in range(20)))
                assert sorted(results) == sorted(f"echo:{i} via http".encode() for i in range(20))
            st = p.state.snapshot.clusters["grpc"].stats
            assert st.upstream_cx_http2_total.value == 1
    finally:
        await server.stop(None)


async def test_h2c_downstream_to_http1_upstream():
    async def who(req: web.Request) -> web.Response:
        return web.Response(text=f"{req.method} {req.path} {await req.text()}")

    async with upstream(who) as up:
        port = free_port()
        b = bootstrap([http_listener(port, vhost(route("c")))], [cluster("c", up)])
        async with running_proxy(b):
            async with httpx.AsyncClient(http2=True, http1=False) as c:
                r = await c.post(f"http://127.0.0.1:{port}/x", content=b"body")
                assert r.http_version == "HTTP/2" and r.text == "POST /x body"
                r = await c.get(f"http://127.0.0.1:{port}/none", headers={"host": "nohost"})
                assert r.status_code == 200


async def test_grpc_timeout_header_replaces_route_timeout():
    async def slow(request: bytes, context) -> bytes:
        await asyncio.sleep(float(request))
        return b"done"

    handler = grpc.method_handlers_generic_handler(SERVICE, {"Slow": grpc.unary_unary_rpc_method_handler(slow)})
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((handler,))
    gport = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    port = free_port()
    b = bootstrap([http_listener(port, vhost(route("grpc", timeout="10s",
                                                   maxStreamDuration={"grpcTimeoutHeaderMax": "0.2s"})))],
                  [cluster("grpc", gport, http2ProtocolOptions={})])
    try:
        async with running_proxy(b) as p:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
                slow_call = ch.unary_unary(f"/{SERVICE}/Slow")
                assert await slow_call(b"0.05", timeout=5) == b"done"
                loop = asyncio.get_running_loop()
                t0 = loop.time()
                with __import__("pytest").raises(grpc.aio.AioRpcError):
                    # grpc-timeout (~2 s) capped at 0.2 s replaces the route's 10 s: the proxy answers
                    await slow_call(b"3", timeout=2)
                assert loop.time() - t0 < 1.5
            assert p.state.snapshot.clusters["grpc"].stats.upstream_rq_timeout.value == 1
    finally:
        await server.stop(None)
