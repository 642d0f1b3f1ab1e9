"""Gateway analyzers: a selector that matches no workload (IST0101), a server port its
workload's Service does not expose (IST0162), and gateways that claim the same selector,
port and host (IST0145)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from typing import Any

from ketch.analyze.context import AnalysisContext, attr, full_name
from ketch.analyze.hosts import host_matches, selector_string, selects
from ketch.analyze.messages import Message


def _selector(gateway: Any) -> dict[str, str]:
    return dict(attr(gateway.spec, "selector", {}) or {})


def _listen_ports(ctx: AnalysisContext, labels: dict[str, str], namespace: str) -> set[int]:
    """Ports a gateway pod is reached on through Services selecting it (TCP only): a Service
    port's numeric targetPort, the port the proxy listens on, else the port itself."""
    ports: set[int] = set()
    for s in ctx.k8s_services:
        if s.namespace != namespace or not s.selector or not selects(s.selector, labels):
            continue
        for p in s.ports:
            if (p.protocol or "TCP").upper() != "TCP":
                continue
            target = int(p.target_port) if p.target_port.isdigit() else 0
            ports.add(target or p.number)
    return ports


def ingress_gateway_ports(ctx: AnalysisContext) -> Iterator[Message]:
    for gw in ctx.of_kind("Gateway"):
        selector = _selector(gw)
        # Istio points at the selector's first label
        at = ("spec", "selector", *sorted(selector)[:1])
        matched = [w for w in ctx.workloads if selects(selector, w.labels)]
        if not matched:
            yield ctx.message("IST0101", gw, "selector", selector_string(selector), path=at)
            continue
        ports: set[int] = set()
        for w in matched:
            ports |= _listen_ports(ctx, dict(w.labels), w.namespace)
        for server in attr(gw.spec, "servers", ()):
            number = attr(attr(server, "port"), "number")
            if number is not None and number not in ports:
                yield ctx.message("IST0162", gw, number, selector_string(selector), path=at)


def conflicting_gateways(ctx: AnalysisContext) -> Iterator[Message]:
    # (selector, port) -> gateway full name -> hosts of its server on that port
    claims: dict[tuple[str, str], dict[str, list[str]]] = defaultdict(dict)
    gateways = sorted(ctx.of_kind("Gateway"), key=full_name)
    for gw in gateways:
        sel = selector_string(_selector(gw))
        for server in attr(gw.spec, "servers", ()):
            port = str(attr(attr(server, "port"), "number", ""))
            claims[(sel, port)][full_name(gw)] = list(attr(server, "hosts", ()))
    for gw in gateways:
        name = full_name(gw)
        sel = selector_string(_selector(gw))
        for server in attr(gw.spec, "servers", ()):
            port = str(attr(attr(server, "port"), "number", ""))
            hosts = list(attr(server, "hosts", ()))
            conflicts = [
                other
                for other, other_hosts in sorted(claims[(sel, port)].items())
                for h in hosts
                if other != name and any(host_matches(h, o) for o in other_hosts)
            ]
            if conflicts:
                yield ctx.message("IST0145", gw, ",".join(conflicts), sel, port, ",".join(hosts))
