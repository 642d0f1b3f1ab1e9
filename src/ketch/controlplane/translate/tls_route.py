"""SNI routing for TLS that Ketch does not terminate: VirtualService `tls` rules on sidecar
TLS/HTTPS ports, and Gateway servers in TLS PASSTHROUGH mode. The proxy peeks at the
ClientHello (tls_inspector) and picks the filter chain by `server_names`."""

from __future__ import annotations

from typing import Any

from envoy.config.listener.v3 import listener_components_pb2 as lc
from envoy.config.listener.v3 import listener_pb2
from envoy.extensions.filters.listener.tls_inspector.v3 import tls_inspector_pb2

from ketch.controlplane.translate import listener as lds
from ketch.controlplane.translate import route as rds
from ketch.controlplane.translate.route_match import MatchContext, applies, gateway_names
from ketch.controlplane.translate.scope import ProxyScope
from ketch.controlplane.translate.util import attr, host_matches, seq

TLS_INSPECTOR = "envoy.filters.listener.tls_inspector"
Weighted = list[tuple[str, int]]


def sni_rules(vs: Any, ctx: MatchContext, scope: ProxyScope,
              allowed_hosts: tuple[str, ...] = ()) -> list[tuple[list[str], Weighted]]:
    """(server names, weighted clusters) per applicable `tls` rule, in order."""
    ns = vs.metadata.namespace or "default"
    rctx = rds.RouteContext(scope.snapshot, ctx)
    out = []
    for rule in seq(attr(vs.spec, "tls")):
        names: list[str] = []
        for m in seq(attr(rule, "match")):
            if applies(m, ctx, ns):
                names += [str(h) for h in seq(attr(m, "sni_hosts"))
                          if not allowed_hosts or any(host_matches(a, str(h)) or
                                                      host_matches(str(h), a) for a in allowed_hosts)]
        if not names:
            continue
        dests = seq(attr(rule, "route"))
        weighted = [(rds.destination_cluster(d.destination, ns, rctx),
                     int(attr(d, "weight") or (100 if len(dests) == 1 else 0))) for d in dests]
        weighted = [(c, w) for c, w in weighted if w > 0]
        if weighted:
            out.append((sorted(set(names)), weighted))
    return out


def sni_listener(name: str, ip: str, port: int, rules: list[tuple[list[str], Weighted]],
                 fallback: Weighted | None, bind: bool) -> listener_pb2.Listener:
    chains = []
    for names, weighted in rules:
        stat = weighted[0][0] if len(weighted) == 1 else name
        chains.append(lc.FilterChain(
            filter_chain_match=lc.FilterChainMatch(server_names=names),
            filters=[lds.tcp_proxy_filter(stat, weighted=weighted)]))
    if fallback:
        stat = fallback[0][0] if len(fallback) == 1 else name
        chains.append(lc.FilterChain(filters=[lds.tcp_proxy_filter(stat, weighted=fallback)]))
    out = lds.listener(name, ip, port, chains, bind=bind)
    out.listener_filters.append(lc.ListenerFilter(
        name=TLS_INSPECTOR, typed_config=lds.pack(tls_inspector_pb2.TlsInspector())))
    return out


def gateway_passthrough(scope: ProxyScope, port: int, servers: list,
                        gateways: frozenset[str]) -> listener_pb2.Listener | None:
    """A PASSTHROUGH TLS server: SNI chains from the bound VirtualServices' `tls` rules."""
    hosts = tuple(str(h).partition("/")[2] or str(h) for _, s in servers for h in seq(attr(s, "hosts")))
    ctx = scope.match_context(port, gateways)
    rules: list[tuple[list[str], Weighted]] = []
    for vs in scope.snapshot.virtual_services:
        if gateway_names(vs) & gateways and scope.snapshot.vs_visible(vs, scope.proxy.namespace):
            rules += sni_rules(vs, ctx, scope, hosts)
    if not rules:
        return None
    return sni_listener(f"0.0.0.0_{port}", "0.0.0.0", port, rules, None, bind=True)
