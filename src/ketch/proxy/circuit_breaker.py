"""Envoy's per-cluster circuit breakers: resource limits per routing priority.

API
---
- `Thresholds` (frozen): ``max_connections``, ``max_pending_requests``, ``max_requests``
  (Envoy defaults 1024 each), ``max_retries`` (default 3), ``retry_budget`` (`RetryBudget`:
  ``budget_percent`` default 20, ``min_retry_concurrency`` default 3), ``track_remaining``.
  `Thresholds.from_proto(envoy.config.cluster.v3.CircuitBreakers.Thresholds)`.
- `CircuitBreakers(thresholds={0: Thresholds()}, stats=None, store=None, cluster="")`, or
  `CircuitBreakers.from_proto(msg, ...)`; priority 0 is DEFAULT, 1 is HIGH
  (``RoutingPriority``). ``breakers.resources(priority=0)`` → `ResourceManager` with four
  `Resource`s: ``connections``, ``pending`` (requests waiting for a connection),
  ``requests`` (requests in flight), ``retries`` (retries in flight).
- `Resource.try_acquire() -> bool` takes one unit or, at the limit, counts the overflow and
  returns False; `release()` gives it back; `can_create()` only asks.
  Overflow statistics, by Envoy's names on the cluster's `ClusterStats`: connections →
  ``upstream_cx_overflow``; pending *and* requests → ``upstream_rq_pending_overflow`` (Envoy
  counts a max_requests overflow there too; there is no ``upstream_rq_overflow``); retries →
  ``upstream_rq_retry_overflow``. Gauges ``circuit_breakers.<default|high>.cx_open``,
  ``rq_pending_open``, ``rq_open``, ``rq_retry_open`` are 1 while a limit is reached, and
  ``remaining_cx`` … when ``track_remaining`` is set.
- Retry budget: with ``retry_budget`` set, the retries limit is not ``max_retries`` but
  ``max(min_retry_concurrency, budget_percent% of (active + pending requests))``.

The pool decides what an overflow means (a connection overflow queues the request as
pending; a pending or request overflow answers 503 with flag UO and
``x-envoy-overloaded: true``); this module only keeps the books.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ketch.proxy.stats import ClusterStats, Counter, Gauge, Store

__all__ = ["RetryBudget", "Thresholds", "Resource", "ResourceManager", "CircuitBreakers"]

_PRIORITY_NAMES = {0: "default", 1: "high"}


@dataclass(frozen=True, slots=True)
class RetryBudget:
    budget_percent: float = 20.0
    min_retry_concurrency: int = 3


@dataclass(frozen=True, slots=True)
class Thresholds:
    max_connections: int = 1024
    max_pending_requests: int = 1024
    max_requests: int = 1024
    max_retries: int = 3
    retry_budget: RetryBudget | None = None
    track_remaining: bool = False

    @classmethod
    def from_proto(cls, msg: Any) -> "Thresholds":
        def u32(field: str, default: int) -> int:
            return getattr(msg, field).value if msg.HasField(field) else default

        budget = None
        if msg.HasField("retry_budget"):
            rb = msg.retry_budget
            budget = RetryBudget(
                rb.budget_percent.value if rb.HasField("budget_percent") else 20.0,
                rb.min_retry_concurrency.value if rb.HasField("min_retry_concurrency") else 3,
            )
        return cls(u32("max_connections", 1024), u32("max_pending_requests", 1024),
                   u32("max_requests", 1024), u32("max_retries", 3), budget,
                   bool(msg.track_remaining))


class Resource:
    """One limited resource: a count, its limit, and the books kept when it overflows."""

    __slots__ = ("name", "count", "max", "overflow", "open_gauge", "remaining_gauge")

    def __init__(self, name: str, limit: int, overflow: Counter | None,
                 open_gauge: Gauge | None, remaining_gauge: Gauge | None) -> None:
        self.name = name
        self.count = 0
        self.max = limit
        self.overflow = overflow
        self.open_gauge = open_gauge
        self.remaining_gauge = remaining_gauge
        self._publish()

    def limit(self) -> int:
        return self.max

    def can_create(self) -> bool:
        return self.count < self.limit()

    def try_acquire(self) -> bool:
        limit = self.max  # a fixed limit (the budgeted subclass overrides this method)
        count = self.count
        if count >= limit:
            if self.overflow is not None:
                self.overflow.value += 1
            return False
        self.count = count = count + 1
        # Gauges change only at the limit (open) unless remaining_* is tracked: keep the
        # common path to two comparisons.
        if self.remaining_gauge is not None or count >= limit:
            self._publish()
        return True

    def release(self) -> None:
        count = self.count
        if count > 0:
            self.count = count - 1
        if self.remaining_gauge is not None or count >= self.max:
            self._publish()

    def _publish(self) -> None:
        limit = self.limit()
        if self.open_gauge is not None:
            self.open_gauge.value = 1 if self.count >= limit else 0
        if self.remaining_gauge is not None:
            self.remaining_gauge.value = max(0, limit - self.count)


class _BudgetedRetries(Resource):
    """Retries limited by a share of the requests in flight (Envoy's retry budget)."""

    __slots__ = ("budget", "requests", "pending")

    def __init__(self, budget: RetryBudget, requests: Resource, pending: Resource,
                 *args: Any) -> None:
        self.budget = budget
        self.requests = requests
        self.pending = pending
        super().__init__(*args)

    def limit(self) -> int:
        active = self.requests.count + self.pending.count
        return max(self.budget.min_retry_concurrency,
                   int(self.budget.budget_percent / 100.0 * active))

    # the budget moves with the requests in flight: refresh the limit, then the base logic
    def try_acquire(self) -> bool:
        self.max = self.limit()
        return Resource.try_acquire(self)

    def release(self) -> None:
        self.max = self.limit()
        Resource.release(self)


class ResourceManager:
    """The four resources of one priority."""

    __slots__ = ("priority", "thresholds", "connections", "pending", "requests", "retries")

    def __init__(self, priority: int, t: Thresholds, stats: ClusterStats | None,
                 store: Store | None, cluster: str) -> None:
        self.priority = priority
        self.thresholds = t

        def gauges(short: str, remaining: str) -> tuple[Gauge | None, Gauge | None]:
            if store is None:
                return None, None
            base = f"cluster.{cluster}.circuit_breakers.{_PRIORITY_NAMES.get(priority, priority)}."
            tags = (("envoy_cluster_name", cluster),)
            prom = f"envoy_cluster_circuit_breakers_{_PRIORITY_NAMES.get(priority, priority)}_"
            open_g = store.gauge(base + short, prom + short, tags)
            rem_g = (store.gauge(base + remaining, prom + remaining, tags)
                     if t.track_remaining else None)
            return open_g, rem_g

        s = stats
        self.connections = Resource("connections", t.max_connections,
                                    s.upstream_cx_overflow if s else None,
                                    *gauges("cx_open", "remaining_cx"))
        self.pending = Resource("pending", t.max_pending_requests,
                                s.upstream_rq_pending_overflow if s else None,
                                *gauges("rq_pending_open", "remaining_pending"))
        self.requests = Resource("requests", t.max_requests,
                                 s.upstream_rq_pending_overflow if s else None,
                                 *gauges("rq_open", "remaining_rq"))
        retry_overflow = s.upstream_rq_retry_overflow if s else None
        retry_gauges = gauges("rq_retry_open", "remaining_retries")
        if t.retry_budget is not None:
            self.retries: Resource = _BudgetedRetries(
                t.retry_budget, self.requests, self.pending, "retries", t.max_retries,
                retry_overflow, *retry_gauges)
        else:
            self.retries = Resource("retries", t.max_retries, retry_overflow, *retry_gauges)

    def __repr__(self) -> str:
        parts = ", ".join(f"{r.name} {r.count}/{r.limit()}" for r in
                          (self.connections, self.pending, self.requests, self.retries))
        return f"<Resources {_PRIORITY_NAMES.get(self.priority, self.priority)}: {parts}>"


class CircuitBreakers:
    """A cluster's circuit breakers (one `ResourceManager` per routing priority)."""

    def __init__(self, thresholds: dict[int, Thresholds] | None = None,
                 stats: ClusterStats | None = None, store: Store | None = None,
                 cluster: str = "") -> None:
        thresholds = dict(thresholds or {})
        thresholds.setdefault(0, Thresholds())
        thresholds.setdefault(1, Thresholds())
        self._managers = {p: ResourceManager(p, t, stats, store, cluster)
                          for p, t in thresholds.items()}
        self.default = self._managers[0]

    @classmethod
    def from_proto(cls, msg: Any, stats: ClusterStats | None = None,
                   store: Store | None = None, cluster: str = "") -> "CircuitBreakers":
        """From ``envoy.config.cluster.v3.CircuitBreakers`` (``None`` → all defaults)."""
        thresholds: dict[int, Thresholds] = {}
        if msg is not None:
            for t in msg.thresholds:
                thresholds[int(t.priority)] = Thresholds.from_proto(t)
        return cls(thresholds, stats, store, cluster)

    def resources(self, priority: int = 0) -> ResourceManager:
        return self._managers.get(priority, self.default)

    def __repr__(self) -> str:
        return f"<CircuitBreakers {self.default!r}>"
