"""Admin interface (Envoy's, on 15000) and the readiness endpoint (Istio's, on 15021).

Not on the hot path, so plain aiohttp: `/config_dump`, `/clusters` (text or `?format=json`),
`/stats` (`?filter=`), `/stats/prometheus`, `/ready`, `/server_info`, `/listeners`,
`/drain_listeners`, `/quitquitquit`, `/logging`; and `/healthz/ready` (503 until the first
full config is applied) with `/stats/prometheus` beside it for scrapers outside the pod.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

from aiohttp import web


def _clusters_text(state) -> str:
    lines = []
    for name, rt in sorted(state.snapshot.clusters.items()):
        t = rt.breakers.default.thresholds
        lines.append(f"{name}::default_priority::max_connections::{t.max_connections}")
        lines.append(f"{name}::default_priority::max_pending_requests::{t.max_pending_requests}")
        lines.append(f"{name}::default_priority::max_requests::{t.max_requests}")
        lines.append(f"{name}::default_priority::max_retries::{t.max_retries}")
        for addr, h in rt.hosts.items():
            pool = rt.pools.get(addr)
            flags = "healthy" if h.available else "/".join(
                f for f, on in (("/failed_eds_health", not h.healthy), ("/failed_outlier_check", h.ejected)) if on)
            lines.append(f"{name}::{addr}::cx_active::{len(pool.conns) if pool else 0}")
            lines.append(f"{name}::{addr}::rq_active::{h.active_rq}")
            lines.append(f"{name}::{addr}::health_flags::{flags}")
            lines.append(f"{name}::{addr}::weight::{h.weight}")
            if rt.outlier is not None:
                st = rt.outlier.state(h)
                if st:
                    lines.append(f"{name}::{addr}::outlier::ejected::{str(st['ejected']).lower()}")
                    lines.append(f"{name}::{addr}::outlier::ejections::{st['ejections']}")
    return "\n".join(lines) + "\n"


def _clusters_json(state) -> dict:
    out = []
    for name, rt in sorted(state.snapshot.clusters.items()):
        hosts = []
        for addr, h in rt.hosts.items():
            ip, port = h.metadata[0], h.metadata[1]
            hs = {"eds_health_status": "HEALTHY" if h.healthy else "UNHEALTHY"}
            if h.ejected:
                hs["failed_outlier_check"] = True
            entry = {"address": {"socket_address": {"address": ip, "port_value": port}},
                     "health_status": hs, "weight": h.weight, "rq_active": h.active_rq}
            if rt.outlier is not None:
                entry["outlier"] = rt.outlier.state(h)
            hosts.append(entry)
        out.append({"name": name, "type": rt.config.kind, "host_statuses": hosts,
                    "circuit_breakers": repr(rt.breakers.default)})
    return {"cluster_statuses": out}


def make_admin_app(state, config, *, on_quit: Callable[[], None], ads=None) -> web.Application:
    async def config_dump(request: web.Request) -> web.Response:
        return web.json_response(config.config_dump(), dumps=lambda o: json.dumps(o, indent=2))

    async def clusters(request: web.Request) -> web.Response:
        if request.query.get("format") == "json":
            return web.json_response(_clusters_json(state))
        return web.Response(text=_clusters_text(state))

    async def stats(request: web.Request) -> web.Response:
        return web.Response(text=state.store.render_text(request.query.get("filter")))

    async def prometheus(request: web.Request) -> web.Response:
        return web.Response(text=state.store.render_prometheus() + state.istio.render_prometheus(),
                            content_type="text/plain")

    async def ready(request: web.Request) -> web.Response:
        if state.draining:
            return web.Response(status=503, text="DRAINING\n")
        if state.ready:
            return web.Response(text="LIVE\n")
        return web.Response(status=503, text="PRE_INITIALIZING\n")

    async def server_info(request: web.Request) -> web.Response:
        return web.json_response({
            "version": "ketch", "state": "LIVE" if state.ready else "PRE_INITIALIZING",
            "node": {"id": state.node.id, "cluster": state.node.cluster},
            "ads": None if ads is None else {"target": ads.target, "connected": ads.connected,
                                             "acks": ads.acks, "nacks": ads.nacks[-10:], "last_error": ads.last_error},
        })

    async def listeners(request: web.Request) -> web.Response:
        lines = [f"{n}::{lc.host}:{lc.port}" for n, lc in sorted(state.snapshot.listeners.items())]
        return web.Response(text="\n".join(lines) + "\n")

    async def drain_listeners(request: web.Request) -> web.Response:
        state.listener_manager.close()
        return web.Response(text="OK\n")

    async def quit_(request: web.Request) -> web.Response:
        state.loop.call_soon(on_quit)
        return web.Response(text="OK\n")

    async def logging_(request: web.Request) -> web.Response:
        level = request.query.get("level")
        logger = logging.getLogger("ketch")
        if level:
            lv = getattr(logging, level.upper(), None)
            if not isinstance(lv, int):
                return web.Response(status=400, text=f"unknown level {level}\n")
            logger.setLevel(lv)
        return web.Response(text=f"active loggers:\n  ketch: {logging.getLevelName(logger.getEffectiveLevel()).lower()}\n")

    app = web.Application()
    app.router.add_get("/config_dump", config_dump)
    app.router.add_get("/clusters", clusters)
    app.router.add_get("/stats", stats)
    app.router.add_get("/stats/prometheus", prometheus)
    app.router.add_get("/ready", ready)
    app.router.add_get("/server_info", server_info)
    app.router.add_get("/listeners", listeners)
    for path, handler in (("/drain_listeners", drain_listeners), ("/quitquitquit", quit_), ("/logging", logging_)):
        app.router.add_post(path, handler)
    app.router.add_get("/logging", logging_)
    return app


def make_health_app(state) -> web.Application:
    async def healthz(request: web.Request) -> web.Response:
        if state.ready and not state.draining:
            return web.Response(text="OK\n")
        return web.Response(status=503, text="not ready\n")

    async def prometheus(request: web.Request) -> web.Response:
        # The admin port stays on loopback; scrapers from other pods read metrics here
        # (Istio serves them on 15020/15090 of the pod IP).
        return web.Response(text=state.store.render_prometheus() + state.istio.render_prometheus(),
                            content_type="text/plain")

    app = web.Application()
    app.router.add_get("/healthz/ready", healthz)
    app.router.add_get("/stats/prometheus", prometheus)
    return app
