"""VirtualService rules (istiod's ValidateVirtualService and validateHTTPRoute)."""

from __future__ import annotations

import json
from typing import Any

from ketch.model.common import StringMatch
from ketch.model.resource import Resource
from ketch.model.validation import checks
from ketch.model.validation.context import Ctx
from ketch.model.validation.httproute import http_route
from ketch.model.validation.paths import Path
from ketch.model.validation.routing import export_to, gateway_names, route_destinations
from ketch.model.virtualservice import TLSMatchAttributes, VirtualService

MESH = "mesh"


def validate_virtual_service(resource: Resource, ctx: Ctx) -> None:
    vs: VirtualService = resource.spec  # type: ignore[assignment]
    spec = Path("spec")
    delegate = not vs.hosts
    if delegate:
        if vs.gateways:
            ctx.error(spec / "gateways", "delegate virtual service must have no gateways specified")
        if vs.tls:
            ctx.error(spec / "tls", "delegate virtual service must have no tls route specified")
        if vs.tcp:
            ctx.error(spec / "tcp", "delegate virtual service must have no tcp route specified")
    applies_to_gateway = bool(vs.gateways) and MESH not in vs.gateways
    applies_to_mesh = not vs.gateways or MESH in vs.gateways
    gateway_names(ctx, spec / "gateways", vs.gateways)
    sni = any(m.sni_hosts for t in vs.tls for m in t.match)

    all_valid = True
    for i, host in enumerate(vs.hosts):
        err = checks.wildcard_domain(host)
        if applies_to_gateway and sni and host.startswith("outbound_."):
            err = None
        if err and not checks.is_ip(host):
            ctx.error(spec / "hosts" / i, err)
            all_valid = False
        elif not err and applies_to_mesh and host == "*":
            ctx.error(spec / "hosts" / i, "wildcard host * is not allowed for virtual services bound to the mesh gateway")
            all_valid = False
    if all_valid:
        for i, a in enumerate(vs.hosts):
            for b in vs.hosts[i + 1 :]:
                if _host_matches(a, b):
                    ctx.error(spec / "hosts", f"duplicate hosts in virtual service: {a} & {b}")

    if not vs.http and not vs.tcp and not vs.tls:
        ctx.error(spec, "http, tcp or tls must be provided in virtual service")
    for i, route in enumerate(vs.http):
        http_route(ctx, spec / "http" / i, route, delegate, applies_to_gateway)
    for i, tls in enumerate(vs.tls):
        p = spec / "tls" / i
        if not tls.match:
            ctx.error(p / "match", "TLS route must have at least one match condition")
        for j, m in enumerate(tls.match):
            tls_match(ctx, p / "match" / j, m, vs, applies_to_gateway)
        if not tls.route:
            ctx.error(p / "route", "TLS route is required")
        route_destinations(ctx, p / "route", tls.route)
    for i, tcp in enumerate(vs.tcp):
        p = spec / "tcp" / i
        for j, m in enumerate(tcp.match):
            mp = p / "match" / j
            for k, subnet in enumerate(m.destination_subnets):
                ctx.check(mp / "destinationSubnets" / k, checks.ip_subnet(subnet))
            if m.port:
                ctx.port(mp / "port", m.port)
            ctx.labels(mp / "sourceLabels", m.source_labels)
            gateway_names(ctx, mp / "gateways", m.gateways)
        if not tcp.route:
            ctx.error(p / "route", "TCP route is required")
        route_destinations(ctx, p / "route", tcp.route)
    export_to(ctx, spec / "exportTo", vs.export_to)
    unreachable_rules(ctx, spec, vs)


def _host_matches(a: str, b: str) -> bool:
    """Istio's host.Name.Matches: equal, or one wildcard covers the other."""
    if a == b:
        return True
    if a.startswith("*"):
        if b.startswith("*"):
            return a[1:].endswith(b[1:]) or b[1:].endswith(a[1:])
        return b.endswith(a[1:])
    if b.startswith("*"):
        return a.endswith(b[1:])
    return False


def tls_match(ctx: Ctx, path: Path, m: TLSMatchAttributes, vs: VirtualService, gateway: bool) -> None:
    if not m.sni_hosts:
        ctx.error(path / "sniHosts", "TLS match must have at least one SNI host")
    for i, sni in enumerate(m.sni_hosts):
        p = path / "sniHosts" / i
        err = checks.wildcard_domain(sni)
        if gateway and sni.startswith("outbound_."):
            err = None
        if err:
            if checks.is_ip(sni):
                ctx.warn(p, f'using an IP address ("{sni}") goes against SNI spec and most clients do not support this')
            else:
                ctx.error(p, err)
            continue
        if not any(_subset_of(sni, h) for h in vs.hosts):
            ctx.error(p, f'SNI host "{sni}" is not a compatible subset of any of the virtual service hosts: [{", ".join(vs.hosts)}]')
    for i, subnet in enumerate(m.destination_subnets):
        ctx.check(path / "destinationSubnets" / i, checks.ip_subnet(subnet))
    if m.port:
        ctx.port(path / "port", m.port)
    ctx.labels(path / "sourceLabels", m.source_labels)
    gateway_names(ctx, path / "gateways", m.gateways)


def _subset_of(a: str, b: str) -> bool:
    """Istio's host.Name.SubsetOf: every host matching `a` also matches `b`."""
    if b.startswith("*"):
        if a.startswith("*"):
            return a[1:].endswith(b[1:])
        return a.endswith(b[1:])
    return not a.startswith("*") and a == b


def unreachable_rules(ctx: Ctx, spec: Path, vs: VirtualService) -> None:
    """Warnings, as istiod gives them: rules after a catch-all, duplicate matches."""
    for field, routes in (("http", vs.http), ("tcp", vs.tcp), ("tls", vs.tls)):
        seen: dict[str, int] = {}
        empty_at = -1
        for n, route in enumerate(routes):
            name = f'"{route.name}"' if field == "http" and getattr(route, "name", None) else f"#{n}"
            if not route.match:
                if empty_at >= 0:
                    ctx.warn(spec / field / n, f"virtualService rule {name} not used (only the last rule can have no matches)")
                empty_at = n
                continue
            dups = 0
            for m_i, m in enumerate(route.match):
                data = m.to_dict()
                data.pop("name", None)
                key = json.dumps(data, sort_keys=True)
                if key in seen:
                    prior = routes[seen[key]]
                    prior_name = f'"{prior.name}"' if field == "http" and getattr(prior, "name", None) else f"#{seen[key]}"
                    mname = f'"{m.name}"' if field == "http" and getattr(m, "name", None) else f"#{m_i}"
                    ctx.warn(spec / field / n / "match" / m_i, f"virtualService rule {name} match {mname} is not used (duplicate/overlapping match in rule {prior_name})")
                    dups += 1
                else:
                    seen[key] = n
            if dups == len(route.match):
                ctx.warn(spec / field / n, f"virtualService rule {name} not used (all matches used by prior rules)")
    _overlapping_prefixes(ctx, spec, vs)


def _exact_or_prefix(sm: StringMatch | None) -> str:
    if sm is None:
        return ""
    if sm.exact:
        return "exact:" + sm.exact
    if sm.prefix:
        return "prefix:" + sm.prefix
    return ""


def _covers(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """istiod's coveredValidation: does the earlier prefix match `a` take every request of `b`?"""
    if not b["prefix"].startswith(a["prefix"]) or a["port"] != b["port"]:
        return False
    for key in ("method", "authority"):
        if a[key] != b[key] and not a[key].startswith(b[key]):
            return False
    for key in ("headers", "query", "without"):
        if len(a[key]) != len(b[key]):
            return False
        for name, value in a[key].items():
            if name not in b[key] or (value != b[key][name] and not value.startswith(b[key][name])):
                return False
    return True


def _overlapping_prefixes(ctx: Ctx, spec: Path, vs: VirtualService) -> None:
    seen: set[str] = set()
    prefixed: list[dict[str, Any]] = []
    for n, route in enumerate(vs.http):
        for m_i, m in enumerate(route.match):
            data = m.to_dict()
            data.pop("name", None)
            key = json.dumps(data, sort_keys=True)
            if key in seen:
                continue  # duplicates are reported above
            seen.add(key)
            if m.uri is None or not m.uri.prefix:
                continue
            prefixed.append({
                "at": spec / "http" / n / "match" / m_i,
                "route": f'"{route.name}"' if route.name else f"#{n}",
                "match": f'"{m.name}"' if m.name else f"#{m_i}",
                "prefix": m.uri.prefix,
                "port": m.port or 0,
                "method": _exact_or_prefix(m.method) or "exact:GET",
                "authority": _exact_or_prefix(m.authority),
                "headers": {k: _exact_or_prefix(v) for k, v in m.headers.items()},
                "query": {k: _exact_or_prefix(v) for k, v in m.query_params.items()},
                "without": {k: _exact_or_prefix(v) for k, v in m.without_headers.items()},
            })  # fmt: skip
    for i, a in enumerate(prefixed):
        for b in prefixed[i + 1 :]:
            if b["prefix"] != a["prefix"] and _covers(a, b):
                ctx.warn(
                    b["at"],
                    f"virtualService rule {b['route']} match {b['match']} of prefix {b['prefix']} is not used "
                    f"(duplicate/overlapping match in rule {a['match']} of prefix {a['prefix']} on {a['route']})",
                )


RULES = {"VirtualService": [validate_virtual_service]}
