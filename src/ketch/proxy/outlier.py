"""Envoy's outlier detection (consecutive errors) for one cluster, clock passed in.

API
---
- `OutlierConfig.from_proto(envoy.config.cluster.v3.OutlierDetection)` (frozen; Envoy's
  defaults: consecutive_5xx 5 enforced 100%, consecutive_gateway_failure 5 enforced 0%,
  interval 10 s, base_ejection_time 30 s, max_ejection_time 300 s, max_ejection_percent 10,
  consecutive_local_origin_failure 5 enforced 100% when split_external_local_origin_errors).
  Success-rate ejection (Envoy's default: enforced 100%, at least 5 hosts with 100 requests
  in the interval, stdev factor 1.9) and failure-percentage ejection (threshold 85%, enforced
  0% by default) run in the interval sweep on external-origin results; Istio turns the first
  off (``enforcing_success_rate: 0``). The local-origin variants (split mode) and
  ``monitors`` raise `Unsupported` when enabled explicitly.
- `OutlierDetector(config, hosts=(), rng=random.Random(), stats=None)`; `set_hosts(hosts)`
  when EDS changes (state of kept hosts survives, keyed by ``host.address``).
- `record(host, outcome, now) -> bool`: feed one attempt's `retry.Outcome`; True when this
  ejected the host (the caller then calls ``lb.refresh()``). Consecutive ejections happen at
  once, as in Envoy.
- `tick(now) -> list[Host]`: the interval sweep (call every ``config.interval`` seconds):
  returns the hosts whose state changed — returned to service, or ejected by the
  success-rate/failure-percentage analysis (``last_sweep_ejected``); refresh the balancer
  when it is not empty. A host is ejected for
  ``min(base_ejection_time × ejections, max(base, max_ejection_time))`` (+ jitter); each
  sweep a host that stayed in service lowers its ejection multiplier by one.
- `is_ejected(host)`, `state(host) -> dict` (for the admin ``/clusters`` page),
  ``ejections_active``.

Classification (Envoy, non-split mode): a 5xx response counts toward consecutive_5xx, a
502/503/504 also toward consecutive_gateway_failure, anything else resets both; local-origin
failures (connect failure, reset, timeout) count as 503 (504 for a timeout). In split mode
they count toward consecutive_local_origin_failure instead. Overflow outcomes (no host
involved) are ignored. Ejection respects ``max_ejection_percent`` as current Envoy does:
allowed while (ejected + 1) / hosts ≤ max%, or for the first host with
``always_eject_one_host``. ``host.ejected`` is set/cleared here; the balancer reads it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from ketch.proxy.protoutil import Unsupported
from ketch.proxy.retry import RESPONSE, TIMEOUT, Outcome

__all__ = ["OutlierConfig", "OutlierDetector"]


def _dur(msg: Any, field: str, default: float) -> float:
    if not msg.HasField(field):
        return default
    d = getattr(msg, field)
    return d.seconds + d.nanos / 1e9


def _u32(msg: Any, field: str, default: int) -> int:
    return getattr(msg, field).value if msg.HasField(field) else default


@dataclass(frozen=True, slots=True)
class OutlierConfig:
    consecutive_5xx: int = 5
    enforcing_consecutive_5xx: int = 100
    consecutive_gateway_failure: int = 5
    enforcing_consecutive_gateway_failure: int = 0
    split_external_local_origin_errors: bool = False
    consecutive_local_origin_failure: int = 5
    enforcing_consecutive_local_origin_failure: int = 100
    interval: float = 10.0
    base_ejection_time: float = 30.0
    max_ejection_time: float = 300.0
    max_ejection_time_jitter: float = 0.0
    max_ejection_percent: int = 10
    always_eject_one_host: bool = False
    enforcing_success_rate: int = 100
    success_rate_minimum_hosts: int = 5
    success_rate_request_volume: int = 100
    success_rate_stdev_factor: float = 1.9
    failure_percentage_threshold: int = 85
    enforcing_failure_percentage: int = 0
    failure_percentage_minimum_hosts: int = 5
    failure_percentage_request_volume: int = 50

    @classmethod
    def from_proto(cls, msg: Any, where: str = "outlier_detection") -> "OutlierConfig":
        for field in ("enforcing_local_origin_success_rate",
                      "enforcing_failure_percentage_local_origin"):
            if msg.HasField(field) and getattr(msg, field).value > 0:
                raise Unsupported(f"{where}.{field}: local-origin success-rate/failure-"
                                  "percentage ejection is not supported")
        if len(msg.monitors):
            raise Unsupported(f"{where}.monitors is not supported")
        return cls(
            consecutive_5xx=_u32(msg, "consecutive_5xx", 5),
            enforcing_consecutive_5xx=_u32(msg, "enforcing_consecutive_5xx", 100),
            consecutive_gateway_failure=_u32(msg, "consecutive_gateway_failure", 5),
            enforcing_consecutive_gateway_failure=_u32(
                msg, "enforcing_consecutive_gateway_failure", 0),
            split_external_local_origin_errors=bool(msg.split_external_local_origin_errors),
            consecutive_local_origin_failure=_u32(msg, "consecutive_local_origin_failure", 5),
            enforcing_consecutive_local_origin_failure=_u32(
                msg, "enforcing_consecutive_local_origin_failure", 100),
            interval=_dur(msg, "interval", 10.0),
            base_ejection_time=_dur(msg, "base_ejection_time", 30.0),
            max_ejection_time=_dur(msg, "max_ejection_time", 300.0),
            max_ejection_time_jitter=_dur(msg, "max_ejection_time_jitter", 0.0),
            max_ejection_percent=min(100, _u32(msg, "max_ejection_percent", 10)),
            always_eject_one_host=bool(msg.always_eject_one_host.value)
            if msg.HasField("always_eject_one_host") else False,
            enforcing_success_rate=_u32(msg, "enforcing_success_rate", 100),
            success_rate_minimum_hosts=_u32(msg, "success_rate_minimum_hosts", 5),
            success_rate_request_volume=_u32(msg, "success_rate_request_volume", 100),
            success_rate_stdev_factor=_u32(msg, "success_rate_stdev_factor", 1900) / 1000.0,
            failure_percentage_threshold=_u32(msg, "failure_percentage_threshold", 85),
            enforcing_failure_percentage=_u32(msg, "enforcing_failure_percentage", 0),
            failure_percentage_minimum_hosts=_u32(msg, "failure_percentage_minimum_hosts", 5),
            failure_percentage_request_volume=_u32(msg, "failure_percentage_request_volume",
                                                   50),
        )


class _Monitor:
    __slots__ = ("host", "c5xx", "cgw", "clocal", "ejections", "ejected_at", "eject_for",
                 "unejected_at", "total", "ok")

    def __init__(self, host: Any) -> None:
        self.host = host
        self.total = self.ok = 0  # external-origin results in the current interval
        self.c5xx = self.cgw = self.clocal = 0
        self.ejections = 0
        self.ejected_at: float | None = None
        self.eject_for = 0.0
        self.unejected_at: float | None = None


_KINDS = ("consecutive_5xx", "consecutive_gateway_failure", "consecutive_local_origin_failure",
          "success_rate", "failure_percentage")


class OutlierDetector:
    def __init__(self, config: OutlierConfig, hosts: Any = (), rng: random.Random | None = None,
                 stats: Any = None) -> None:
        self.config = config
        self._rng = rng or random.Random()
        self._monitors: dict[str, _Monitor] = {}
        self.ejections_active = 0
        self.last_sweep_ejected: list[Any] = []
        self._stats: dict[str, Any] = {}
        if stats is not None:
            names = ["ejections_enforced_total", "ejections_overflow", "ejections_total"]
            for k in _KINDS:
                names += [f"ejections_enforced_{k}", f"ejections_detected_{k}"]
            self._stats = {n: stats.counter(f"outlier_detection.{n}") for n in names}
            self._stats["ejections_active"] = stats.gauge("outlier_detection.ejections_active")
        self.set_hosts(hosts)

    def set_hosts(self, hosts: Any) -> None:
        old = self._monitors
        self._monitors = {}
        for h in hosts:
            m = old.get(h.address)
            if m is None:
                m = _Monitor(h)
            else:
                h.ejected = m.ejected_at is not None  # carry state to the new Host object
                m.host = h
            self._monitors[h.address] = m
        self.ejections_active = sum(1 for m in self._monitors.values()
                                    if m.ejected_at is not None)
        self._set_active_gauge()

    def _count(self, name: str) -> None:
        c = self._stats.get(name)
        if c is not None:
            c.inc()

    def _set_active_gauge(self) -> None:
        g = self._stats.get("ejections_active")
        if g is not None:
            g.set(self.ejections_active)

    def is_ejected(self, host: Any) -> bool:
        m = self._monitors.get(host.address)
        return m is not None and m.ejected_at is not None

    def record(self, host: Any, outcome: Outcome, now: float) -> bool:
        m = self._monitors.get(host.address)
        if m is None:
            return False
        cfg = self.config
        kind = outcome.kind
        if kind == RESPONSE:
            status = outcome.status
        elif outcome.local_origin:
            if cfg.split_external_local_origin_errors:
                m.clocal += 1
                if m.clocal == cfg.consecutive_local_origin_failure:
                    return self._detected(m, 2, cfg.enforcing_consecutive_local_origin_failure,
                                          now)
                return False
            status = 504 if kind == TIMEOUT else 503
        else:
            return False  # overflow: the host was never involved
        m.total += 1
        if status >= 500:
            fired = False
            if status in (502, 503, 504):
                m.cgw += 1
                if m.cgw == cfg.consecutive_gateway_failure:
                    fired = self._detected(m, 1, cfg.enforcing_consecutive_gateway_failure, now)
            else:
                m.cgw = 0
            m.c5xx += 1
            if m.c5xx == cfg.consecutive_5xx:
                fired = self._detected(m, 0, cfg.enforcing_consecutive_5xx, now) or fired
            return fired
        m.ok += 1
        m.c5xx = m.cgw = 0
        if cfg.split_external_local_origin_errors:
            m.clocal = 0  # a response means the connection worked
        return False

    def _detected(self, m: _Monitor, which: int, enforcing: int, now: float) -> bool:
        kind = _KINDS[which]
        self._count(f"ejections_detected_{kind}")
        # Envoy resets the counter that fired so the next ejection needs a fresh run.
        if which == 0:
            m.c5xx = 0
        elif which == 1:
            m.cgw = 0
        elif which == 2:
            m.clocal = 0
        if m.ejected_at is not None:
            return False
        if enforcing < 100 and self._rng.random() * 100 >= enforcing:
            return False
        cfg = self.config
        total = len(self._monitors)
        allowed = 100.0 * (self.ejections_active + 1) / total <= cfg.max_ejection_percent
        if not allowed and not (cfg.always_eject_one_host and self.ejections_active == 0):
            self._count("ejections_overflow")
            return False
        m.ejections += 1
        m.ejected_at = now
        jitter = self._rng.random() * cfg.max_ejection_time_jitter
        cap = max(cfg.base_ejection_time, cfg.max_ejection_time)
        m.eject_for = min(cfg.base_ejection_time * m.ejections, cap) + jitter
        m.host.ejected = True
        self.ejections_active += 1
        self._set_active_gauge()
        self._count("ejections_enforced_total")
        self._count("ejections_total")
        self._count(f"ejections_enforced_{kind}")
        return True

    def tick(self, now: float) -> list[Any]:
        """The interval sweep: return ejected hosts whose time is up to service."""
        returned = []
        cfg = self.config
        for m in self._monitors.values():
            if m.ejected_at is None:
                # Stayed healthy through a whole interval since its return: forgive one
                # ejection, so the next ejection is shorter again (Envoy's backoff decay).
                if m.ejections > 0 and m.unejected_at is not None and \
                        now - m.unejected_at >= cfg.interval:
                    m.ejections -= 1
                continue
            if now - m.ejected_at >= m.eject_for:
                m.ejected_at = None
                m.unejected_at = now
                m.host.ejected = False
                m.c5xx = m.cgw = m.clocal = 0
                self.ejections_active -= 1
                returned.append(m.host)
        if returned:
            self._set_active_gauge()
        self.last_sweep_ejected = self._rate_analysis(now)
        for m in self._monitors.values():
            m.total = m.ok = 0
        return returned + self.last_sweep_ejected

    def _rate_analysis(self, now: float) -> list[Any]:
        """Envoy's success-rate and failure-percentage ejections over the last interval."""
        cfg = self.config
        ejected: list[Any] = []
        if cfg.enforcing_success_rate > 0:
            sample = [m for m in self._monitors.values()
                      if m.ejected_at is None and m.total >= cfg.success_rate_request_volume]
            if sample and len(sample) >= cfg.success_rate_minimum_hosts:
                rates = [100.0 * m.ok / m.total for m in sample]
                mean = sum(rates) / len(rates)
                stdev = (sum((r - mean) ** 2 for r in rates) / len(rates)) ** 0.5
                floor = mean - cfg.success_rate_stdev_factor * stdev
                for m, rate in zip(sample, rates):
                    if rate < floor and self._detected(m, 3, cfg.enforcing_success_rate, now):
                        ejected.append(m.host)
        if cfg.enforcing_failure_percentage > 0:
            sample = [m for m in self._monitors.values() if m.ejected_at is None
                      and m.total >= cfg.failure_percentage_request_volume]
            if sample and len(sample) >= cfg.failure_percentage_minimum_hosts:
                for m in sample:
                    failed = 100.0 * (m.total - m.ok) / m.total
                    if failed >= cfg.failure_percentage_threshold and \
                            self._detected(m, 4, cfg.enforcing_failure_percentage, now):
                        ejected.append(m.host)
        return ejected

    def state(self, host: Any) -> dict[str, Any]:
        m = self._monitors.get(host.address)
        if m is None:
            return {}
        return {"ejected": m.ejected_at is not None, "ejections": m.ejections,
                "consecutive_5xx": m.c5xx, "consecutive_gateway_failure": m.cgw,
                "consecutive_local_origin_failure": m.clocal,
                "ejected_until": None if m.ejected_at is None else m.ejected_at + m.eject_for}

    def __repr__(self) -> str:
        return f"<OutlierDetector [{self.ejections_active} ejected of {len(self._monitors)}]>"
