"""PeerAuthentication, RequestAuthentication and AuthorizationPolicy rules (istiod's webhook)."""

from __future__ import annotations

import json
import re
from urllib.parse import urlsplit

from ketch.model.common import PolicyTargetReference, TypeWorkloadSelector
from ketch.model.resource import Resource
from ketch.model.security import AuthorizationPolicy, JWTRule, PeerAuthentication, RequestAuthentication
from ketch.model.validation import checks
from ketch.model.validation.context import Ctx
from ketch.model.validation.destinationrule import workload_selector
from ketch.model.validation.paths import Path

ALLOWED_TARGET_REFS = (("", "Service"), ("networking.istio.io", "ServiceEntry"), ("gateway.networking.k8s.io", "Gateway"))
_TEMPLATE_BAD = re.compile(r"/\{\w+=\*[*]?\}|\{\w*\}|/\*[*]?|\*[*]?/")


def selector_and_target_refs(
    ctx: Ctx,
    selector: TypeWorkloadSelector | None,
    target_ref: PolicyTargetReference | None,
    target_refs: tuple[PolicyTargetReference, ...],
) -> None:
    spec = Path("spec")
    if sum((selector is not None, target_ref is not None, bool(target_refs))) > 1:
        ctx.error(spec, "only one of targetRefs or workloadSelector can be set")
    if selector is not None:
        workload_selector(ctx, spec / "selector", selector.match_labels, "matchLabels")
    if target_ref is not None:
        _target_ref(ctx, spec / "targetRef", target_ref)
    for i, ref in enumerate(target_refs):
        _target_ref(ctx, spec / "targetRefs" / i, ref)


def _target_ref(ctx: Ctx, path: Path, ref: PolicyTargetReference) -> None:
    if not ref.name:
        ctx.error(path / "name", "targetRef name must be set")
    if ref.namespace:
        ctx.error(path / "namespace", "targetRef namespace must not be set; cross namespace referencing is not supported")
    group = ref.group or ""
    if (group if group != "core" else "", ref.kind or "") not in ALLOWED_TARGET_REFS:
        ctx.error(path, f"targetRef must be to one of [/v1/Service networking.istio.io/v1/ServiceEntry gateway.networking.k8s.io/v1/Gateway] but was {group}/{ref.kind or ''}")


# ---- PeerAuthentication ----------------------------------------------------------------


def validate_peer_authentication(resource: Resource, ctx: Ctx) -> None:
    pa: PeerAuthentication = resource.spec  # type: ignore[assignment]
    spec = Path("spec")
    empty_selector = pa.selector is None or not pa.selector.match_labels
    if empty_selector and pa.port_level_mtls:
        ctx.error(spec / "portLevelMtls", "mesh/namespace peer authentication cannot have port level mTLS")
    for port in pa.port_level_mtls:
        if not 0 < port <= 65535:
            ctx.error((spec / "portLevelMtls").key(port), "port must be in range 1..65535")
    if pa.selector is not None:
        workload_selector(ctx, spec / "selector", pa.selector.match_labels, "matchLabels")


# ---- RequestAuthentication -------------------------------------------------------------


def validate_request_authentication(resource: Resource, ctx: Ctx) -> None:
    ra: RequestAuthentication = resource.spec  # type: ignore[assignment]
    selector_and_target_refs(ctx, ra.selector, ra.target_ref, ra.target_refs)
    issuers: set[str] = set()
    for i, rule in enumerate(ra.jwt_rules):
        p = Path("spec") / "jwtRules" / i
        jwt_rule(ctx, p, rule)
        if rule.issuer and rule.issuer in issuers:
            ctx.warn(p / "issuer", f"duplicate issuer {rule.issuer}")
        issuers.add(rule.issuer or "")


def jwt_rule(ctx: Ctx, path: Path, rule: JWTRule) -> None:
    if not rule.issuer:
        ctx.error(path / "issuer", "issuer must be set")
    for i, aud in enumerate(rule.audiences):
        if not aud:
            ctx.error(path / "audiences" / i, "audience must be non-empty string")
    if rule.jwks_uri:
        scheme = urlsplit(rule.jwks_uri).scheme
        if scheme not in ("http", "https"):
            ctx.error(path / "jwksUri", f'URI scheme "{scheme}" is not supported')
    if rule.jwks_uri and rule.jwks:
        ctx.warn(path / "jwks", "jwks and jwksUri are both set: jwks is used")
    if rule.jwks:
        try:
            keys = json.loads(rule.jwks)
            if not isinstance(keys, dict) or not ("keys" in keys or "kty" in keys):
                raise ValueError("missing keys")
        except ValueError as exc:
            ctx.error(path / "jwks", f"jwks parse error: {exc}")
    for i, header in enumerate(rule.from_headers):
        if not header.name:
            ctx.error(path / "fromHeaders" / i / "name", "location header name must be non-empty string")
    for i, param in enumerate(rule.from_params):
        if not param:
            ctx.error(path / "fromParams" / i, "location query must be non-empty string")
    for i, cookie in enumerate(rule.from_cookies):
        if not cookie:
            ctx.error(path / "fromCookies" / i, "cookie name must be non-empty string")
    for i, ch in enumerate(rule.output_claim_to_headers):
        p = path / "outputClaimToHeaders" / i
        if not ch.claim or not ch.header:
            ctx.error(p, "outputClaimToHeaders header and claim value must be non-empty string")
            continue
        ctx.check(p / "header", checks.header_name(ch.header))
    ctx.duration(path / "timeout", rule.timeout)


# ---- AuthorizationPolicy ---------------------------------------------------------------

_SOURCE_FIELDS = (
    ("principals", "Principals"), ("request_principals", "RequestPrincipals"), ("namespaces", "Namespaces"),
    ("ip_blocks", "IpBlocks"), ("remote_ip_blocks", "RemoteIpBlocks"), ("not_principals", "NotPrincipals"),
    ("not_request_principals", "NotRequestPrincipals"), ("not_namespaces", "NotNamespaces"),
    ("not_ip_blocks", "NotIpBlocks"), ("not_remote_ip_blocks", "NotRemoteIpBlocks"),
    ("service_accounts", "ServiceAccounts"), ("not_service_accounts", "NotServiceAccounts"),
)  # fmt: skip
_OPERATION_FIELDS = (
    ("ports", "Ports"), ("methods", "Methods"), ("paths", "Paths"), ("hosts", "Hosts"),
    ("not_ports", "NotPorts"), ("not_methods", "NotMethods"), ("not_paths", "NotPaths"), ("not_hosts", "NotHosts"),
)  # fmt: skip
_TCP_SOURCE = ("principals", "not_principals", "ip_blocks", "not_ip_blocks", "namespaces", "not_namespaces", "remote_ip_blocks", "not_remote_ip_blocks")


def _camel(snake: str) -> str:
    head, *rest = snake.split("_")
    return head + "".join(w.title() for w in rest)


def validate_authorization_policy(resource: Resource, ctx: Ctx) -> None:
    ap: AuthorizationPolicy = resource.spec  # type: ignore[assignment]
    spec = Path("spec")
    selector_and_target_refs(ctx, ap.selector, ap.target_ref, ap.target_refs)
    action = ap.action or "ALLOW"
    if action == "CUSTOM":
        if not ap.rules:
            ctx.error(spec / "rules", "CUSTOM action without `rules` is meaningless as it will never be triggered, add an empty rule `{}` if you want it be triggered for every request")
        elif ap.provider is None or not ap.provider.name:
            ctx.error(spec / "provider" / "name", "`provider.name` must not be empty")
        for i, rule in enumerate(ap.rules):
            for j, f in enumerate(rule.from_):
                if f.source is None:
                    continue
                for attr, label in (("namespaces", "From.Namespaces"), ("not_namespaces", "From.NotNamespaces"), ("principals", "From.Principals"), ("not_principals", "From.NotPrincipals"), ("request_principals", "From.RequestPrincipals"), ("not_request_principals", "From.NotRequestPrincipals")):
                    if getattr(f.source, attr):
                        ctx.error(spec / "rules" / i / "from" / j / "source" / _camel(attr), f"{label} is currently not supported with CUSTOM action")
            for j, cond in enumerate(rule.when):
                key = cond.key or ""
                if key in ("source.namespace", "source.principal") or key.startswith("request.auth."):
                    ctx.error(spec / "rules" / i / "when" / j / "key", f"{key} is currently not supported with CUSTOM action")
    if ap.provider is not None and action != "CUSTOM":
        ctx.error(spec / "provider", f"`provider` must not be with non CUSTOM action, found {action}")
    if action == "DENY" and not ap.rules:
        ctx.error(spec / "rules", "DENY action without `rules` is meaningless as it will never be triggered, add an empty rule `{}` if you want it be triggered for every request")
    for i, rule in enumerate(ap.rules):
        rp = spec / "rules" / i
        tcp_from = tcp_to = from_exists = to_exists = False
        for j, f in enumerate(rule.from_):
            fp = rp / "from" / j
            if f.source is None:
                ctx.error(fp / "source", f"`from.source` must not be nil, found at rule {i}")
                continue
            from_exists = True
            src = f.source
            if not any(getattr(src, attr) for attr, _ in _SOURCE_FIELDS):
                ctx.error(fp / "source", f"`from.source` must not be empty, found at rule {i}")
            for attr in ("ip_blocks", "not_ip_blocks", "remote_ip_blocks", "not_remote_ip_blocks"):
                for k, value in enumerate(getattr(src, attr)):
                    ctx.check(fp / "source" / _camel(attr) / k, checks.ip_or_cidr(value) if value else None)
            for attr, label in _SOURCE_FIELDS:
                for k, value in enumerate(getattr(src, attr)):
                    if value == "":
                        ctx.error(fp / "source" / _camel(attr) / k, f"empty value not allowed, found in {label}")
            for attr in ("principals", "not_principals", "request_principals", "not_request_principals", "namespaces", "not_namespaces"):
                for k, value in enumerate(getattr(src, attr)):
                    ctx.check(fp / "source" / _camel(attr) / k, _wildcard_value(value, attr))
            if (src.service_accounts or src.not_service_accounts) and (
                src.principals or src.not_principals or src.namespaces or src.not_namespaces
            ):
                ctx.error(fp / "source", "Cannot set serviceAccounts with namespaces or principals")
            if any(getattr(src, attr) for attr in _TCP_SOURCE):
                tcp_from = True
        for j, t in enumerate(rule.to):
            tp = rp / "to" / j
            if t.operation is None:
                ctx.error(tp / "operation", f"`to.operation` must not be nil, found at rule {i}")
                continue
            to_exists = True
            op = t.operation
            if not any(getattr(op, attr) for attr, _ in _OPERATION_FIELDS):
                ctx.error(tp / "operation", f"`to.operation` must not be empty, found at rule {i}")
            for attr in ("ports", "not_ports"):
                for k, value in enumerate(getattr(op, attr)):
                    if value and (not value.isdigit() or int(value) > 65535):
                        ctx.error(tp / "operation" / _camel(attr) / k, f'bad port ({value}): strconv.ParseUint: parsing "{value}": invalid syntax' if not value.isdigit() else f"bad port ({value}): <nil>")
            for attr, label in _OPERATION_FIELDS:
                for k, value in enumerate(getattr(op, attr)):
                    if value == "":
                        ctx.error(tp / "operation" / _camel(attr) / k, f"empty value not allowed, found in {label}")
            for attr, label in (("paths", "Paths"), ("not_paths", "NotPaths")):
                for k, value in enumerate(getattr(op, attr)):
                    if ("{*}" in value or "{**}" in value) and _TEMPLATE_BAD.search(value):
                        ctx.error(tp / "operation" / _camel(attr) / k, f"invalid or unsupported path template, found in {label}")
            if op.ports or op.not_ports:
                tcp_to = True
        for j, cond in enumerate(rule.when):
            wp = rp / "when" / j
            key = cond.key or ""
            if not key:
                ctx.error(wp / "key", "`key` must not be empty")
                continue
            if not cond.values and not cond.not_values:
                ctx.error(wp, f"at least one of `values` or `notValues` must be set for key {key}")
                continue
            for field, values, label in (("values", cond.values, "value"), ("notValues", cond.not_values, "notValue")):
                err = attribute(key, values)
                if err:
                    ctx.error(wp / field if values else wp / "key", f"invalid `{label}` for `key` {key}: {err}")
        if ((from_exists and not to_exists and not tcp_from) or (to_exists and not tcp_to)) and action == "DENY":
            ctx.warn(rp, "configured AuthorizationPolicy will deny all traffic to TCP ports under its scope due to the use of only HTTP attributes in a DENY rule; it is recommended to explicitly specify the port")
    dry_run = resource.metadata.annotations.get("istio.io/dry-run")
    if dry_run is not None:
        if action not in ("ALLOW", "DENY"):
            ctx.error("metadata.annotations[istio.io/dry-run]", f"the annotation istio.io/dry-run currently only supports action ALLOW/DENY, found action {action} in {resource.namespace}/{resource.name}")
        elif dry_run.lower() not in ("1", "t", "true", "0", "f", "false"):
            ctx.error("metadata.annotations[istio.io/dry-run]", f'{resource.namespace}/{resource.name} has annotation istio.io/dry-run with invalid value ({dry_run}): strconv.ParseBool: parsing "{dry_run}": invalid syntax')


def _wildcard_value(value: str, attr: str) -> str | None:
    """Principals and namespaces match exactly, by prefix (`abc*`), suffix (`*abc`) or presence (`*`)."""
    if value.count("*") > 1 or ("*" in value and not (value.startswith("*") or value.endswith("*"))):
        return f'invalid value "{value}" in {_camel(attr)}: "*" is only supported as a prefix, a suffix or the whole value'
    if attr in ("principals", "not_principals") and value and "*" not in value and "/" in value:
        parts = value.split("/")
        if len(parts) != 5 or parts[1] != "ns" or parts[3] != "sa" or not all(parts):
            return f'invalid principal "{value}": want <trust-domain>/ns/<namespace>/sa/<service-account>'
    if attr in ("namespaces", "not_namespaces") and value and "*" not in value and not checks.is_dns1123_label(value):
        return f'invalid namespace "{value}": must be a DNS-1123 label'
    return None


_ATTRIBUTES = {"source.ip": "ip", "remote.ip": "ip", "destination.ip": "ip", "destination.port": "port", "source.namespace": "", "source.principal": "", "request.auth.principal": "", "request.auth.audiences": "", "request.auth.presenter": "", "connection.sni": ""}


def attribute(key: str, values: tuple[str, ...]) -> str | None:
    """security.ValidateAttribute: is `key` a condition attribute, and are its values well formed?"""
    if "" in values:
        return f"empty value not allowed, found in {key}"
    if key.startswith(("request.headers", "request.auth.claims", "experimental.envoy.filters.")):
        open_ = key.find("[")
        if key.endswith("]") and 0 < open_ < len(key) - 2:
            return None
        return f"bad key ({key}): should have format a[b]"
    if key == "destination.namespace":
        return f"attribute {key} is replaced by the metadata.namespace"
    if key.startswith("destination.labels"):
        return f"attribute {key} is replaced by the workload selector"
    if key in ("destination.name", "destination.user"):
        return f"deprecated attribute {key}: only supported in v1alpha1"
    kind = _ATTRIBUTES.get(key)
    if kind is None:
        return f"unknown attribute: {key}"
    if kind == "ip":
        errs = [e for e in (checks.ip_or_cidr(v) for v in values) if e]
        return "; ".join(errs) or None
    if kind == "port":
        bad = [v for v in values if not v.isdigit() or int(v) > 65535]
        return "; ".join(f"bad port ({v})" for v in bad) or None
    return None


RULES = {
    "PeerAuthentication": [validate_peer_authentication],
    "RequestAuthentication": [validate_request_authentication],
    "AuthorizationPolicy": [validate_authorization_policy],
}
