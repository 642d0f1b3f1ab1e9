"""Checks shared by route-carrying kinds: destinations, weights, gateway names, exportTo,
header operations and string matches (istiod's validation.go helpers)."""

from __future__ import annotations

from ketch.model.common import Destination, StringMatch
from ketch.model.validation import checks
from ketch.model.validation.context import Ctx
from ketch.model.validation.paths import Path
from ketch.model.virtualservice import Headers, HTTPRouteDestination, RouteDestination


def gateway_names(ctx: Ctx, path: Path, names: tuple[str, ...]) -> None:
    for i, name in enumerate(names):
        p = path / i
        ns, slash, gw = name.partition("/")
        if not slash:
            if "." in name:
                parts = name.split(".")
                ctx.warn(p, f'using legacy gatewayName format "{name}"; prefer the <namespace>/<name> format: "{parts[1]}/{parts[0]}"')
            ctx.check(p, checks.fqdn(name))
            continue
        if not ns or not gw:
            ctx.error(p, "config namespace and gateway name cannot be empty")
        if not checks.is_dns1123_label(ns):
            ctx.error(p, f'invalid value for namespace: "{ns}"')
        if not checks.is_dns1123_label(gw):
            ctx.error(p, f'invalid value for gateway name: "{gw}"')


def export_to(ctx: Ctx, path: Path, values: tuple[str, ...], *, service_entry: bool = False, dr_selector: bool = False) -> None:
    if not values:
        return
    seen: set[str] = set()
    for i, value in enumerate(values):
        key = ctx.namespace if value == "." else value
        if key in seen:
            if key != value:
                ctx.error(path / i, f"duplicate entries in exportTo: . and current namespace {ctx.namespace}")
            else:
                ctx.error(path / i, f"duplicate entries in exportTo for entry {value}")
            continue
        if value == "~" and service_entry:
            seen.add(key)
        elif key not in ("*", ".") and not checks.is_dns1123_label(key):
            ctx.error(path / i, f"only . or * or a valid DNS 1123 label is allowed as exportTo entry, got {value}")
        else:
            seen.add(key)
    if dr_selector and seen:
        if ctx.namespace in seen:
            if len(seen) > 1:
                ctx.error(path, "destination rule with workload selector cannot have multiple entries in exportTo")
        else:
            ctx.error(path, "destination rule with workload selector cannot have exportTo beyond current namespace")
    if "*" in seen and len(values) > 1:
        ctx.error(path, "cannot have both public (*) and non-public exportTo values for a resource")
    if "~" in seen and len(values) > 1:
        ctx.error(path, "cannot export service entry to no one (~) and someone")


def destination(ctx: Ctx, path: Path, dest: Destination | None) -> None:
    if dest is None:
        return
    host = dest.host or ""
    if host == "*":
        ctx.error(path / "host", f"invalid destination host {host}")
    else:
        ctx.check(path / "host", checks.wildcard_domain(host))
    if dest.subset is not None:
        ctx.check(path / "subset", subset_name(dest.subset))
    if dest.port is not None:
        ctx.port(path / "port" / "number", dest.port.number)


def subset_name(name: str) -> str | None:
    if not name:
        return "subset name cannot be empty"
    if not checks.is_dns1123_label(name):
        return f"subset name is invalid: {name}"
    return None


def weights(ctx: Ctx, path: Path, routes: tuple[HTTPRouteDestination, ...] | tuple[RouteDestination, ...]) -> None:
    total = 0
    for i, r in enumerate(routes):
        w = r.weight or 0
        if w < 0:
            ctx.error(path / i / "weight", f"weight {w} < 0")
        elif w > 100:
            ctx.error(path / i / "weight", f"weight {w} > 100")
        total += w
    if len(routes) > 1 and total == 0:
        ctx.error(path, "total destination weight = 0")
    elif len(routes) > 1 and total != 100:
        ctx.error(path, f"total destination weight {total} != 100")


def route_destinations(ctx: Ctx, path: Path, routes: tuple[RouteDestination, ...]) -> None:
    for i, r in enumerate(routes):
        if r.destination is None:
            ctx.error(path / i / "destination", "destination is required")
        destination(ctx, path / i / "destination", r.destination)
    weights(ctx, path, routes)


def headers(ctx: Ctx, path: Path, h: Headers | None) -> None:
    if h is None:
        return
    for side, ops in (("request", h.request), ("response", h.response)):
        if ops is None:
            continue
        p = path / side
        allow_authority = side == "request"
        for op in ("add", "set"):
            for name, value in getattr(ops, op).items():
                ctx.check((p / op).key(name), checks.header_operation_name(name, allow_authority=allow_authority))
                ctx.check((p / op).key(name), checks.header_value(value))
        for i, name in enumerate(ops.remove):
            ctx.check(p / "remove" / i, checks.header_operation_name(name, allow_authority=False))


def string_match(ctx: Ctx, path: Path, sm: StringMatch | None, where: str) -> None:
    if sm is None:
        return
    set_fields = [f for f in ("exact", "prefix", "regex") if getattr(sm, f) is not None]
    if len(set_fields) > 1:
        ctx.error(path, f"only one of exact, prefix or regex may be set, got {', '.join(set_fields)}")
    if sm.regex is not None:
        if sm.regex == "":
            ctx.error(path / "regex", f'"{where}": regex string match should not be empty')
        else:
            ctx.check(path / "regex", checks.regex(sm.regex, where))


