"""Admin interface (Envoy's, on 15000) and the readiness endpoint (Istio's, on 15021).

Not on the hot path; served by a few lines over the proxy's own HTTP/1.1 codec (aiohttp
would add ~25 MB to every sidecar's resident memory): `/config_dump`, `/clusters` (text or
`?format=json`), `/stats` (`?filter=`), `/stats/prometheus`, `/ready`, `/server_info`, `/listeners`,
`/drain_listeners`, `/quitquitquit`, `/logging`; and `/healthz/ready` (503 until the first
full config is applied) with `/stats/prometheus` beside it for scrapers outside the pod.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from urllib.parse import parse_qsl

from ketch.proxy.http1 import ProtocolError, RequestDecoder, encode_response_head

log = logging.getLogger("ketch.proxy.admin")


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


Reply = tuple[int, str, str]  # status, content type, body
Handler = Callable[[dict[str, str]], Reply]
TEXT, JSON = "text/plain; charset=utf-8", "application/json"


class AdminProtocol(asyncio.Protocol):
    """One admin connection: parse a request, run its handler, answer, close."""

    def __init__(self, routes: dict[tuple[str, str], Handler]) -> None:
        self.routes = routes
        self.transport = None
        self.decoder = RequestDecoder(self)
        self.head = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        try:
            self.decoder.feed(data)
        except ProtocolError as exc:
            self._reply((exc.status, TEXT, exc.reason + "\n"))

    def on_head(self, head) -> None:
        self.head = head

    def on_body(self, data: bytes) -> None:
        pass

    def on_upgrade(self, rest: bytes) -> None:
        self._reply((400, TEXT, "no upgrades here\n"))

    def on_end(self) -> None:
        head = self.head
        path, _, query = head.target.partition("?")
        handler = self.routes.get((head.method, path))
        if handler is None:
            known = any(p == path for _, p in self.routes)
            self._reply((405 if known else 404, TEXT, "method not allowed\n" if known else "not found\n"))
            return
        try:
            reply = handler(dict(parse_qsl(query)))
        except Exception as exc:  # noqa: BLE001 - an admin bug answers 500, the proxy goes on
            log.exception("admin %s failed", path)
            reply = (500, TEXT, f"{type(exc).__name__}: {exc}\n")
        self._reply(reply, head.method == "HEAD")

    def _reply(self, reply: Reply, head_only: bool = False) -> None:
        status, ctype, text = reply
        body = text.encode()
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(encode_response_head(status, [
                ("content-type", ctype), ("content-length", str(len(body))), ("connection", "close")])
                + (b"" if head_only else body))
            self.transport.close()


async def serve_admin(routes: dict[tuple[str, str], Handler], host: str, port: int) -> asyncio.base_events.Server:
    loop = asyncio.get_running_loop()
    return await loop.create_server(lambda: AdminProtocol(routes), host, port, reuse_address=True)


def admin_routes(state, config, *, on_quit: Callable[[], None], ads=None) -> dict[tuple[str, str], Handler]:
    def config_dump(q: dict) -> Reply:
        return 200, JSON, json.dumps(config.config_dump(), indent=2)

    def clusters(q: dict) -> Reply:
        state.flush_stats()  # per-request stats are deferred (server.ProxyState.observe)
        if q.get("format") == "json":
            return 200, JSON, json.dumps(_clusters_json(state))
        return 200, TEXT, _clusters_text(state)

    def stats(q: dict) -> Reply:
        state.flush_stats()  # the Store's read hook would too; explicit for readers of this file
        return 200, TEXT, state.store.render_text(q.get("filter"))

    def ready(q: dict) -> Reply:
        if state.draining:
            return 503, TEXT, "DRAINING\n"
        return (200, TEXT, "LIVE\n") if state.ready else (503, TEXT, "PRE_INITIALIZING\n")

    def server_info(q: dict) -> Reply:
        return 200, JSON, json.dumps({
            "version": "ketch", "state": "LIVE" if state.ready else "PRE_INITIALIZING",
            "node": {"id": state.node.id, "cluster": state.node.cluster},
            "ads": None if ads is None else {"target": ads.target, "connected": ads.connected,
                                             "acks": ads.acks, "nacks": ads.nacks[-10:], "last_error": ads.last_error},
        })

    def listeners(q: dict) -> Reply:
        return 200, TEXT, "".join(f"{n}::{lc.host}:{lc.port}\n" for n, lc in sorted(state.snapshot.listeners.items()))

    def drain_listeners(q: dict) -> Reply:
        state.listener_manager.close()
        return 200, TEXT, "OK\n"

    def quit_(q: dict) -> Reply:
        state.loop.call_soon(on_quit)
        return 200, TEXT, "OK\n"

    def logging_(q: dict) -> Reply:
        level = q.get("level")
        logger = logging.getLogger("ketch")
        if level:
            lv = getattr(logging, level.upper(), None)
            if not isinstance(lv, int):
                return 400, TEXT, f"unknown level {level}\n"
            logger.setLevel(lv)
        return 200, TEXT, f"active loggers:\n  ketch: {logging.getLevelName(logger.getEffectiveLevel()).lower()}\n"

    routes: dict[tuple[str, str], Handler] = {}
    for path, fn in (("/config_dump", config_dump), ("/clusters", clusters), ("/stats", stats),
                     ("/stats/prometheus", lambda q: prometheus(state)), ("/ready", ready),
                     ("/server_info", server_info), ("/listeners", listeners), ("/logging", logging_)):
        routes[("GET", path)] = fn
    for path, fn in (("/drain_listeners", drain_listeners), ("/quitquitquit", quit_), ("/logging", logging_)):
        routes[("POST", path)] = fn
    return routes


def prometheus(state) -> Reply:
    state.flush_stats()  # per-request stats are deferred (server.ProxyState.observe)
    return 200, "text/plain; version=0.0.4", state.store.render_prometheus() + state.istio.render_prometheus()


def health_routes(state) -> dict[tuple[str, str], Handler]:
    def healthz(q: dict) -> Reply:
        if state.ready and not state.draining:
            return 200, TEXT, "OK\n"
        return 503, TEXT, "not ready\n"

    # The admin port stays on loopback; scrapers from other pods read metrics here
    # (Istio serves them on 15020/15090 of the pod IP).
    return {("GET", "/healthz/ready"): healthz, ("GET", "/stats/prometheus"): lambda q: prometheus(state)}
