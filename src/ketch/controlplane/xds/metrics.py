"""The xDS server's own metrics, in Prometheus text format, under Istio's pilot names.

A few lines of counters, gauges and histograms instead of a dependency: the exposition format
is small and the control plane has one registry per process (passed in, never global).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable

Labels = tuple[tuple[str, str], ...]

# Istio's pilot buckets for push and convergence time, in seconds.
TIME_BUCKETS: tuple[float, ...] = (0.01, 0.1, 0.5, 1, 3, 5, 10, 20, 30)


def _labels(labels: dict[str, str] | None) -> Labels:
    return tuple(sorted((labels or {}).items()))


def _fmt_labels(labels: Labels, extra: Labels = ()) -> str:
    items = labels + extra
    if not items:
        return ""
    body = ",".join(f'{k}="{_escape(v)}"' for k, v in items)
    return "{" + body + "}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _num(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


@dataclass
class Counter:
    name: str
    help: str
    kind: str = "counter"
    values: dict[Labels, float] = field(default_factory=dict)

    def inc(self, labels: dict[str, str] | None = None, amount: float = 1.0) -> None:
        key = _labels(labels)
        self.values[key] = self.values.get(key, 0.0) + amount

    def get(self, labels: dict[str, str] | None = None) -> float:
        return self.values.get(_labels(labels), 0.0)

    def samples(self) -> Iterable[str]:
        for labels, value in sorted(self.values.items()):
            yield f"{self.name}{_fmt_labels(labels)} {_num(value)}"


@dataclass
class Gauge(Counter):
    kind: str = "gauge"

    def set(self, labels: dict[str, str] | None = None, value: float = 0.0) -> None:
        self.values[_labels(labels)] = value

    def remove(self, labels: dict[str, str] | None = None) -> None:
        self.values.pop(_labels(labels), None)


@dataclass
class Histogram:
    name: str
    help: str
    buckets: tuple[float, ...] = TIME_BUCKETS
    kind: str = "histogram"
    series: dict[Labels, list[float]] = field(default_factory=dict)  # counts..., sum, count

    def observe(self, value: float, labels: dict[str, str] | None = None) -> None:
        key = _labels(labels)
        row = self.series.setdefault(key, [0.0] * (len(self.buckets) + 2))
        for i, bound in enumerate(self.buckets):
            if value <= bound:
                row[i] += 1
        row[-2] += value
        row[-1] += 1

    def count(self, labels: dict[str, str] | None = None) -> float:
        row = self.series.get(_labels(labels))
        return row[-1] if row else 0.0

    def samples(self) -> Iterable[str]:
        for labels, row in sorted(self.series.items()):
            for bound, n in zip(self.buckets, row):
                yield f"{self.name}_bucket{_fmt_labels(labels, (('le', _num(bound)),))} {_num(n)}"
            yield f"{self.name}_bucket{_fmt_labels(labels, (('le', '+Inf'),))} {_num(row[-1])}"
            yield f"{self.name}_sum{_fmt_labels(labels)} {_num(row[-2])}"
            yield f"{self.name}_count{_fmt_labels(labels)} {_num(row[-1])}"


class XdsMetrics:
    """Pilot's serving metrics (names as in istio/pilot/pkg/xds/monitoring.go)."""

    def __init__(self) -> None:
        self.pushes = Counter("pilot_xds_pushes", "Pilot build and send errors for lds, rds, cds and eds.")
        self.push_time = Histogram("pilot_xds_push_time", "Total time in seconds Pilot takes to push lds, rds, cds and eds.")
        self.convergence = Histogram("pilot_proxy_convergence_time", "Delay in seconds between config change and a proxy receiving all required configuration.")
        self.connected = Gauge("pilot_xds", "Number of endpoints connected to this pilot using XDS.")
        self.rejects = Counter("pilot_total_xds_rejects", "Total number of XDS responses from pilot rejected by proxy.")
        self.type_rejects = {
            short: Gauge(f"pilot_xds_{short}_reject", f"Pilot rejected {short.upper()} configs.")
            for short in ("cds", "eds", "lds", "rds")
        }
        self.skipped = Counter("ketch_xds_pushes_skipped", "Pushes of a type skipped because no resource changed.")
        self.debounced = Counter("pilot_debounce_events", "Changes merged into pushes by the debouncer.")
        self.full_pushes = Counter("pilot_push_triggers", "Total number of times a push was triggered, labeled by reason.")

    def all(self) -> list[Counter | Histogram]:
        return [self.pushes, self.push_time, self.convergence, self.connected, self.rejects,
                *self.type_rejects.values(), self.skipped, self.debounced, self.full_pushes]

    def text(self) -> str:
        lines: list[str] = []
        for metric in self.all():
            lines.append(f"# HELP {metric.name} {metric.help}")
            lines.append(f"# TYPE {metric.name} {metric.kind}")
            lines.extend(metric.samples())
        return "\n".join(lines) + "\n"
