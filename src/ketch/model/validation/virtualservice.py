"""VirtualService rules (istiod's ValidateVirtualService and validateHTTPRoute)."""

from __future__ import annotations

import json
from collections.abc import Mapping

from ketch.model.common import Destination, StringMatch
from ketch.model.resource import Resource
from ketch.model.validation import checks
from ketch.model.validation.context import Ctx
from ketch.model.validation.paths import Path
from ketch.model.virtualservice import (
    Headers,
    HTTPMatchRequest,
    HTTPRoute,
    HTTPRouteDestination,
    RouteDestination,
    TLSMatchAttributes,
    VirtualService,
)

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


def _weights(ctx: Ctx, path: Path, routes: tuple[HTTPRouteDestination, ...] | tuple[RouteDestination, ...]) -> None:
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
    _weights(ctx, path, routes)


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


def http_match(ctx: Ctx, path: Path, m: HTTPMatchRequest, root: bool) -> None:
    if not root:
        for name, hm in m.headers.items():
            ctx.check((path / "headers").key(name), _header_or_claim(name))
            string_match(ctx, (path / "headers").key(name), hm, "headers")
        for field in ("uri", "scheme", "method", "authority"):
            string_match(ctx, path / field, getattr(m, field), field)
        for name, qp in m.query_params.items():
            string_match(ctx, (path / "queryParams").key(name), qp, "queryParams")
        for name, hm in m.without_headers.items():
            ctx.check((path / "withoutHeaders").key(name), _header_or_claim(name))
            string_match(ctx, (path / "withoutHeaders").key(name), hm, "withoutHeaders")
    else:
        for field in ("uri", "scheme", "method", "authority"):
            sm = getattr(m, field)
            if sm is not None and sm.regex is not None:
                ctx.error(path / field, f"{'url' if field == 'uri' else field} match does not support regex match for delegating")
        for group, label in (("headers", "header"), ("queryParams", "query param"), ("withoutHeaders", "withoutHeaders")):
            values: Mapping[str, StringMatch] = getattr(m, {"queryParams": "query_params", "withoutHeaders": "without_headers"}.get(group, group))
            for name, sm in values.items():
                if sm.regex is not None:
                    ctx.error((path / group).key(name), f"{label} match {name} does not support regex match for delegating")
    if m.port:
        ctx.port(path / "port", m.port)
    ctx.labels(path / "sourceLabels", m.source_labels)
    gateway_names(ctx, path / "gateways", m.gateways)
    if m.source_namespace and not checks.is_dns1123_label(m.source_namespace):
        ctx.error(path / "sourceNamespace", f"sourceNamespace match {m.source_namespace} is invalid")


def _header_or_claim(name: str) -> str | None:
    if name.startswith("@request.auth.claims"):
        return None
    return checks.header_name(name)


def http_route(ctx: Ctx, path: Path, route: HTTPRoute, delegate_vs: bool, gateway: bool) -> None:
    root = route.delegate is not None and not delegate_vs
    if root:
        if route.redirect is not None:
            ctx.error(path / "redirect", f"root HTTP route {route.name or ''} must not specify redirect")
        if route.route:
            ctx.error(path / "route", f"root HTTP route {route.name or ''} must not specify route")
    else:
        if delegate_vs and route.delegate is not None:
            ctx.error(path / "delegate", "delegate HTTP route cannot contain delegate")
        _conflicts(ctx, path, route)
    if route.mirror is not None and route.mirrors:
        ctx.error(path / "mirrors", "HTTP route cannot contain both mirror and mirrors")
    for i, m in enumerate(route.match):
        http_match(ctx, path / "match" / i, m, root or delegate_vs)
        if not gateway:
            for name in (*m.headers, *m.without_headers):
                if name.startswith("@request.auth.claims"):
                    ctx.error(path / "match" / i, f"JWT claim based routing (key: {name}) is only supported for gateway, found no gateways: []")
    headers(ctx, path / "headers", route.headers)
    _cors(ctx, path / "corsPolicy", route)
    _fault(ctx, path / "fault", route)
    if route.mirror_percent is not None:
        if route.mirror_percent > 100:
            ctx.error(path / "mirrorPercent", f"mirror_percent must have a max value of 100 (it has {route.mirror_percent})")
        ctx.warn(path / "mirrorPercent", 'using deprecated setting "mirrorPercent", use "mirrorPercentage" instead')
    if route.mirror_percentage is not None and route.mirror_percentage.value is not None:
        v = route.mirror_percentage.value
        if v > 100:
            ctx.error(path / "mirrorPercentage", f"mirror_percentage must have a max value of 100 (it has {v:f})")
        if v < 0:
            ctx.error(path / "mirrorPercentage", f"mirror_percentage must have a min value of 0 (it has {v:f})")
    destination(ctx, path / "mirror", route.mirror)
    for i, mirror in enumerate(route.mirrors):
        mp = path / "mirrors" / i
        if mirror.destination is None:
            ctx.error(mp / "destination", "destination is required for mirrors")
            continue
        destination(ctx, mp / "destination", mirror.destination)
        if mirror.percentage is not None and mirror.percentage.value is not None:
            v = mirror.percentage.value
            if v > 100:
                ctx.error(mp / "percentage", f"mirror percentage must have a max value of 100 (it has {v:f})")
            if v < 0:
                ctx.error(mp / "percentage", f"mirror percentage must have a min value of 0 (it has {v:f})")
    _redirect(ctx, path / "redirect", route)
    _retries(ctx, path / "retries", route)
    _rewrite(ctx, path / "rewrite", route)
    _direct_response(ctx, path / "directResponse", route)
    for i, r in enumerate(route.route):
        rp = path / "route" / i
        if r.destination is None:
            ctx.error(rp / "destination", "destination is required")
        headers(ctx, rp / "headers", r.headers)
        destination(ctx, rp / "destination", r.destination)
    _weights(ctx, path / "route", route.route)
    ctx.duration(path / "timeout", route.timeout)


def _conflicts(ctx: Ctx, path: Path, r: HTTPRoute) -> None:
    if r.redirect is not None:
        if r.route:
            ctx.error(path, "HTTP route cannot contain both route and redirect")
        if r.fault is not None:
            ctx.error(path, "HTTP route cannot contain both fault and redirect")
        if r.rewrite is not None:
            ctx.error(path, "HTTP route rule cannot contain both rewrite and redirect")
        if r.direct_response is not None:
            ctx.error(path, "HTTP route rule cannot contain both direct_response and redirect")
    elif r.direct_response is not None:
        if r.route:
            ctx.error(path, "HTTP route cannot contain both route and direct_response")
        if r.fault is not None:
            ctx.error(path, "HTTP route cannot contain both fault and direct_response")
        if r.rewrite is not None:
            ctx.error(path, "HTTP route rule cannot contain both rewrite and direct_response")
    elif not r.route:
        ctx.error(path, "HTTP route, redirect or direct_response is required")


def _cors(ctx: Ctx, path: Path, r: HTTPRoute) -> None:
    c = r.cors_policy
    if c is None:
        return
    for i, origin in enumerate(c.allow_origins):
        value = origin.exact or origin.prefix or origin.regex or ""
        if not value:
            ctx.error(path / "allowOrigins" / i, f"'{value}' is not a valid match type for CORS allow origins")
        elif origin.regex is not None:
            ctx.check(path / "allowOrigins" / i / "regex", checks.regex(origin.regex, "corsPolicy.allowOrigins"))
    for i, method in enumerate(c.allow_methods):
        if method not in checks.HTTP_METHODS:
            ctx.error(path / "allowMethods" / i, f'"{method}" is not a supported HTTP method')
    for field, values in (("allowHeaders", c.allow_headers), ("exposeHeaders", c.expose_headers)):
        for i, name in enumerate(values):
            if name != "*":
                ctx.check(path / field / i, checks.header_name(name))
    if c.max_age is not None:
        err = checks.duration(c.max_age)
        ctx.check(path / "maxAge", err)
        if not err and c.max_age.endswith("ms"):
            ctx.error(path / "maxAge", "max_age duration is accurate only to seconds precision")
    if c.allow_origin:
        ctx.warn(path / "allowOrigin", 'using deprecated setting "allowOrigin", use "allowOrigins" instead')


def _percentage(ctx: Ctx, path: Path, value: float | None) -> None:
    if value is None:
        return
    if value < 0 or value > 100 or (0 < value < 0.0001):
        ctx.error(path, f"percentage {value:g} is neither 0.0, nor in range [0.0001, 100.0]")


def _fault(ctx: Ctx, path: Path, r: HTTPRoute) -> None:
    f = r.fault
    if f is None:
        return
    if f.abort is None and f.delay is None:
        ctx.error(path, "HTTP fault injection must have an abort and/or a delay")
    if f.abort is not None:
        a = f.abort
        ap = path / "abort"
        if a.percentage is not None:
            _percentage(ctx, ap / "percentage" / "value", a.percentage.value)
        kinds = [k for k in ("http_status", "grpc_status", "http2_error") if getattr(a, k) is not None]
        if len(kinds) > 1:
            ctx.error(ap, "only one of httpStatus, grpcStatus or http2Error may be set")
        if a.grpc_status is not None:
            if a.grpc_status not in checks.GRPC_STATUS:
                ctx.error(ap / "grpcStatus", f"gRPC status \"{a.grpc_status}\" is not supported. See https://github.com/grpc/grpc/blob/master/doc/statuscodes.md for a list of supported codes, for example 'NOT_FOUND'")
        elif a.http2_error is not None:
            ctx.error(ap / "http2Error", "HTTP/2 abort fault injection not supported yet")
        elif a.http_status is not None:
            ctx.check(ap / "httpStatus", http_status(a.http_status))
        else:
            ctx.warn(ap, "abort configured, but error type not set")
    if f.delay is not None:
        d = f.delay
        dp = path / "delay"
        if d.percentage is not None:
            _percentage(ctx, dp / "percentage" / "value", d.percentage.value)
        if d.percent is not None and not 0 <= d.percent <= 100:
            ctx.error(dp / "percent", f"percentage {d.percent} is not in range 0..100")
        if d.fixed_delay is not None and d.exponential_delay is not None:
            ctx.error(dp, "only one of fixedDelay or exponentialDelay may be set")
        if d.fixed_delay is not None:
            ctx.duration(dp / "fixedDelay", d.fixed_delay)
        elif d.exponential_delay is not None:
            ctx.duration(dp / "exponentialDelay", d.exponential_delay)
            ctx.error(dp / "exponentialDelay", "exponentialDelay not supported yet")
        else:
            ctx.error(dp, "delay must specify fixedDelay")


def http_status(status: int) -> str | None:
    if status < 200 or status > 600:
        return f"HTTP status {status} is not in range 200-599"
    return None


def _redirect(ctx: Ctx, path: Path, r: HTTPRoute) -> None:
    rd = r.redirect
    if rd is None:
        return
    if not rd.uri and not rd.authority and rd.port is None and rd.derive_port is None and not rd.scheme:
        ctx.error(path, "redirect must specify URI, authority, scheme, or port")
    if rd.port is not None and rd.derive_port is not None:
        ctx.error(path, "only one of port or derivePort may be set")
    if rd.redirect_code:
        if not 300 <= rd.redirect_code <= 399:
            ctx.error(path / "redirectCode", f"{rd.redirect_code} is not a valid redirect code, must be 3xx")
    if rd.scheme and rd.scheme not in ("http", "https"):
        ctx.error(path / "scheme", 'invalid redirect scheme, must be "http" or "https"')
    if rd.port is not None:
        ctx.port(path / "port", rd.port)


def _retries(ctx: Ctx, path: Path, r: HTTPRoute) -> None:
    rt = r.retries
    if rt is None:
        return
    attempts = rt.attempts or 0
    if attempts < 0:
        ctx.error(path / "attempts", "attempts cannot be negative")
    if attempts == 0 and (rt.per_try_timeout is not None or rt.retry_on or rt.retry_remote_localities is not None):
        ctx.error(path, "http retry policy configured when attempts are set to 0 (disabled)")
    ctx.duration(path / "perTryTimeout", rt.per_try_timeout)
    ctx.duration(path / "backoff", rt.backoff)
    if rt.retry_on:
        for policy in rt.retry_on.split(","):
            code = int(policy) if policy.isdigit() else 0
            if code not in checks.HTTP_STATUS_CODES and policy not in checks.RETRY_ON:
                ctx.error(path / "retryOn", f'"{policy}" is not a valid retryOn policy')


def _rewrite(ctx: Ctx, path: Path, r: HTTPRoute) -> None:
    rw = r.rewrite
    if rw is None:
        return
    if rw.uri and rw.uri_regex_rewrite is not None:
        ctx.error(path, "rewrite may only contain one of URI or UriRegexRewrite")
    elif not rw.uri and rw.uri_regex_rewrite is None and not rw.authority:
        ctx.error(path, "rewrite must specify at least one of URI, UriRegexRewrite, or authority. Only one of URI or UriRegexRewrite may be specified")
    rr = rw.uri_regex_rewrite
    if rr is not None:
        if not rr.match or not rr.rewrite:
            ctx.error(path / "uriRegexRewrite", "UriRegexRewrite has errors: UriRegexRewrite requires both Rewrite and Match fields to be specified")
        else:
            err = checks.regex(rr.match, "HTTPRewrite.UriRegexRewrite.Match")
            if err:
                ctx.error(path / "uriRegexRewrite" / "match", f"UriRegexRewrite has errors: {err}")
    authority = rw.authority or ""
    if r.headers is not None and r.headers.request is not None:
        for op in (r.headers.request.set, r.headers.request.add):
            for k, v in op.items():
                if k.lower() in (":authority", "host"):
                    if authority:
                        ctx.error(Path(str(path).rsplit(".", 1)[0]) / "headers", f'authority header cannot be set multiple times: have "{authority}", attempting to set "{v}"')
                    authority = v


def _direct_response(ctx: Ctx, path: Path, r: HTTPRoute) -> None:
    dr = r.direct_response
    if dr is None:
        return
    if dr.body is not None:
        if dr.body.string is not None and dr.body.bytes is not None:
            ctx.error(path / "body", "only one of string or bytes may be set")
        size = len((dr.body.string or "").encode()) + len(dr.body.bytes or "") * 3 // 4
        if size > 1024 * 1024:
            ctx.error(path / "body", "large direct_responses may impact control plane performance, must be less than 1MB")
        elif size > 100 * 1024:
            ctx.warn(path / "body", "large direct_responses may impact control plane performance")
    ctx.check(path / "status", http_status(dr.status or 0))


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


RULES = {"VirtualService": [validate_virtual_service]}
