"""Deprecation analyzer: fields Istio deprecated (IST0002), worded as Istio words them."""

from __future__ import annotations

from collections.abc import Iterator

from ketch.analyze.context import AnalysisContext, attr
from ketch.analyze.messages import Message


def replaced(deprecated: str, replacement: str) -> str:
    return f"{deprecated} is deprecated; use {replacement}"


def ignored(field: str) -> str:
    return f"{field} ignored"


def deprecated_fields(ctx: AnalysisContext) -> Iterator[Message]:
    for vs in ctx.of_kind("VirtualService"):
        for i, rule in enumerate(attr(vs.spec, "http", ())):
            if attr(attr(attr(rule, "fault"), "delay"), "percent", 0):
                yield ctx.message("IST0002", vs, replaced("HTTPRoute.fault.delay.percent",
                                                          "HTTPRoute.fault.delay.percentage"),
                                  path=("spec", "http", i, "fault", "delay", "percent"))
            if attr(rule, "mirror_percent") is not None:
                yield ctx.message("IST0002", vs, replaced("HTTPRoute.mirror_percent",
                                                          "HTTPRoute.mirror_percentage"),
                                  path=("spec", "http", i, "mirrorPercent"))
    for sc in ctx.of_kind("Sidecar"):
        if attr(attr(sc.spec, "outbound_traffic_policy"), "egress_proxy") is not None:
            yield ctx.message("IST0002", sc, ignored("OutboundTrafficPolicy.EgressProxy"),
                              path=("spec", "outboundTrafficPolicy", "egressProxy"))
    for dr in ctx.of_kind("DestinationRule"):
        policies = [attr(dr.spec, "traffic_policy")]
        policies += [attr(s, "traffic_policy") for s in attr(dr.spec, "subsets", ())]
        policies += [p for tp in list(policies) for p in attr(tp, "port_level_settings", ())]
        for policy in policies:
            consistent_hash = attr(attr(policy, "load_balancer"), "consistent_hash")
            if attr(consistent_hash, "minimum_ring_size") is not None:
                yield ctx.message("IST0002", dr, replaced(
                    "ConsistentHashLB.minimum_ring_size", "ConsistentHashLB.ring_hash.minimum_ring_size"))
