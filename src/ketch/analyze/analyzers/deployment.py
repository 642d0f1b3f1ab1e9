"""Deployment analyzer: Services selecting one Deployment's pods that disagree on a port's
protocol (IST0116) or map one targetPort to different ports (IST0137)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator

from ketch.analyze.context import AnalysisContext, MeshService, full_name
from ketch.analyze.hosts import selects
from ketch.analyze.messages import Message


def _services_of(ctx: AnalysisContext, namespace: str, labels: dict[str, str]) -> list[MeshService]:
    # Istio matches with SelectorFromSet, so a selector-less Service counts as matching.
    return [s for s in ctx.k8s_services if s.resource is not None and s.namespace == namespace
            and selects(s.selector, labels)]


def service_association(ctx: AnalysisContext) -> Iterator[Message]:
    for w in ctx.workloads:
        if w.resource is None or w.resource.kind != "Deployment":
            continue
        services = _services_of(ctx, w.namespace, dict(w.labels))
        protocols: dict[int, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
        targets: dict[str, dict[int, str]] = defaultdict(dict)
        for s in services:
            for p in s.ports:
                protocols[p.number][(p.protocol or "TCP").upper()].append(full_name(s.resource))
                target = p.target_port if p.target_port not in ("", "0") else str(p.number)
                targets[target][p.number] = full_name(s.resource)
        for port, by_protocol in sorted(protocols.items()):
            if len(by_protocol) > 1:
                names = [n for protocol in sorted(by_protocol) for n in by_protocol[protocol]]
                yield ctx.message("IST0116", w.resource, w.name, port, names, path=("metadata", "name"))
        for target, by_port in sorted(targets.items()):
            if len(by_port) > 1:
                yield ctx.message("IST0137", w.resource, w.name, [by_port[p] for p in sorted(by_port)],
                                  target, sorted(by_port), path=("metadata", "name"))
