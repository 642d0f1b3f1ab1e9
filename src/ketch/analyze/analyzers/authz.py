"""AuthorizationPolicy analyzer: policies that select no workload (IST0127) and source
namespaces that do not exist (IST0101)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ketch.analyze.context import AnalysisContext, attr
from ketch.analyze.hosts import selector_string, selects
from ketch.analyze.messages import Message


def namespace_matches(namespace: str, pattern: str) -> bool:
    """AuthorizationPolicy namespace patterns: exact, `*`, `prefix*` or `*suffix`."""
    if pattern == "*":
        return True
    if pattern.startswith("*"):
        return namespace.endswith(pattern[1:])
    if pattern.endswith("*"):
        return namespace.startswith(pattern[:-1])
    return namespace.lower() == pattern.lower()


def _no_matching_workloads(ctx: AnalysisContext, ap: Any) -> Iterator[Message]:
    if attr(ap.spec, "target_ref") is not None or attr(ap.spec, "target_refs", ()):
        return  # attached to a gateway or waypoint, not to workloads by label
    ns = ap.metadata.namespace
    selector = attr(ap.spec, "selector")
    labels = dict(attr(selector, "match_labels", {}) or {})
    if ns == ctx.root_namespace:
        # Mesh-wide: a selector must match a workload somewhere; without one it applies to all.
        if selector is not None and not any(selects(labels, w.labels) for w in ctx.workloads):
            yield ctx.message("IST0127", ap, selector_string(labels))
        return
    in_namespace = [w for w in ctx.workloads if w.namespace == ns]
    if selector is None:
        if not in_namespace:
            yield ctx.message("IST0127", ap, "")
        return
    if not any(selects(labels, w.labels) for w in in_namespace):
        yield ctx.message("IST0127", ap, selector_string(labels))


def _unknown_namespaces(ctx: AnalysisContext, ap: Any) -> Iterator[Message]:
    for i, rule in enumerate(attr(ap.spec, "rules", ())):
        for j, source_rule in enumerate(attr(rule, "from_", ())):
            source = attr(source_rule, "source")
            for field, yaml_field in (("namespaces", "namespaces"), ("not_namespaces", "notNamespaces")):
                for k, pattern in enumerate(attr(source, field, ())):
                    if not any(namespace_matches(n, pattern) for n in ctx.namespaces):
                        yield ctx.message("IST0101", ap, "namespace", pattern,
                                          path=("spec", "rules", i, "from", j, "source", yaml_field, k))


def authorization_policies(ctx: AnalysisContext) -> Iterator[Message]:
    for ap in ctx.of_kind("AuthorizationPolicy"):
        yield from _no_matching_workloads(ctx, ap)
        yield from _unknown_namespaces(ctx, ap)
