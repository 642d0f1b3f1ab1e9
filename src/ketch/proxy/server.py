"""The proxy's live state: the current config snapshot, its atomic swaps, and observation.

`ProxyState` holds one immutable `Snapshot` (listeners, route tables, cluster runtimes).
Every xDS update builds a whole new snapshot and swaps the reference in one assignment; a
stream keeps the snapshot it started with, so in-flight requests finish on their config.
Cluster runtimes whose config did not change are carried over (pools, outlier state);
replaced ones drain.
"""

from __future__ import annotations

import asyncio
import logging
import random
import sys
import time
from dataclasses import dataclass, field, replace

from ketch.proxy.config import ClusterConfig, EndpointConfig, ListenerConfig
from ketch.proxy.listeners import ListenerManager
from ketch.proxy.routing import RouteTable
from ketch.proxy.stats import HttpStats, IstioMetrics, Store, istio_labels
from ketch.proxy.upstream import ClusterRuntime

log = logging.getLogger("ketch.proxy")


@dataclass(frozen=True)
class Snapshot:
    listeners: dict[str, ListenerConfig] = field(default_factory=dict)
    routes: dict[str, RouteTable] = field(default_factory=dict)
    clusters: dict[str, ClusterRuntime] = field(default_factory=dict)
    by_addr: dict[tuple[str, int], ListenerConfig] = field(default_factory=dict)


@dataclass(frozen=True)
class NodeInfo:
    id: str = "ketch~127.0.0.1~proxy.default~default.svc.cluster.local"
    cluster: str = "proxy.default"
    workload: str = "unknown"
    namespace: str = "default"
    kind: str = "sidecar"
    metadata: dict = field(default_factory=dict)


def _service_of(cluster: str) -> str:
    parts = cluster.split("|")
    return parts[3] if len(parts) == 4 and parts[3] else cluster


class ProxyState:
    def __init__(self, loop: asyncio.AbstractEventLoop, node: NodeInfo = NodeInfo(), *,
                 rng: random.Random | None = None, explicit_proxy: bool = False, reuse_port: bool = False,
                 access_log=None) -> None:
        self.loop = loop
        self.node = node
        self.rng = rng or random.Random()
        self.explicit_proxy = explicit_proxy
        self.reuse_port = reuse_port
        self.store = Store()
        self.istio = IstioMetrics()
        self.snapshot = Snapshot()
        self.connections: set = set()
        self.draining = False
        self.listener_manager = ListenerManager(self)
        self.endpoints: dict[str, tuple[EndpointConfig, ...]] = {}
        self.versions: dict[str, str] = {}
        self.last_updated: dict[str, float] = {}
        self.ready = False
        self.started = time.time()
        self.access_log = access_log if access_log is not None else sys.stdout
        self._http_stats: dict[str, HttpStats] = {}
        self._labels: dict = {}
        self._lock = asyncio.Lock()
        self._sweeper: asyncio.TimerHandle | None = None

    def start_sweeps(self, period: float = 1.0) -> None:
        """Idle and stream timeouts are checked once a period for all connections, so the
        request path pays a timestamp, not a timer."""
        self._sweeper = self.loop.call_later(period, self._sweep, period)

    def _sweep(self, period: float) -> None:
        now = time.monotonic()
        for c in list(self.connections):
            hcm = getattr(c, "hcm", None)
            streams = getattr(c, "streams", None)
            if hcm is None or streams is None:
                continue
            if not streams:
                if hcm.idle_timeout and now - getattr(c, "last_active", now) > hcm.idle_timeout and c.transport:
                    c.transport.close()
                continue
            for st in list(streams):
                if st.done or not st.started:
                    continue
                if hcm.request_timeout and not st.request_complete and now - st.t0 > hcm.request_timeout:
                    st.timed_out("request")
                elif hcm.stream_idle_timeout and now - st.last_active > hcm.stream_idle_timeout:
                    st.timed_out("stream")
        self._sweeper = self.loop.call_later(period, self._sweep, period)

    def http_stats(self, prefix: str) -> HttpStats:
        s = self._http_stats.get(prefix)
        if s is None:
            s = self._http_stats[prefix] = HttpStats(self.store, prefix)
        return s

    # -- updates (each builds a new snapshot and swaps it in one assignment)
    def set_clusters(self, configs: dict[str, ClusterConfig]) -> list[str]:
        """Replace the cluster set; returns the EDS service names now wanted."""
        old = self.snapshot.clusters
        fresh: dict[str, ClusterRuntime] = {}
        for name, cfg in configs.items():
            prev = old.get(name)
            if prev is not None and prev.config.proto == cfg.proto and prev.config.endpoints == cfg.endpoints:
                fresh[name] = prev
                continue
            rt = ClusterRuntime(cfg, self.store, self.loop, self.rng)
            if cfg.kind == "EDS" and cfg.eds_service_name in self.endpoints:
                rt.set_endpoints(self.endpoints[cfg.eds_service_name])
            fresh[name] = rt
        for name, rt in old.items():
            if fresh.get(name) is not rt:
                rt.drain()
        self.snapshot = replace(self.snapshot, clusters=fresh)
        return sorted({c.eds_service_name for c in configs.values() if c.kind == "EDS"})

    def set_endpoints(self, assignments: dict[str, tuple[EndpointConfig, ...]], full: bool = True) -> None:
        """`full`: these are all the assignments (others empty their clusters); otherwise
        only the clusters of the given service names change (xDS EDS is per resource)."""
        if full:
            self.endpoints = dict(assignments)
        else:
            self.endpoints.update(assignments)
        for rt in self.snapshot.clusters.values():
            if rt.config.kind == "EDS":
                name = rt.config.eds_service_name
                if full:
                    rt.set_endpoints(self.endpoints.get(name) or ())
                elif name in assignments:
                    rt.set_endpoints(assignments[name])

    def keep_endpoints(self, names: set[str]) -> None:
        """Forget the load assignments of EDS service names no cluster wants any more."""
        if not set(self.endpoints) <= names:
            self.endpoints = {n: eps for n, eps in self.endpoints.items() if n in names}

    def set_routes(self, tables: dict[str, RouteTable], full: bool = True) -> None:
        routes = dict(tables) if full else {**self.snapshot.routes, **tables}
        self.snapshot = replace(self.snapshot, routes=routes)

    async def set_listeners(self, listeners: dict[str, ListenerConfig]) -> list[str]:
        """Bind/rebind/close listeners, swap; returns the RDS names now wanted."""
        async with self._lock:
            by_addr = {(lc.host, lc.port): lc for lc in listeners.values()}
            removed = set(self.snapshot.listeners) - set(listeners)
            await self.listener_manager.apply(listeners)  # raises OSError with nothing changed
            self.snapshot = replace(self.snapshot, listeners=dict(listeners), by_addr=by_addr)
            if removed:
                self._drain_connections(removed)
        names: set[str] = set()
        for lc in listeners.values():
            names |= lc.rds_names
        return sorted(names)

    def _drain_connections(self, listeners: set[str]) -> None:
        """Connections of removed listeners: idle HTTP ones close now, busy ones after their
        response (`connection: close`); TCP connections run until they end, as in Envoy."""
        for c in list(self.connections):
            if getattr(c, "listener_name", None) not in listeners or not hasattr(c, "drain_after"):
                continue
            c.drain_after = True
            if not c.streams and c.transport is not None:
                c.transport.close()

    # -- observation
    def observe(self, stream) -> None:
        status = stream.status
        flags = ",".join(stream.flags) if stream.flags else "-"
        duration_ms = (time.monotonic() - stream.t0) * 1000.0
        conn = stream.conn
        conn.stats.downstream_rq_completed.value += 1
        conn.stats.downstream_rq_time.record(duration_ms)
        cluster = stream.cluster
        cname = cluster.name if cluster is not None else "-"
        if cluster is not None and status:
            cluster.stats.response(status)
            cluster.stats.upstream_rq_time.record(duration_ms)
        inbound = cname.startswith("inbound|")
        key = (cname, stream.authority) if inbound else cname
        labels = self._labels.get(key)
        if labels is None:
            labels = self._istio_labels(cname, stream.authority, inbound)
            if len(self._labels) < 10000:
                self._labels[key] = labels
        self.istio.record_request(labels, status, "-", flags, duration_ms, stream.req_bytes, stream.resp_bytes)
        if stream.hcm.access_log and self.access_log is not None:
            head = stream.head
            host = stream.upstream_host.address if stream.upstream_host is not None else "-"
            ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
            attempt = stream.attempt
            upstream_ms = "-"
            if attempt is not None:
                upstream_ms = str(int((time.monotonic() - attempt.sent_at) * 1000))
            line = (f'[{ts}Z] "{head.method} {stream.upstream_target} HTTP/{head.version}" {status} {flags} '
                    f'{stream.req_bytes} {stream.resp_bytes} {int(duration_ms)} {upstream_ms} '
                    f'"{stream.hdrs.get("x-forwarded-for", "-")}" '
                    f'"{head.get("user-agent") or "-"}" "{stream.request_id or "-"}" "{stream.authority}" '
                    f'"{host}" {cname} {conn.local[0]}:{conn.local[1]} {conn.peer[0]}:{conn.peer[1]}\n')
            try:
                self.access_log.write(line)
            except (OSError, ValueError):
                pass

    def _istio_labels(self, cname: str, authority: str, inbound: bool) -> tuple:
        """Istio's standard labels as far as this proxy knows them (no metadata exchange yet:
        the peer's workload is "unknown"). Inbound names the service from the Host header."""
        md = self.node.metadata
        node_labels = md.get("LABELS") or {}
        me = {"workload": self.node.workload, "workload_namespace": self.node.namespace,
              "app": node_labels.get("app", "unknown"), "version": node_labels.get("version", "unknown"),
              "canonical_service": node_labels.get("service.istio.io/canonical-name", node_labels.get("app", "unknown")),
              "canonical_revision": node_labels.get("service.istio.io/canonical-revision",
                                                    node_labels.get("version", "latest"))}
        if inbound:
            host = authority.rsplit(":", 1)[0] if authority and not authority.startswith("[") else authority
            service = host or "unknown"
            if host and not host[0].isdigit() and host.count(".") < 2:  # a short Kubernetes name
                service = f"{host}.{self.node.namespace}.svc.cluster.local" if "." not in host else \
                    f"{host}.svc.cluster.local"
        else:
            service = _service_of(cname) if cname != "-" else "unknown"
        parts = service.split(".")
        side = "destination" if inbound else "source"
        return istio_labels(
            reporter=side,
            **{f"{side}_{k}": v for k, v in me.items()},
            destination_service=service, destination_service_name=parts[0],
            destination_service_namespace=parts[1] if len(parts) > 2 else (self.node.namespace if inbound else "unknown"),
            request_protocol="http", connection_security_policy="none" if inbound else "unknown")

    def observe_tcp(self, down) -> None:
        cname = down.cluster.name if down.cluster is not None else "-"
        labels = istio_labels(reporter="source", destination_service=_service_of(cname), request_protocol="tcp")
        self.istio.record_tcp_open(labels)
        self.istio.record_tcp_close(labels, down.flags or "-", down.sent, down.received)

    # -- drain
    async def drain(self, timeout: float) -> None:
        """SIGTERM: stop accepting, let in-flight requests finish (up to timeout), then close."""
        self.draining = True
        if self._sweeper is not None:
            self._sweeper.cancel()
        self.listener_manager.close()
        deadline = self.loop.time() + timeout
        for c in list(self.connections):
            if not getattr(c, "streams", True) and getattr(c, "transport", None) is not None:
                c.transport.close()
        while self.loop.time() < deadline and any(getattr(c, "streams", None) for c in self.connections):
            await asyncio.sleep(0.05)
        for c in list(self.connections):
            t = getattr(c, "transport", None)
            if t is not None:
                t.close()
        for rt in self.snapshot.clusters.values():
            rt.drain()
