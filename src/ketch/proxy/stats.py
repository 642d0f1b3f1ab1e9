"""The proxy's statistics: Envoy-named counters, gauges and histograms, and Istio's metrics.

API
---
- `Store()`: `counter(name, prom=None, tags=())`, `gauge(...)`, `histogram(..., bounds=
  DEFAULT_BUCKETS)` get-or-create a stat by its Envoy name (``cluster.X.upstream_rq_total``).
  ``prom``/``tags`` give the Prometheus base name and labels Envoy's tag extractors would
  produce; scopes below fill them in, so no regex runs at render time (cluster names contain
  dots, which defeat Envoy's default regexes anyway).
- Hot path: keep the returned object and call ``c.inc()``/``g.inc()``/``g.dec()``/
  ``h.record(v)`` (attribute update, no lookup). ``c.value`` reads it.
- Scopes with the common stats as ``__slots__`` attributes: `ClusterStats(store, name)`
  (``upstream_rq_total``, ``upstream_cx_active``, ``upstream_rq_pending_overflow``, …;
  ``response(status)`` bumps ``upstream_rq_<code>``, ``upstream_rq_<N>xx`` and
  ``upstream_rq_completed``), `ListenerStats(store, address)` and `HttpStats(store,
  prefix)`; `ListenerStats`/`HttpStats` count ``downstream_*``.
- `store.render_text()` is Envoy's ``/stats`` (``name: value`` lines, sorted; histograms as
  ``P0(nan,x) P25(nan,x) …`` estimated from buckets); `store.render_json()` is
  ``/stats?format=json``; `store.render_prometheus()` is
  ``/stats/prometheus`` (``envoy_cluster_upstream_rq_total{envoy_cluster_name="…"} 3``).
- `IstioMetrics()` with `istio_labels(**labels) -> tuple` (the per-route/per-peer part,
  built once and reused) and `record_request(labels, response_code, grpc_status,
  response_flags, duration_ms, request_bytes, response_bytes)`, `record_tcp_open(labels)`,
  `record_tcp_close(labels, flags, sent, received)`; `render_prometheus()` renders
  ``istio_requests_total``, ``istio_request_duration_milliseconds``, ``istio_request_bytes``,
  ``istio_response_bytes``, ``istio_tcp_connections_opened_total``/``closed_total``,
  ``istio_tcp_sent_bytes_total``, ``istio_tcp_received_bytes_total`` with Istio's labels.
- Deferred updates (the proxy's per-request stats, see server.ProxyState.observe):
  ``store.add_read_hook(fn)``/``istio.add_read_hook(fn)`` run ``fn`` before any read
  (``get``, ``value``, iteration, ``render_*``, ``requests_total``); bulk forms
  ``h.record_many(values, buckets=None)``, ``cs.response(status, n)``,
  ``istio.record_requests(labels, code, grpc, flags, durations, req_bytes, resp_bytes)``
  give the same counts, buckets and (left-folded, in order) sums as one-by-one updates;
  helpers ``bucket_indices``, ``group_indices``, ``merge_indices``, ``take``.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections import Counter as _Tally
from collections.abc import Callable, Hashable, Iterable, Sequence
from functools import reduce
from itertools import repeat
from operator import add, itemgetter

__all__ = [
    "DEFAULT_BUCKETS", "Counter", "Gauge", "Histogram", "Store", "ClusterStats",
    "ListenerStats", "HttpStats", "IstioMetrics", "ISTIO_LABELS", "istio_labels",
    "bucket_indices", "group_indices", "take", "merge_indices",
]

# Envoy's default histogram bucket bounds (milliseconds for time histograms).
DEFAULT_BUCKETS: tuple[float, ...] = (
    0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000,
    600000, 1800000, 3600000,
)
_QUANTILES = (0, 25, 50, 75, 90, 95, 99, 99.5, 99.9, 100)
_SANITIZE = re.compile(r"[^a-zA-Z0-9_]")
Tags = tuple[tuple[str, str], ...]


def _prom_name(name: str) -> str:
    return "envoy_" + _SANITIZE.sub("_", name)


class Counter:
    __slots__ = ("name", "prom", "tags", "value")
    kind = "counter"

    def __init__(self, name: str, prom: str, tags: Tags) -> None:
        self.name, self.prom, self.tags, self.value = name, prom, tags, 0

    def inc(self, n: int = 1) -> None:
        self.value += n


class Gauge:
    __slots__ = ("name", "prom", "tags", "value")
    kind = "gauge"

    def __init__(self, name: str, prom: str, tags: Tags) -> None:
        self.name, self.prom, self.tags, self.value = name, prom, tags, 0

    def inc(self, n: int = 1) -> None:
        self.value += n

    def dec(self, n: int = 1) -> None:
        self.value -= n

    def set(self, v: int) -> None:
        self.value = v


class Histogram:
    """Cumulative-at-render bucket counts; ``counts[i]`` holds values <= bounds[i] and
    > bounds[i-1]; the last slot is the overflow (+Inf) bucket."""

    __slots__ = ("name", "prom", "tags", "bounds", "counts", "sum", "count")
    kind = "histogram"

    def __init__(self, name: str, prom: str, tags: Tags,
                 bounds: tuple[float, ...] = DEFAULT_BUCKETS) -> None:
        self.name, self.prom, self.tags, self.bounds = name, prom, tags, bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0
        self.count = 0

    def record(self, v: float) -> None:
        self.counts[bisect_left(self.bounds, v)] += 1
        self.sum += v
        self.count += 1

    def record_many(self, values: Sequence[float], buckets: Iterable[int] | None = None) -> None:
        """``record(v)`` for each value, in bulk. ``buckets`` are the values' bucket indices
        for these bounds when the caller has them already (`bucket_indices`). The sum is a
        left fold in the given order, so it is bit-identical to ``record()`` one by one."""
        if buckets is None:
            buckets = map(bisect_left, repeat(self.bounds), values)
        counts = self.counts
        for i, n in _Tally(buckets).items():
            counts[i] += n
        self.sum = reduce(add, values, self.sum)
        self.count += len(values)

    def quantile(self, q: float) -> float:
        """Estimate from buckets by linear interpolation (what Envoy's summary shows)."""
        if not self.count:
            return float("nan")
        rank = q / 100.0 * self.count
        seen = 0
        lower = 0.0
        for i, n in enumerate(self.counts):
            upper = self.bounds[i] if i < len(self.bounds) else self.bounds[-1]
            if n and seen + n >= rank:
                return lower + (upper - lower) * max(0.0, rank - seen) / n
            seen += n
            lower = upper
        return lower

    def summary(self) -> str:
        return " ".join(f"P{q:g}(nan,{self.quantile(q):.6g})" for q in _QUANTILES)


Stat = Counter | Gauge | Histogram


def _fmt_labels(tags: Iterable[tuple[str, str]]) -> str:
    parts = [f'{k}="{_escape(v)}"' for k, v in tags]
    return "{" + ",".join(parts) + "}" if parts else ""


def _escape(v: str) -> str:
    return v.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class Store:
    """All stats of one proxy process, by Envoy name."""

    def __init__(self) -> None:
        self._stats: dict[str, Stat] = {}
        self._read_hooks: list[Callable[[], None]] = []

    def add_read_hook(self, fn: Callable[[], None]) -> None:
        """Call ``fn`` before any method that reads values (get, value, iteration, render_*):
        the proxy aggregates its deferred per-request records there, so a reader always
        sees every request observed so far."""
        self._read_hooks.append(fn)

    def sync(self) -> None:
        for fn in self._read_hooks:
            fn()

    def _get(self, cls: type, name: str, prom: str | None, tags: Tags, **kw: object) -> Stat:
        stat = self._stats.get(name)
        if stat is None:
            stat = cls(name, prom or _prom_name(name), tags, **kw)
            self._stats[name] = stat
        elif not isinstance(stat, cls):
            raise TypeError(f"stat {name!r} already exists as a {stat.kind}")
        return stat

    def counter(self, name: str, prom: str | None = None, tags: Tags = ()) -> Counter:
        return self._get(Counter, name, prom, tags)  # type: ignore[return-value]

    def gauge(self, name: str, prom: str | None = None, tags: Tags = ()) -> Gauge:
        return self._get(Gauge, name, prom, tags)  # type: ignore[return-value]

    def histogram(self, name: str, prom: str | None = None, tags: Tags = (),
                  bounds: tuple[float, ...] = DEFAULT_BUCKETS) -> Histogram:
        return self._get(Histogram, name, prom, tags, bounds=bounds)  # type: ignore[return-value]

    def get(self, name: str) -> Stat | None:
        self.sync()
        return self._stats.get(name)

    def value(self, name: str) -> int:
        self.sync()
        stat = self._stats.get(name)
        return 0 if stat is None or isinstance(stat, Histogram) else stat.value

    def __iter__(self):
        self.sync()
        return iter(self._stats.values())

    def render_text(self, filter: str | None = None) -> str:
        self.sync()
        pattern = re.compile(filter) if filter else None
        lines = []
        for name in sorted(self._stats):
            if pattern and not pattern.search(name):
                continue
            s = self._stats[name]
            value = s.summary() if isinstance(s, Histogram) else s.value
            lines.append(f"{name}: {value}")
        return "\n".join(lines) + ("\n" if lines else "")

    def render_json(self, filter: str | None = None) -> dict:
        """Envoy's ``/stats?format=json``: ``{"stats": [{"name", "value"}, ...,
        {"histograms": {"supported_quantiles": [...], "computed_quantiles": [...]}}]}``."""
        self.sync()
        pattern = re.compile(filter) if filter else None
        stats: list[dict] = []
        computed = []
        for name in sorted(self._stats):
            if pattern and not pattern.search(name):
                continue
            s = self._stats[name]
            if isinstance(s, Histogram):
                computed.append({"name": name, "values": [
                    {"interval": None, "cumulative": None if s.count == 0 else s.quantile(q)}
                    for q in _QUANTILES]})
            else:
                stats.append({"name": name, "value": s.value})
        if computed:
            stats.append({"histograms": {"supported_quantiles": list(_QUANTILES),
                                         "computed_quantiles": computed}})
        return {"stats": stats}

    def render_prometheus(self) -> str:
        self.sync()
        families: dict[str, list[Stat]] = {}
        for s in self._stats.values():
            families.setdefault(s.prom, []).append(s)
        out: list[str] = []
        for prom in sorted(families):
            group = families[prom]
            out.append(f"# TYPE {prom} {group[0].kind}")
            for s in sorted(group, key=lambda s: s.tags):
                if isinstance(s, Histogram):
                    _render_histogram(out, prom, s.tags, s.bounds, s.counts, s.sum, s.count)
                else:
                    out.append(f"{prom}{_fmt_labels(s.tags)} {s.value}")
        return "\n".join(out) + ("\n" if out else "")


def _render_histogram(out: list[str], prom: str, tags: Tags, bounds: tuple[float, ...],
                      counts: list[int], total: float, count: int) -> None:
    cumulative = 0
    for bound, n in zip(bounds, counts):
        cumulative += n
        out.append(f"{prom}_bucket{_fmt_labels(tags + (('le', f'{bound:g}'),))} {cumulative}")
    out.append(f"{prom}_bucket{_fmt_labels(tags + (('le', '+Inf'),))} {count}")
    out.append(f"{prom}_sum{_fmt_labels(tags)} {total:g}")
    out.append(f"{prom}_count{_fmt_labels(tags)} {count}")


class _Scope:
    """Creates stats named ``<prefix>.<stat>`` tagged with the scope's Envoy tag."""

    __slots__ = ("_store", "_prefix", "_family", "_tags")
    _FAMILY = ""
    _TAG = ""

    def __init__(self, store: Store, prefix: str, key: str) -> None:
        self._store = store
        self._prefix = f"{prefix}.{key}."
        self._family = f"envoy_{prefix}_"
        self._tags: Tags = ((self._TAG, key),)

    def counter(self, stat: str) -> Counter:
        return self._store.counter(self._prefix + stat, self._family + _SANITIZE.sub("_", stat),
                                   self._tags)

    def gauge(self, stat: str) -> Gauge:
        return self._store.gauge(self._prefix + stat, self._family + _SANITIZE.sub("_", stat),
                                 self._tags)

    def histogram(self, stat: str) -> Histogram:
        return self._store.histogram(self._prefix + stat,
                                     self._family + _SANITIZE.sub("_", stat), self._tags)

    def coded(self, stem: str, code: int) -> Counter:
        """``<stem>_<code>`` tagged ``envoy_response_code`` as Envoy's extractor does."""
        return self._store.counter(f"{self._prefix}{stem}_{code}", f"{self._family}{stem}",
                                   self._tags + (("envoy_response_code", str(code)),))

    def coded_class(self, stem: str, cls: int) -> Counter:
        return self._store.counter(f"{self._prefix}{stem}_{cls}xx", f"{self._family}{stem}_xx",
                                   self._tags + (("envoy_response_code_class", str(cls)),))


_CLUSTER_COUNTERS = (
    "upstream_rq_total", "upstream_rq_completed", "upstream_rq_timeout",
    "upstream_rq_per_try_timeout", "upstream_rq_pending_total", "upstream_rq_pending_overflow",
    "upstream_rq_pending_failure_eject", "upstream_rq_retry", "upstream_rq_retry_success",
    "upstream_rq_retry_overflow", "upstream_rq_retry_limit_exceeded",
    "upstream_rq_rx_reset", "upstream_rq_tx_reset", "upstream_rq_maintenance_mode",
    "upstream_rq_max_duration_reached", "upstream_cx_total", "upstream_cx_http1_total",
    "upstream_cx_http2_total", "upstream_cx_connect_fail", "upstream_cx_connect_timeout",
    "upstream_cx_overflow", "upstream_cx_destroy", "upstream_cx_destroy_local",
    "upstream_cx_destroy_remote", "upstream_cx_max_requests", "upstream_cx_idle_timeout",
    "upstream_cx_none_healthy", "upstream_cx_protocol_error", "upstream_cx_rx_bytes_total",
    "upstream_cx_tx_bytes_total", "upstream_rq_cancelled", "upstream_rq_retry_backoff_exponential",
)
_CLUSTER_GAUGES = (
    "upstream_cx_active", "upstream_rq_active", "upstream_rq_pending_active",
    "membership_total", "membership_healthy", "membership_degraded",
)


class ClusterStats(_Scope):
    """``cluster.<name>.*`` stats; tag ``envoy_cluster_name``."""

    __slots__ = _CLUSTER_COUNTERS + _CLUSTER_GAUGES + (
        "upstream_rq_time", "upstream_cx_length_ms", "upstream_cx_connect_ms",
        "_codes", "_classes")
    _TAG = "envoy_cluster_name"

    def __init__(self, store: Store, name: str) -> None:
        super().__init__(store, "cluster", name)
        for stat in _CLUSTER_COUNTERS:
            setattr(self, stat, self.counter(stat))
        for stat in _CLUSTER_GAUGES:
            setattr(self, stat, self.gauge(stat))
        self.upstream_rq_time = self.histogram("upstream_rq_time")
        self.upstream_cx_length_ms = self.histogram("upstream_cx_length_ms")
        self.upstream_cx_connect_ms = self.histogram("upstream_cx_connect_ms")
        self._codes: dict[int, Counter] = {}
        self._classes: dict[int, Counter] = {}

    def response(self, status: int, n: int = 1) -> None:
        """Count ``n`` completed upstream responses with this status: ``upstream_rq_<code>``,
        ``_<N>xx`` and ``upstream_rq_completed``."""
        c = self._codes.get(status)
        if c is None:
            c = self._codes[status] = self.coded("upstream_rq", status)
        c.value += n
        k = self._classes.get(status // 100)
        if k is None:
            k = self._classes[status // 100] = self.coded_class("upstream_rq", status // 100)
        k.value += n
        self.upstream_rq_completed.value += n


class ListenerStats(_Scope):
    """``listener.<address>.*`` (address like ``0.0.0.0_15001``); tag
    ``envoy_listener_address``."""

    __slots__ = ("downstream_cx_total", "downstream_cx_active", "downstream_cx_destroy",
                 "downstream_cx_overflow", "no_filter_chain_match", "downstream_cx_length_ms")
    _TAG = "envoy_listener_address"

    def __init__(self, store: Store, address: str) -> None:
        super().__init__(store, "listener", address)
        self.downstream_cx_total = self.counter("downstream_cx_total")
        self.downstream_cx_active = self.gauge("downstream_cx_active")
        self.downstream_cx_destroy = self.counter("downstream_cx_destroy")
        self.downstream_cx_overflow = self.counter("downstream_cx_overflow")
        self.no_filter_chain_match = self.counter("no_filter_chain_match")
        self.downstream_cx_length_ms = self.histogram("downstream_cx_length_ms")


class HttpStats(_Scope):
    """``http.<stat_prefix>.*`` of one HTTP connection manager; tag
    ``envoy_http_conn_manager_prefix``."""

    __slots__ = ("downstream_rq_total", "downstream_rq_active", "downstream_rq_http1_total",
                 "downstream_rq_http2_total", "downstream_cx_total", "downstream_cx_active",
                 "downstream_rq_completed", "downstream_rq_timeout", "downstream_rq_rx_reset",
                 "downstream_rq_tx_reset", "downstream_cx_protocol_error", "no_route",
                 "downstream_rq_time", "prefix", "_classes")
    _TAG = "envoy_http_conn_manager_prefix"

    def __init__(self, store: Store, prefix: str) -> None:
        super().__init__(store, "http", prefix)
        self.prefix = prefix  # the HCM's stat_prefix (what the proxy's deferred records carry)
        for stat in self.__slots__[:-3]:
            setattr(self, stat, self.gauge(stat) if stat.endswith("_active")
                    else self.counter(stat))
        self.downstream_rq_time = self.histogram("downstream_rq_time")
        self._classes: dict[int, Counter] = {}

    def response(self, status: int) -> None:
        k = self._classes.get(status // 100)
        if k is None:
            k = self._classes[status // 100] = self.coded_class("downstream_rq", status // 100)
        k.value += 1
        self.downstream_rq_completed.value += 1


# Istio's standard metric labels, in the order Istio's stats plugin emits them.
ISTIO_LABELS: tuple[str, ...] = (
    "reporter", "source_workload", "source_canonical_service", "source_canonical_revision",
    "source_workload_namespace", "source_principal", "source_app", "source_version",
    "source_cluster", "destination_workload", "destination_workload_namespace",
    "destination_principal", "destination_app", "destination_version", "destination_service",
    "destination_canonical_service", "destination_canonical_revision",
    "destination_service_name", "destination_service_namespace", "destination_cluster",
    "request_protocol", "connection_security_policy",
)
_ISTIO_INDEX = {name: i for i, name in enumerate(ISTIO_LABELS)}


def istio_labels(**labels: str) -> tuple[str, ...]:
    """The per-peer part of Istio's labels as a tuple (unset ones are ``unknown``)."""
    values = ["unknown"] * len(ISTIO_LABELS)
    for k, v in labels.items():
        values[_ISTIO_INDEX[k]] = v  # KeyError names an unknown label: a caller bug
    return tuple(values)


class _HttpSeries:
    __slots__ = ("requests", "duration", "req_bytes", "resp_bytes", "d_sum", "q_sum", "r_sum")

    def __init__(self, n: int) -> None:
        self.requests = 0
        self.duration = [0] * n
        self.req_bytes = [0] * n
        self.resp_bytes = [0] * n
        self.d_sum = 0.0
        self.q_sum = 0
        self.r_sum = 0


class _TcpSeries:
    __slots__ = ("opened", "closed", "sent", "received")

    def __init__(self) -> None:
        self.opened = self.closed = self.sent = self.received = 0


class IstioMetrics:
    """Istio's standard metrics, one series per distinct label set."""

    def __init__(self, bounds: tuple[float, ...] = DEFAULT_BUCKETS) -> None:
        self.bounds = bounds
        self._http: dict[tuple, _HttpSeries] = {}
        self._tcp: dict[tuple, _TcpSeries] = {}
        self._read_hooks: list[Callable[[], None]] = []

    def add_read_hook(self, fn: Callable[[], None]) -> None:
        """As `Store.add_read_hook`: run before `requests_total`/`render_prometheus`."""
        self._read_hooks.append(fn)

    def sync(self) -> None:
        for fn in self._read_hooks:
            fn()

    def record_request(self, labels: tuple[str, ...], response_code: int, grpc_status: str,
                       response_flags: str, duration_ms: float, request_bytes: int,
                       response_bytes: int) -> None:
        key = (labels, response_code, grpc_status, response_flags)
        s = self._http.get(key)
        if s is None:
            s = self._http[key] = _HttpSeries(len(self.bounds) + 1)
        bounds = self.bounds
        s.requests += 1
        s.duration[bisect_left(bounds, duration_ms)] += 1
        s.req_bytes[bisect_left(bounds, request_bytes)] += 1
        s.resp_bytes[bisect_left(bounds, response_bytes)] += 1
        s.d_sum += duration_ms
        s.q_sum += request_bytes
        s.r_sum += response_bytes

    def record_requests(self, labels: tuple[str, ...], response_code: int, grpc_status: str,
                        response_flags: str, durations: Sequence[float],
                        request_bytes: Sequence[int], response_bytes: Sequence[int],
                        duration_buckets: Iterable[int] | None = None) -> None:
        """``record_request`` for len(durations) requests of one series, in bulk; the three
        sequences are parallel and in arrival order (the duration sum is a left fold,
        bit-identical to one-by-one; byte counts are ints). ``duration_buckets``: the durations' indices for ``self.bounds`` if the
        caller has them (`bucket_indices`)."""
        key = (labels, response_code, grpc_status, response_flags)
        s = self._http.get(key)
        if s is None:
            s = self._http[key] = _HttpSeries(len(self.bounds) + 1)
        bounds = self.bounds
        s.requests += len(durations)
        if duration_buckets is None:
            duration_buckets = map(bisect_left, repeat(bounds), durations)
        hist = s.duration
        for i, n in _Tally(duration_buckets).items():
            hist[i] += n
        # byte counts repeat a lot (0 for most GETs): bisect once per distinct value
        for hist, values in ((s.req_bytes, request_bytes), (s.resp_bytes, response_bytes)):
            for v, n in _Tally(values).items():
                hist[bisect_left(bounds, v)] += n
        s.d_sum = reduce(add, durations, s.d_sum)
        s.q_sum = sum(request_bytes, s.q_sum)  # ints: exact in any order
        s.r_sum = sum(response_bytes, s.r_sum)

    def _tcp_series(self, labels: tuple[str, ...], flags: str) -> _TcpSeries:
        key = (labels, flags)
        s = self._tcp.get(key)
        if s is None:
            s = self._tcp[key] = _TcpSeries()
        return s

    def record_tcp_open(self, labels: tuple[str, ...]) -> None:
        self._tcp_series(labels, "-").opened += 1

    def record_tcp_close(self, labels: tuple[str, ...], response_flags: str, sent: int,
                         received: int) -> None:
        s = self._tcp_series(labels, response_flags)
        s.closed += 1
        s.sent += sent
        s.received += received

    def requests_total(self, **match: str) -> int:
        """Sum of ``istio_requests_total`` over series whose labels match (for tests/admin)."""
        self.sync()
        total = 0
        for key, s in self._http.items():
            if all(v == _label_value(key, k) for k, v in match.items()):
                total += s.requests
        return total

    def render_prometheus(self) -> str:
        self.sync()
        out: list[str] = []
        http = sorted(self._http.items(), key=lambda kv: kv[0])
        if http:
            out.append("# TYPE istio_requests_total counter")
            for key, s in http:
                out.append(f"istio_requests_total{_fmt_labels(_http_tags(key))} {s.requests}")
            for metric, attr, total in (
                ("istio_request_duration_milliseconds", "duration", "d_sum"),
                ("istio_request_bytes", "req_bytes", "q_sum"),
                ("istio_response_bytes", "resp_bytes", "r_sum"),
            ):
                out.append(f"# TYPE {metric} histogram")
                for key, s in http:
                    _render_histogram(out, metric, _http_tags(key), self.bounds,
                                      getattr(s, attr), getattr(s, total), s.requests)
        tcp = sorted(self._tcp.items(), key=lambda kv: kv[0])
        for metric, attr in (
            ("istio_tcp_connections_opened_total", "opened"),
            ("istio_tcp_connections_closed_total", "closed"),
            ("istio_tcp_sent_bytes_total", "sent"),
            ("istio_tcp_received_bytes_total", "received"),
        ):
            rows = [(k, getattr(s, attr)) for k, s in tcp if getattr(s, attr)]
            if rows:
                out.append(f"# TYPE {metric} counter")
                for (labels, flags), v in rows:
                    out.append(f"{metric}{_fmt_labels(_tcp_tags(labels, flags))} {v}")
        return "\n".join(out) + ("\n" if out else "")


def _label_value(key: tuple, name: str) -> str:
    if name == "response_code":
        return str(key[1])
    if name == "grpc_response_status":
        return key[2]
    if name == "response_flags":
        return key[3]
    return key[0][_ISTIO_INDEX[name]]


def _http_tags(key: tuple) -> Tags:
    labels, code, grpc, flags = key
    tags = list(zip(ISTIO_LABELS[:-1], labels[:-1]))
    tags += [("response_code", str(code)), ("grpc_response_status", grpc),
             ("response_flags", flags), ("connection_security_policy", labels[-1])]
    return tuple(tags)


def _tcp_tags(labels: tuple[str, ...], flags: str) -> Tags:
    tags = [(k, v) for k, v in zip(ISTIO_LABELS[:-1], labels[:-1]) if k != "request_protocol"]
    tags += [("request_protocol", "tcp"), ("response_flags", flags),
             ("connection_security_policy", labels[-1])]
    return tuple(tags)


# -- bulk aggregation helpers (the proxy's deferred per-request records; see server.py)

def bucket_indices(bounds: tuple[float, ...], values: Iterable[float]) -> list[int]:
    """Each value's histogram slot for these bounds (what `Histogram.record` would pick)."""
    return list(map(bisect_left, repeat(bounds), values))


def group_indices(keys: Sequence[Hashable]) -> list[tuple[Hashable, list[int] | None]]:
    """Positions of each distinct key, in first-seen order and ascending within a key.
    ``None`` stands for "all positions" (one key only: the usual case, found at C speed)."""
    first = keys[0]
    if keys.count(first) == len(keys):
        return [(first, None)]
    index: dict[Hashable, list[int]] = {}
    get = index.get
    for i, k in enumerate(keys):
        positions = get(k)
        if positions is None:
            index[k] = [i]
        else:
            positions.append(i)
    return list(index.items())


def merge_indices(a: list[int], b: list[int]) -> list[int]:
    """Two groups that land on the same stat: their positions, still in arrival order (so
    float sums fold in the same order as one-by-one updates)."""
    return sorted(a + b)  # timsort merges the two ascending runs in linear time


def take(column: Sequence, positions: list[int] | None) -> Sequence:
    """The column's values at these positions (``None``: all of them), in order."""
    if positions is None:
        return column
    if len(positions) == 1:
        return (column[positions[0]],)
    return itemgetter(*positions)(column)
