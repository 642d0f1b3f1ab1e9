"""HTTP route rules of a VirtualService (istiod's validateHTTPRoute and its helpers)."""

from __future__ import annotations

from collections.abc import Mapping

from ketch.model.common import StringMatch
from ketch.model.validation import checks
from ketch.model.validation.context import Ctx
from ketch.model.validation.paths import Path
from ketch.model.validation.routing import destination, gateway_names, headers, string_match, weights
from ketch.model.virtualservice import HTTPMatchRequest, HTTPRoute


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
    weights(ctx, path / "route", route.route)
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


