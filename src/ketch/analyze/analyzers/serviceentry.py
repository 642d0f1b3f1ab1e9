"""ServiceEntry analyzers: TCP ports without addresses (IST0134) and the same host and port
declared with different protocols (IST0177)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from typing import Any

from ketch.analyze.context import AnalysisContext, attr, full_name
from ketch.analyze.hosts import ALL_NAMESPACES, export_scopes
from ketch.analyze.messages import Message


def _auto_allocated(mesh: Any) -> bool:
    """DNS capture with address auto-allocation gives ServiceEntries addresses of their own."""
    meta = attr(attr(mesh, "default_config"), "proxy_metadata", {}) or {}
    if meta.get("ISTIO_META_DNS_CAPTURE") != "true":
        return False
    return "true" in (meta.get("ISTIO_META_DNS_AUTO_ALLOCATE"), meta.get("PILOT_ENABLE_IP_AUTOALLOCATE"))


def protocol_addresses(ctx: AnalysisContext) -> Iterator[Message]:
    if _auto_allocated(ctx.mesh):
        return
    for se in ctx.of_kind("ServiceEntry"):
        if attr(se.spec, "addresses", ()):
            continue
        for i, port in enumerate(attr(se.spec, "ports", ())):
            protocol = attr(port, "protocol", "")
            if protocol == "" or protocol.upper() == "TCP":
                yield ctx.message("IST0134", se, path=("spec", "ports", i))


def conflicting_protocols(ctx: AnalysisContext) -> Iterator[Message]:
    index: dict[tuple[str, str, int], list[tuple[str, Any]]] = defaultdict(list)
    for se in ctx.of_kind("ServiceEntry"):
        for scope in export_scopes(attr(se.spec, "export_to", ()), se.metadata.namespace):
            for host in attr(se.spec, "hosts", ()):
                for port in attr(se.spec, "ports", ()):
                    index[(scope, host, attr(port, "number", 0))].append((attr(port, "protocol", ""), se))
    reported: set[str] = set()
    for (scope, host, number), entries in sorted(index.items(), key=lambda kv: kv[0]):
        entries = list(entries)
        if scope != ALL_NAMESPACES:
            entries += index.get((ALL_NAMESPACES, host, number), [])
        protocols = sorted({p.upper() for p, _ in entries})
        if len(protocols) < 2:
            continue
        names = ", ".join(sorted({full_name(se) for _, se in entries}))
        for _, se in entries:
            if full_name(se) in reported:
                continue
            reported.add(full_name(se))
            yield ctx.message("IST0177", se, names, host, number, ", ".join(protocols), path=("metadata", "name"))
