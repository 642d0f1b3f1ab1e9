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


def _unverified(tls: Any, has_workload_selector: bool) -> bool:
    """TLS origination without caCertificates; as in Istio, a credentialName counts as carrying
    the CA only on a DestinationRule with a workloadSelector (a gateway's own rule)."""
    return (
        attr(tls, "mode") in VERIFYING_MODES
        and not attr(tls, "ca_certificates")
        and not (attr(tls, "credential_name") and has_workload_selector)
    )


def ca_certificates(ctx: AnalysisContext) -> Iterator[Message]:
    for dr in ctx.of_kind("DestinationRule"):
        policy = attr(dr.spec, "traffic_policy")
        host = attr(dr.spec, "host", "")
        ns = dr.metadata.namespace
        tls = attr(policy, "tls")
        selected = attr(dr.spec, "workload_selector") is not None
        if _unverified(tls, selected):
            yield ctx.message("IST0128", dr, full_name(dr), ns, tls.mode, host,
                              path=("spec", "trafficPolicy", "tls", "mode"))
        for i, p in enumerate(attr(policy, "port_level_settings", ())):
            ptls = attr(p, "tls")
            if _unverified(ptls, selected):
                # Istio prints the PortSelector proto as text: `number:443`.
                port = attr(attr(p, "port"), "number")
                yield ctx.message("IST0129", dr, full_name(dr), ns, ptls.mode, host,
                                  f"number:{port}" if port is not None else "",
                                  path=("spec", "trafficPolicy", "portLevelSettings", i, "tls", "mode"))


def subsets_select_pods(ctx: AnalysisContext) -> Iterator[Message]:
    for dr in ctx.of_kind("DestinationRule"):
        host = attr(dr.spec, "host", "")
        service = ctx.find_service(dr.metadata.namespace, host)
        if service is None:
            yield ctx.message("IST0174", dr, host, path=("spec", "host"))
            continue
        for i, subset in enumerate(attr(dr.spec, "subsets", ())):
            selector = {**service.selector, **(attr(subset, "labels", {}) or {})}
            if not any(selects(selector, w.labels) for w in ctx.workloads):
                yield ctx.message("IST0173", dr, attr(subset, "name", ""), path=("spec", "subsets", i, "name"))
