"""Telemetry analyzers: access logging with no provider (IST0157), selectors matching no
workload (IST0101) or overlapping (IST0159), several selector-less Telemetries in one
namespace (IST0160)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from typing import Any

from ketch.analyze.context import AnalysisContext, attr
from ketch.analyze.hosts import selector_string, selects
from ketch.analyze.messages import Message


def providers(ctx: AnalysisContext) -> Iterator[Message]:
    defaults = attr(attr(ctx.mesh, "default_providers"), "access_logging", ())
    if defaults:
        return  # an entry without providers falls back to the mesh default
    for t in ctx.of_kind("Telemetry"):
        for i, logging in enumerate(attr(t.spec, "access_logging", ())):
            if attr(logging, "disabled", False):
                continue
            if not attr(logging, "providers", ()):
                yield ctx.message("IST0157", t, t.metadata.name, t.metadata.namespace,
                                  path=("spec", "accessLogging", i))


def _match_labels(t: Any) -> dict[str, str]:
    return dict(attr(attr(t.spec, "selector"), "match_labels", {}) or {})


def selectors(ctx: AnalysisContext) -> Iterator[Message]:
    per_workload: dict[tuple[str, str], list[Any]] = defaultdict(list)
    for t in ctx.of_kind("Telemetry"):
        labels = _match_labels(t)
        if not labels:
            continue
        ns = t.metadata.namespace
        found = False
        for w in ctx.workloads:
            if w.namespace == ns and selects(labels, w.labels):
                found = True
                per_workload[(w.namespace, w.name)].append(t)
        if not found:
            yield ctx.message("IST0101", t, "selector", selector_string(labels),
                              path=("spec", "selector", "matchLabels", *sorted(labels)[:1]))
    for (ns, workload), telemetries in sorted(per_workload.items()):
        if len(telemetries) < 2:
            continue
        names = [t.metadata.name for t in telemetries]
        for t in telemetries:
            yield ctx.message("IST0159", t, names, ns, workload, path=("metadata", "name"))


def default_selectors(ctx: AnalysisContext) -> Iterator[Message]:
    per_namespace: dict[str, list[Any]] = defaultdict(list)
    for t in ctx.of_kind("Telemetry"):
        targeted = attr(t.spec, "target_ref") is not None or attr(t.spec, "target_refs", ())
        if attr(t.spec, "selector") is None and not targeted:
            per_namespace[t.metadata.namespace].append(t)
    for ns, telemetries in sorted(per_namespace.items()):
        if len(telemetries) < 2:
            continue
        names = [t.metadata.name for t in telemetries]
        for t in telemetries:
            yield ctx.message("IST0160", t, names, ns)
