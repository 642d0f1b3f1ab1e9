"""The proxy's live state: the current config snapshot, its atomic swaps, and observation.

`ProxyState` holds one immutable `Snapshot` (listeners, route tables, cluster runtimes).
Every xDS update builds a whole new snapshot and swaps the reference in one assignment; a
stream keeps the snapshot it started with, so in-flight requests finish on their config.
Cluster runtimes whose config did not change are carried over (pools, outlier state);
replaced ones drain.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import random
import sys
import time
from dataclasses import dataclass, field, replace
from itertools import repeat
from operator import mul

from ketch.proxy.config import ClusterConfig, EndpointConfig, ListenerConfig
from ketch.proxy.heap import HeapTrimmer
from ketch.proxy.listeners import ListenerManager
from ketch.proxy.routing import RouteTable
from ketch.proxy.stats import (ClusterStats, HttpStats, IstioMetrics, Store, bucket_indices, group_indices, istio_labels,
                               merge_indices, take)
from ketch.proxy.upstream import ClusterRuntime

log = logging.getLogger("ketch.proxy")

_monotonic = time.monotonic  # a global, not an attribute lookup, on the request path
# A completed request as observe() records it (aggregated later by flush_stats()): (HCM stat
# prefix, cluster name or None, authority, status, flags, elapsed seconds, req bytes, resp bytes)
_Record = tuple[str, str | None, str, int, str, float, int, int]


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
        self.heap = HeapTrimmer()  # returns what closed connections freed (see heap.py)
        # Per-request stats are deferred: observe() appends one record, flush_stats()
        # aggregates them in bulk before any read, at this bound, and once a sweep period.
        self._records: list[_Record] = []
        self._cluster_stats: dict[str, ClusterStats] = {}
        self.stats_flush_bound = 4096
        self._log_second = -1
        self._log_stamp = ""
        self.store.add_read_hook(self.flush_stats)
        self.istio.add_read_hook(self.flush_stats)

    def start_sweeps(self, period: float = 1.0) -> None:
        """Idle and stream timeouts are checked once a period for all connections, so the
        request path pays a timestamp, not a timer."""
        self._sweeper = self.loop.call_later(period, self._sweep, period)

    def _sweep(self, period: float) -> None:
        self._flush_guarded()  # a `.value` read directly (not through the Store) is at most a period stale
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
        self.heap.sweep(sum([s.downstream_cx_total.value for s in self._http_stats.values()]), now)
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
        """A request completed: append one record for flush_stats() to aggregate.

        The record holds only strings and numbers (stat prefix, cluster name, authority,
        status, flags, elapsed seconds, bytes): the GC untracks such a tuple at its first
        collection, so records waiting for a flush are never promoted and never make full
        collections more frequent (references to the HttpStats/ClusterRuntime would: that cost
        more than the aggregation saved). Names are enough: every stat lives in the Store
        under its name, so a cluster replaced or removed before the flush still gets its
        counts."""
        flags = stream.flags
        cluster = stream.cluster
        rec = (stream.conn.stats.prefix, cluster.name if cluster is not None else None, stream.authority,
               stream.status, ",".join(flags) if flags else "-", _monotonic() - stream.t0,
               stream.req_bytes, stream.resp_bytes)
        records = self._records
        records.append(rec)
        if stream.hcm.access_log and self.access_log is not None:
            self._log_access(stream, rec)
        if len(records) >= self.stats_flush_bound:
            self._flush_guarded()  # keeps memory bounded between sweeps

    def _flush_guarded(self) -> None:
        """A stats bug must not fail the request that hit the bound nor stop the sweeps."""
        try:
            self.flush_stats()
        except Exception:  # noqa: BLE001
            log.exception("aggregating per-request stats failed")

    def flush_stats(self) -> None:
        """Aggregate the recorded requests into the Store and Istio metrics, exactly as
        counting them one by one would (same counters, buckets, and float sums folded in
        arrival order), but column-wise with C-speed tools (zip/map/Counter/itemgetter).
        Called by every Store/IstioMetrics read, at the bound, and by the 1 s sweep."""
        records = self._records
        if not records:
            return
        self._records = []  # first: re-entrant reads during the flush see nothing pending
        # The flush makes thousands of short-lived key tuples and no cycles: without this,
        # each 700 of them would run a young-generation collection (~20% of the flush).
        gc_was_enabled = gc.isenabled()
        gc.disable()
        try:
            self._aggregate(records)
        finally:
            if gc_was_enabled:
                gc.enable()

    def _aggregate(self, records: list[_Record]) -> None:
        n = len(records)
        prefixes, cnames, authorities, statuses, flags, elapsed, req_bytes, resp_bytes = zip(*records)
        durations = list(map(mul, elapsed, repeat(1000.0)))  # == (now - t0) * 1000.0, as before
        slots: dict[tuple[float, ...], list[int]] = {}

        def buckets(bounds: tuple[float, ...]) -> list[int]:  # each bisect once per flush
            b = slots.get(bounds)
            if b is None:
                b = slots[bounds] = bucket_indices(bounds, durations)
            return b

        # HCM: downstream_rq_completed, downstream_rq_time
        for prefix, pos in group_indices(prefixes):
            hs = self.http_stats(prefix)
            h = hs.downstream_rq_time
            values = take(durations, pos)
            hs.downstream_rq_completed.value += len(values)
            h.record_many(values, take(buckets(h.bounds), pos))
        # One grouping pass over what distinguishes both a cluster's stats and an Istio series;
        # groups that land on the same histogram/series are merged back in arrival order.
        times: dict = {}
        series: dict = {}
        for (cname, authority, status, fl), pos in group_indices(list(zip(cnames, authorities, statuses, flags))):
            if status and cname is not None:  # upstream_rq_<code>, _<N>xx, _completed, _time
                cs = self._cluster_stats_for(cname)
                cs.response(status, n if pos is None else len(pos))
                times[cname] = merge_indices(times[cname], pos) if cname in times else pos
            key = (self._labels_for(cname if cname is not None else "-", authority), status, "-", fl)
            series[key] = merge_indices(series[key], pos) if key in series else pos
        for cname, pos in times.items():
            h = self._cluster_stats_for(cname).upstream_rq_time
            pos = None if pos is not None and len(pos) == n else pos  # all of them: no copy
            h.record_many(take(durations, pos), take(buckets(h.bounds), pos))
        istio = self.istio
        for (labels, status, grpc, fl), pos in series.items():
            istio.record_requests(labels, status, grpc, fl, take(durations, pos), take(req_bytes, pos),
                                  take(resp_bytes, pos), take(buckets(istio.bounds), pos))

    def _cluster_stats_for(self, name: str) -> ClusterStats:
        """The cluster's stats scope by name: the live runtime's, or (cluster removed or
        replaced since the request) one over the same named stats in the Store."""
        cs = self._cluster_stats.get(name)
        if cs is None:
            rt = self.snapshot.clusters.get(name)
            cs = rt.stats if rt is not None else ClusterStats(self.store, name)
            if len(self._cluster_stats) < 10000:
                self._cluster_stats[name] = cs
        return cs

    def _labels_for(self, cname: str, authority: str) -> tuple:
        inbound = cname.startswith("inbound|")
        key = (cname, authority) if inbound else cname
        labels = self._labels.get(key)
        if labels is None:
            labels = self._istio_labels(cname, authority, inbound)
            if len(self._labels) < 10000:
                self._labels[key] = labels
        return labels

    def _log_access(self, stream, rec: _Record) -> None:
        """Envoy's default access log format, written now (not deferred)."""
        conn = stream.conn
        head = stream.head
        status, flags = rec[3], rec[4]
        duration_ms = rec[5] * 1000.0
        cname = stream.cluster.name if stream.cluster is not None else "-"
        host = stream.upstream_host.address if stream.upstream_host is not None else "-"
        now = time.time()
        second = int(now)
        if second != self._log_second:  # strftime once a second, not per request
            self._log_second = second
            self._log_stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        ts = self._log_stamp
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
        self.flush_stats()
