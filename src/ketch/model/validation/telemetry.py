"""Telemetry, EnvoyFilter, ProxyConfig and WasmPlugin rules (istiod's webhook)."""

from __future__ import annotations

from urllib.parse import urlsplit

from ketch.model.extensions import EnvoyFilter, ProxyConfig, WasmPlugin
from ketch.model.resource import Resource
from ketch.model.telemetry import ProviderRef, Telemetry
from ketch.model.validation.context import Ctx
from ketch.model.validation.destinationrule import workload_selector
from ketch.model.validation.paths import Path
from ketch.model.validation.re2 import re2_error
from ketch.model.validation.security import selector_and_target_refs


def _providers(ctx: Ctx, path: Path, providers: tuple[ProviderRef, ...]) -> None:
    for i, p in enumerate(providers):
        if not p.name:
            ctx.error(path / i / "name", "providers.name may not be empty")
            return


def validate_telemetry(resource: Resource, ctx: Ctx) -> None:
    t: Telemetry = resource.spec  # type: ignore[assignment]
    spec = Path("spec")
    selector_and_target_refs(ctx, t.selector, t.target_ref, t.target_refs)
    for i, m in enumerate(t.metrics):
        p = spec / "metrics" / i
        _providers(ctx, p / "providers", m.providers)
        ctx.duration(p / "reportingInterval", m.reporting_interval)
        for j, o in enumerate(m.overrides):
            op = p / "overrides" / j
            for name, to in o.tag_overrides.items():
                tp = (op / "tagOverrides").key(name)
                if name == "":
                    ctx.warn(tp, "tagOverrides.name may not be empty")
                if (to.operation or "UPSERT") == "UPSERT" and not to.value:
                    ctx.error(tp / "value", "tagOverrides.value must be set when operation is UPSERT")
                if to.operation == "REMOVE" and to.value:
                    ctx.error(tp / "value", "tagOverrides.value may only be set when operation is UPSERT")
            if o.match is not None:
                if o.match.metric is not None and o.match.custom_metric is not None:
                    ctx.error(op / "match", "only one of metric or customMetric may be set")
                elif o.match.custom_metric == "":
                    ctx.error(op / "match" / "customMetric", "customMetric may not be empty")
    if len(t.tracing) > 1:
        ctx.warn(spec / "tracing", "multiple tracing is not currently supported")
    for i, tr in enumerate(t.tracing):
        p = spec / "tracing" / i
        if len(tr.providers) > 1:
            ctx.warn(p / "providers", "multiple providers is not currently supported")
        _providers(ctx, p / "providers", tr.providers)
        pct = tr.random_sampling_percentage
        if pct is not None and not 0 <= pct <= 100:
            ctx.error(p / "randomSamplingPercentage", "randomSamplingPercentage must be in range [0.0, 100.0]")
        for name, tag in tr.custom_tags.items():
            tp = (p / "customTags").key(name)
            if not name:
                ctx.error(tp, "tag name may not be empty")
            kinds = [k for k in ("literal", "environment", "header") if getattr(tag, k) is not None]
            if len(kinds) != 1:
                ctx.error(tp, "exactly one of literal, environment or header must be set")
            if tag.literal is not None and not tag.literal.value:
                ctx.error(tp / "literal" / "value", "literal tag value may not be empty")
            if tag.header is not None and not tag.header.name:
                ctx.error(tp / "header" / "name", "header tag name may not be empty")
            if tag.environment is not None and not tag.environment.name:
                ctx.error(tp / "environment" / "name", "environment tag name may not be empty")
    for i, al in enumerate(t.access_logging):
        p = spec / "accessLogging" / i
        _providers(ctx, p / "providers", al.providers)
        if al.filter is not None and not (al.filter.expression or "").strip():
            ctx.error(p / "filter" / "expression", "filter expression may not be empty")


def validate_envoy_filter(resource: Resource, ctx: Ctx) -> None:
    ef: EnvoyFilter = resource.spec  # type: ignore[assignment]
    spec = Path("spec")
    ctx.warn(spec, "EnvoyFilter exposes internal implementation details that may change at any time. Prefer other APIs if possible, and exercise extreme caution, especially around upgrades.")
    if ef.workload_selector is not None:
        workload_selector(ctx, spec / "workloadSelector", ef.workload_selector.labels, "labels", "Envoy filter: ")
    if ef.workload_selector is not None and ef.target_refs:
        ctx.error(spec, "only one of targetRefs or workloadSelector can be set")
    for i, cp in enumerate(ef.config_patches):
        p = spec / "configPatches" / i
        if cp.apply_to in (None, "INVALID"):
            ctx.error(p / "applyTo", "Envoy filter: missing applyTo")
            continue
        if cp.patch is None:
            ctx.error(p / "patch", "Envoy filter: missing patch")
            continue
        if cp.patch.operation in (None, "INVALID"):
            ctx.error(p / "patch" / "operation", "Envoy filter: missing patch operation")
            continue
        if cp.patch.operation != "REMOVE" and cp.patch.value is None:
            ctx.error(p / "patch" / "value", "Envoy filter: missing patch value for non-remove operation")
            continue
        m = cp.match
        if m is not None and m.proxy is not None and m.proxy.proxy_version:
            err = re2_error(m.proxy.proxy_version)
            if err:
                ctx.error(p / "match" / "proxy" / "proxyVersion", f"Envoy filter: invalid regex for proxy version, [{err}]")
                continue
        if m is None:
            continue
        objects = [o for o in ("listener", "route_configuration", "cluster") if getattr(m, o) is not None]
        if len(objects) > 1:
            ctx.error(p / "match", "only one of listener, routeConfiguration or cluster may be set")
            continue
        if not objects:
            continue
        if cp.apply_to in ("LISTENER", "FILTER_CHAIN", "NETWORK_FILTER", "HTTP_FILTER"):
            if m.listener is None:
                ctx.error(p / "match", "Envoy filter: applyTo for listener class objects cannot have non listener match")
                continue
            fc = m.listener.filter_chain
            if fc is not None and fc.filter is not None:
                fp = p / "match" / "listener" / "filterChain" / "filter"
                if cp.apply_to in ("LISTENER", "FILTER_CHAIN"):
                    ctx.warn(fp, f"Envoy filter: filter match has no effect when used with {cp.apply_to}")
                if not fc.filter.name:
                    ctx.error(fp / "name", "Envoy filter: filter match has no name to match on")
                elif fc.filter.sub_filter is not None:
                    if cp.apply_to != "HTTP_FILTER":
                        ctx.error(fp / "subFilter", "Envoy filter: subfilter match can be used with applyTo HTTP_FILTER only")
                    elif fc.filter.name not in ("envoy.filters.network.http_connection_manager", "envoy.http_connection_manager"):
                        ctx.error(fp / "subFilter", "Envoy filter: subfilter match requires filter match with envoy.filters.network.http_connection_manager")
                    elif not fc.filter.sub_filter.name:
                        ctx.error(fp / "subFilter" / "name", "Envoy filter: subfilter match has no name to match on")
        elif cp.apply_to in ("ROUTE_CONFIGURATION", "VIRTUAL_HOST", "HTTP_ROUTE"):
            if m.route_configuration is None:
                ctx.error(p / "match", "Envoy filter: applyTo for http route class objects cannot have non route configuration match")
        elif cp.apply_to == "CLUSTER":
            if m.cluster is None:
                ctx.error(p / "match", "Envoy filter: applyTo for cluster class objects cannot have non cluster match")


def validate_proxy_config(resource: Resource, ctx: Ctx) -> None:
    pc: ProxyConfig = resource.spec  # type: ignore[assignment]
    if pc.selector is not None:
        workload_selector(ctx, Path("spec") / "selector", pc.selector.match_labels, "matchLabels")
    if pc.concurrency is not None and pc.concurrency < 0:
        ctx.error(Path("spec") / "concurrency", "concurrency must be greater than or equal to 0")


def validate_wasm_plugin(resource: Resource, ctx: Ctx) -> None:
    wp: WasmPlugin = resource.spec  # type: ignore[assignment]
    spec = Path("spec")
    selector_and_target_refs(ctx, wp.selector, wp.target_ref, wp.target_refs)
    if not wp.url:
        ctx.error(spec / "url", "url field needs to be set")
    else:
        scheme = urlsplit(wp.url).scheme if "://" in wp.url else ""
        if scheme not in ("", "file", "http", "https", "oci"):
            ctx.error(spec / "url", f"url contains unsupported scheme: {scheme}")
    if wp.sha256:
        if len(wp.sha256) != 64:
            ctx.error(spec / "sha256", "sha256 field must be 64 characters long")
        elif any(c not in "0123456789abcdef" for c in wp.sha256):
            ctx.error(spec / "sha256", "sha256 field must match [a-f0-9]{64} pattern")
    if wp.image_pull_secret and len(wp.image_pull_secret) > 253:
        ctx.error(spec / "imagePullSecret", "imagePullSecret field must be less than 253 characters long")
    if wp.plugin_name and len(wp.plugin_name) > 256:
        ctx.error(spec / "pluginName", "pluginName field must be less than 255 characters long")
    if wp.vm_config is not None:
        names: set[str] = set()
        for i, env in enumerate(wp.vm_config.env):
            p = spec / "vmConfig" / "env" / i
            if not env.name:
                ctx.error(p / "name", "spec.vmConfig.env invalid")
                continue
            if len(env.name) > 256:
                ctx.error(p / "name", "env.name field must be less than 255 characters long")
            if env.name in names:
                ctx.error(p / "name", f"duplicate env name: {env.name}")
            names.add(env.name)
            if env.value_from == "HOST" and env.value:
                ctx.error(p / "value", "value may only be set when valueFrom is INLINE")
    for i, m in enumerate(wp.match):
        for j, port in enumerate(m.ports):
            ctx.port(spec / "match" / i / "ports" / j / "number", port.number)


RULES = {
    "Telemetry": [validate_telemetry],
    "EnvoyFilter": [validate_envoy_filter],
    "ProxyConfig": [validate_proxy_config],
    "WasmPlugin": [validate_wasm_plugin],
}
