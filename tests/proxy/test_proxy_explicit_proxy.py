"""Process mode (INTERCEPTION_MODE NONE): 15001 as an explicit HTTP proxy (absolute-form, CONNECT)."""

from __future__ import annotations

import asyncio

import httpx
from aiohttp import web

from proxy_harness import TCP, addr, bootstrap, cluster, http_listener, route, running_proxy, upstream, vhost
from conftest import free_port


def explicit_bootstrap(outbound_port: int, http_port: int, tcp_port: int, tcp_backend: int,
                       http_port2: int) -> dict:
    outbound = {"name": "virtualOutbound", "address": addr("127.0.0.1", outbound_port), "useOriginalDst": True,
                "filterChains": [{"filters": [{"name": "envoy.filters.network.tcp_proxy", "typedConfig": {
                    "@type": TCP, "statPrefix": "PassthroughCluster", "cluster": "PassthroughCluster"}}]}]}
    http = http_listener(http_port, vhost(route("web"), domains=["*"]), name=f"0.0.0.0_{http_port}",
                         host="0.0.0.0", bindToPort=False)
    http2 = http_listener(http_port2, vhost(route("web2"), domains=["*"]), name=f"0.0.0.0_{http_port2}",
                          host="0.0.0.0", bindToPort=False)
    tcp = {"name": f"127.0.0.1_{tcp_port}", "address": addr("127.0.0.1", tcp_port), "bindToPort": False,
           "filterChains": [{"filters": [{"name": "envoy.filters.network.tcp_proxy", "typedConfig": {
               "@type": TCP, "statPrefix": "tcp", "cluster": "tcp-backend"}}]}]}
    b = bootstrap([outbound, http, http2, tcp], [
        cluster("web", http_port), cluster("web2", http_port2), cluster("tcp-backend", tcp_backend),
        {"name": "PassthroughCluster", "type": "ORIGINAL_DST", "lbPolicy": "CLUSTER_PROVIDED", "connectTimeout": "1s"}])
    b["node"]["metadata"] = {"INTERCEPTION_MODE": "NONE"}
    return b


async def test_absolute_form_and_connect_are_handed_to_port_listeners():
    async def who(req: web.Request) -> web.Response:
        return web.Response(text=f"web {req.path} host={req.host}")

    async def echo(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        w.write(b"tcp:" + await r.read(100))
        await w.drain()
        w.close()

    tcp_server = await asyncio.start_server(echo, "127.0.0.1", 0)
    tcp_backend = tcp_server.sockets[0].getsockname()[1]
    async def who2(req: web.Request) -> web.Response:
        return web.Response(text="web2")

    async with upstream(who) as web_port, upstream(who2) as web2_port:
        outbound, tcp_port = free_port(), free_port()
        async with running_proxy(explicit_bootstrap(outbound, web_port, tcp_port, tcp_backend, web2_port)) as p:
            async with httpx.AsyncClient(proxy=f"http://127.0.0.1:{outbound}") as c:
                r = await c.get(f"http://127.0.0.1:{web_port}/via-proxy")
                assert r.status_code == 200 and r.text == f"web /via-proxy host=127.0.0.1:{web_port}"
                # the client reuses its proxy connection for another port: that port's listener routes
                assert (await c.get(f"http://127.0.0.1:{web2_port}/")).text == "web2"
                assert (await c.get(f"http://127.0.0.1:{web_port}/again")).text.startswith("web /again")
            stats = p.state.store.render_text()
            assert "cluster.web.upstream_rq_total: 2" in stats  # went through the HTTP listener's route
            assert "cluster.web2.upstream_rq_total: 1" in stats
            reader, writer = await asyncio.open_connection("127.0.0.1", outbound)
            writer.write(f"CONNECT 127.0.0.1:{tcp_port} HTTP/1.1\r\nHost: 127.0.0.1:{tcp_port}\r\n\r\n".encode())
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            assert head.startswith(b"HTTP/1.1 200")
            writer.write(b"ping")
            assert await asyncio.wait_for(reader.read(100), 5) == b"tcp:ping"
            writer.close()
            # no listener for the echo server's own port: 15001's chain, PassthroughCluster (ORIGINAL_DST)
            reader, writer = await asyncio.open_connection("127.0.0.1", outbound)
            writer.write(f"CONNECT 127.0.0.1:{tcp_backend} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            assert (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)).startswith(b"HTTP/1.1 200")
            writer.write(b"direct")
            assert await asyncio.wait_for(reader.read(100), 5) == b"tcp:direct"
            writer.close()
            assert p.state.snapshot.clusters["PassthroughCluster"].stats.upstream_cx_total.value == 1
    tcp_server.close()
