"""DestinationRule analyzers: TLS origination without a CA to verify the server (IST0128,
IST0129), a host no service answers to (IST0174) and subsets that select no workload
(IST0173)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ketch.analyze.context import AnalysisContext, attr, full_name
from ketch.analyze.hosts import selects
from ketch.analyze.messages import Message

VERIFYING_MODES = ("SIMPLE", "MUTUAL")


def _unverified(tls: Any) -> bool:
    """TLS that originates without any way to check the server's certificate."""
    return (
        attr(tls, "mode") in VERIFYING_MODES
        and not attr(tls, "ca_certificates")
        and not attr(tls, "credential_name")
        and not attr(tls, "insecure_skip_verify", False)
    )


def ca_certificates(ctx: AnalysisContext) -> Iterator[Message]:
    for dr in ctx.of_kind("DestinationRule"):
        policy = attr(dr.spec, "traffic_policy")
        host = attr(dr.spec, "host", "")
        ns = dr.metadata.namespace
        tls = attr(policy, "tls")
        if _unverified(tls):
            yield ctx.message("IST0128", dr, full_name(dr), ns, tls.mode, host)
        for p in attr(policy, "port_level_settings", ()):
            ptls = attr(p, "tls")
            if _unverified(ptls):
                # Istio prints the PortSelector proto as text: `number:443`.
                port = attr(attr(p, "port"), "number")
                yield ctx.message("IST0129", dr, full_name(dr), ns, ptls.mode, host,
                                  f"number:{port}" if port is not None else "")


def subsets_select_pods(ctx: AnalysisContext) -> Iterator[Message]:
    for dr in ctx.of_kind("DestinationRule"):
        host = attr(dr.spec, "host", "")
        service = ctx.find_service(dr.metadata.namespace, host)
        if service is None:
            yield ctx.message("IST0174", dr, host)
            continue
        for subset in attr(dr.spec, "subsets", ()):
            selector = {**service.selector, **(attr(subset, "labels", {}) or {})}
            if not any(selects(selector, w.labels) for w in ctx.workloads):
                yield ctx.message("IST0173", dr, attr(subset, "name", ""))
