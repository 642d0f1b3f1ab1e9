"""Sidecar analyzers: selectors matching no workload (IST0101), several Sidecars selecting
one workload (IST0110) or several without selector in a namespace (IST0111)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from typing import Any

from ketch.analyze.context import AnalysisContext, attr
from ketch.analyze.hosts import selector_string, selects
from ketch.analyze.messages import Message


def _labels(sidecar: Any) -> dict[str, str]:
    return dict(attr(attr(sidecar.spec, "workload_selector"), "labels", {}) or {})


def selectors(ctx: AnalysisContext) -> Iterator[Message]:
    per_workload: dict[tuple[str, str], list[Any]] = defaultdict(list)
    for sc in ctx.of_kind("Sidecar"):
        labels = _labels(sc)
        if not labels:
            continue
        ns = sc.metadata.namespace
        matched = [w for w in ctx.workloads if w.namespace == ns and selects(labels, w.labels)]
        for w in matched:
            per_workload[(w.namespace, w.name)].append(sc)
        if not matched:
            yield ctx.message("IST0101", sc, "selector", selector_string(labels),
                              path=("spec", "workloadSelector", "labels", *sorted(labels)[:1]))
    for (ns, workload), sidecars in sorted(per_workload.items()):
        if len(sidecars) < 2:
            continue
        names = [sc.metadata.name for sc in sidecars]
        for sc in sidecars:
            yield ctx.message("IST0110", sc, names, ns, workload, path=("metadata", "name"))


def default_selectors(ctx: AnalysisContext) -> Iterator[Message]:
    per_namespace: dict[str, list[Any]] = defaultdict(list)
    for sc in ctx.of_kind("Sidecar"):
        if not _labels(sc):
            per_namespace[sc.metadata.namespace].append(sc)
    for ns, sidecars in sorted(per_namespace.items()):
        if len(sidecars) < 2:
            continue
        names = [sc.metadata.name for sc in sidecars]
        for sc in sidecars:
            yield ctx.message("IST0111", sc, names, ns)
