"""Builders for static Envoy bootstraps and an in-process proxy + aiohttp upstreams for tests."""

from __future__ import annotations

import asyncio
import contextlib
import io
from collections.abc import AsyncIterator

from aiohttp import web

from ketch.proxy.bootstrap import parse_bootstrap
from ketch.proxy.runner import Proxy

HCM = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
TCP = "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy"
ROUTER = {"name": "envoy.filters.http.router",
          "typedConfig": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}
FAULT = {"name": "envoy.filters.http.fault",
         "typedConfig": {"@type": "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault"}}
CORS = {"name": "envoy.filters.http.cors",
        "typedConfig": {"@type": "type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors"}}


def addr(host: str, port: int) -> dict:
    return {"socketAddress": {"address": host, "portValue": port}}


def route(cluster: str | None = None, prefix: str = "/", **action) -> dict:
    r = {"match": {"prefix": prefix}, "route": {**({"cluster": cluster} if cluster else {}), **action}}
    return r


def vhost(*routes, domains=("*",), name="vh", **kw) -> dict:
    return {"name": name, "domains": list(domains), "routes": list(routes), **kw}


def http_listener(port: int, *vhosts, name: str = "l", filters=(), host: str = "127.0.0.1", hcm_extra=None,
                  **kw) -> dict:
    hcm = {"@type": HCM, "statPrefix": name, "routeConfig": {"name": name, "virtualHosts": list(vhosts)},
           "httpFilters": [*filters, ROUTER], **(hcm_extra or {})}
    return {"name": name, "address": addr(host, port),
            "filterChains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager",
                                           "typedConfig": hcm}]}], **kw}


def tcp_listener(port: int, cluster: str | None = None, weighted=None, name: str = "tcp") -> dict:
    cfg = {"@type": TCP, "statPrefix": name}
    if weighted:
        cfg["weightedClusters"] = {"clusters": [{"name": n, "weight": w} for n, w in weighted]}
    else:
        cfg["cluster"] = cluster
    return {"name": name, "address": addr("127.0.0.1", port),
            "filterChains": [{"filters": [{"name": "envoy.filters.network.tcp_proxy", "typedConfig": cfg}]}]}


def cluster(name: str, *ports: int, host: str = "127.0.0.1", **kw) -> dict:
    return {"name": name, "type": "STATIC", "connectTimeout": "1s",
            "loadAssignment": {"clusterName": name, "endpoints": [
                {"lbEndpoints": [{"endpoint": {"address": addr(host, p)}} for p in ports]}]}, **kw}


def bootstrap(listeners=(), clusters=(), **extra) -> dict:
    return {"node": {"id": "sidecar~127.0.0.1~test.default~default.svc.cluster.local", "cluster": "test.default"},
            "staticResources": {"listeners": list(listeners), "clusters": list(clusters)}, **extra}


@contextlib.asynccontextmanager
async def running_proxy(b: dict, **kw) -> AsyncIterator[Proxy]:
    kw.setdefault("access_log", io.StringIO())
    p = Proxy(parse_bootstrap(b), health_port=0, admin_port=0, **kw)
    await p.start()
    try:
        yield p
    finally:
        await p.stop(0.5)


@contextlib.asynccontextmanager
async def upstream(handler=None, routes=None) -> AsyncIterator[int]:
    """An aiohttp server on an ephemeral port; yields the port."""
    app = web.Application()
    if routes:
        app.add_routes(routes)
    else:
        app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield runner.addresses[0][1]
    finally:
        await runner.cleanup()


async def raw_request(port: int, data: bytes, read_until_close: bool = True, timeout: float = 5.0) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    try:
        if read_until_close:
            return await asyncio.wait_for(reader.read(), timeout)
        return await asyncio.wait_for(reader.read(65536), timeout)
    finally:
        writer.close()
