"""RDS: virtual hosts per service port with Istio's domains, and VirtualService HTTP rules
turned into Envoy routes in order (first match wins; one Envoy route per match entry)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Iterable

from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.config.route.v3 import route_pb2
from google.protobuf import duration_pb2, wrappers_pb2

from ketch.controlplane.snapshot import Snapshot
from ketch.controlplane.translate import route_action as ra
from ketch.controlplane.translate.cluster import PASSTHROUGH
from ketch.controlplane.translate.policy import policy_for
from ketch.controlplane.translate.route_match import (
    MatchContext, applies, gateway_names, merge_delegate, route_match,
)
from ketch.controlplane.translate.service import Service, ServicePort
from ketch.controlplane.translate.util import attr, cluster_name, duration, fqdn, seq, snake_keys


log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RouteContext:
    snapshot: Snapshot
    match: MatchContext
    grpc: bool = False  # proxyless clients need max_stream_duration, not timeout

    @property
    def namespace(self) -> str:
        return self.match.namespace


def service_domains(svc: Service, port: int, proxy_namespace: str) -> list[str]:
    """Istio's virtual host domains: every name the service answers to, bare and `:port`."""
    names = [svc.hostname]
    suffix = f".{svc.namespace}.svc.cluster.local"
    if svc.hostname.endswith(suffix):
        short = svc.hostname[: -len(suffix)]
        names += [f"{short}.{svc.namespace}.svc", f"{short}.{svc.namespace}"]
        if svc.namespace == proxy_namespace:
            names.append(short)
    names += list(svc.addresses)
    out = []
    for n in names:
        out += [n, f"{n}:{port}"]
    return out


def destination_port(dest: Any, vs_namespace: str, ctx: RouteContext) -> tuple[str, int]:
    """Host and port of a destination: the given port, else the service's only port, else
    the listener's port (as Istio resolves it)."""
    host = fqdn(str(attr(dest, "host") or ""), vs_namespace)
    port = attr(dest, "port", "number")
    if not port:
        svc = ctx.snapshot.service(host, ctx.namespace)
        if svc is not None and len(svc.ports) == 1:
            port = svc.ports[0].number
        elif svc is not None and svc.port(ctx.match.port) is None and svc.ports:
            port = svc.ports[0].number
        else:
            port = ctx.match.port
    return host, int(port)


def destination_cluster(dest: Any, vs_namespace: str, ctx: RouteContext) -> str:
    host, port = destination_port(dest, vs_namespace, ctx)
    return cluster_name("outbound", port, attr(dest, "subset"), host)


def _hash_for(dest: Any, vs_namespace: str, ctx: RouteContext) -> list:
    host, port = destination_port(dest, vs_namespace, ctx)
    svc = ctx.snapshot.service(host, ctx.namespace)
    dr = ctx.snapshot.destination_rule(host, ctx.namespace, svc.namespace if svc else None)
    if dr is None:
        return []
    return ra.hash_policies(policy_for(dr, port, attr(dest, "subset")).load_balancer)


def _name(rule: Any, match: Any) -> str:
    rule_name, match_name = attr(rule, "name") or "", attr(match, "name") or ""
    if rule_name and match_name:
        return f"{rule_name}.{match_name}"
    return rule_name or match_name


def config_path(kind: str, namespace: str, name: str) -> str:
    """Istio's config reference in resource metadata (istioctl's tables read it)."""
    return f"/apis/networking.istio.io/v1alpha3/namespaces/{namespace}/{kind}/{name}"


def build_route(rule: Any, match: Any, vs_namespace: str, ctx: RouteContext,
                vs_name: str = "") -> rc.Route:
    route = rc.Route(name=_name(rule, match), match=route_match(match))
    if attr(match, "stat_prefix"):
        route.stat_prefix = match.stat_prefix
    if vs_name:
        route.metadata.filter_metadata["istio"].update(
            {"config": config_path("virtual-service", vs_namespace, vs_name)})
    if attr(rule, "redirect") is not None:
        route.redirect.CopyFrom(ra.redirect(rule.redirect))
    elif attr(rule, "direct_response") is not None:
        route.direct_response.CopyFrom(ra.direct_response(rule.direct_response))
    else:
        route.route.CopyFrom(_route_action(rule, vs_namespace, ctx, route))
    ra.apply_headers(route, attr(rule, "headers"))
    ra.typed_filter_config(route, rule, ctx.grpc)
    return route


def _route_action(rule: Any, ns: str, ctx: RouteContext, route: rc.Route) -> rc.RouteAction:
    action = rc.RouteAction()
    dests = seq(attr(rule, "route"))
    if len(dests) > 1:
        # as Istio: a 0-weight destination is dropped while others carry the traffic
        dests = tuple(d for d in dests if int(attr(d, "weight") or 0) > 0) or dests
    if len(dests) == 1:
        action.cluster = destination_cluster(dests[0].destination, ns, ctx)
        ra.apply_headers(route, attr(dests[0], "headers"))
    elif dests:
        for d in dests:
            cw = rc.WeightedCluster.ClusterWeight(
                name=destination_cluster(d.destination, ns, ctx))
            cw.weight.value = int(attr(d, "weight") or 0)
            ra.apply_headers(cw, attr(d, "headers"))
            action.weighted_clusters.clusters.append(cw)
    if dests:
        action.hash_policy.extend(_hash_for(dests[0].destination, ns, ctx))
    timeout = duration(attr(rule, "timeout")) or duration_pb2.Duration()
    if ctx.grpc:
        action.max_stream_duration.max_stream_duration.CopyFrom(timeout)
        action.max_stream_duration.grpc_timeout_header_max.CopyFrom(timeout)
    else:
        action.timeout.CopyFrom(timeout)
    retry = ra.retry_policy(attr(rule, "retries"), mesh_retry_default(ctx.snapshot))
    if retry is not None:
        action.retry_policy.CopyFrom(retry)
    ra.rewrite(action, attr(rule, "rewrite"), attr(rule, "rewrite", "uri_regex_rewrite"))
    mirrors = [(attr(rule, "mirror"), attr(rule, "mirror_percentage")
                or attr(rule, "mirror_percent"))] if attr(rule, "mirror") else []
    mirrors += [(attr(m, "destination"), attr(m, "percentage")) for m in seq(attr(rule, "mirrors"))]
    for dest, pct in mirrors:
        if isinstance(pct, (int, float)):
            pct = {"value": float(pct)}
        action.request_mirror_policies.append(
            ra.mirror_policy(destination_cluster(dest, ns, ctx), pct))
    return action


def default_route(cluster: str, ctx: RouteContext, hash_policy: Iterable[Any] = ()) -> rc.Route:
    action = rc.RouteAction(cluster=cluster, hash_policy=list(hash_policy))
    if ctx.grpc:
        action.max_stream_duration.max_stream_duration.CopyFrom(duration_pb2.Duration())
        action.max_stream_duration.grpc_timeout_header_max.CopyFrom(duration_pb2.Duration())
    else:
        action.timeout.CopyFrom(duration_pb2.Duration())
    retry = ra.retry_policy(None, mesh_retry_default(ctx.snapshot))
    if retry is not None:
        action.retry_policy.CopyFrom(retry)
    return rc.Route(name="default", match=rc.RouteMatch(prefix="/"), route=action)


def mesh_retry_default(snapshot: Snapshot) -> Any:
    raw = attr(snapshot.mesh, "default_http_retry_policy")
    return snake_keys(raw) if isinstance(raw, dict) else raw


def vs_routes(vs: Any, ctx: RouteContext, _depth: int = 0) -> list[rc.Route]:
    """The routes of one VirtualService's HTTP rules on this proxy, delegates expanded."""
    ns = vs.metadata.namespace or "default"
    out: list[rc.Route] = []
    for rule in seq(attr(vs.spec, "http")):
        matches = [m for m in seq(attr(rule, "match")) if applies(m, ctx.match, ns)]
        if seq(attr(rule, "match")) and not matches:
            continue  # every match is for another port/source/gateway
        delegate = attr(rule, "delegate")
        if delegate is not None and _depth == 0:
            child = ctx.snapshot.virtual_service(attr(delegate, "namespace") or ns, delegate.name)
            if child is not None:
                out.extend(_delegate_routes(child, matches or [None], ctx))
            continue
        for m in matches or [None]:
            out.append(build_route(rule, m, ns, ctx, vs.metadata.name))
    return out


def _delegate_routes(child: Any, root_matches: list, ctx: RouteContext) -> list[rc.Route]:
    ns = child.metadata.namespace or "default"
    out = []
    for rule in seq(attr(child.spec, "http")):
        child_matches = seq(attr(rule, "match")) or (None,)
        for root in root_matches:
            for cm in child_matches:
                merged = merge_delegate(root, cm)
                if merged is None or applies(merged, ctx.match, ns):
                    out.append(build_route(rule, merged, ns, ctx, child.metadata.name))
    return out


def virtual_service_for(snapshot: Snapshot, host: str, ctx: MatchContext) -> Any | None:
    for vs in snapshot.virtual_services_for(host):
        if gateway_names(vs) & ctx.gateways and snapshot.vs_visible(vs, ctx.namespace):
            return vs
    return None


def _uses_source(snapshot: Snapshot, vs: Any) -> bool:
    """Whether a VirtualService's routes depend on the calling workload's labels."""
    def compute() -> bool:
        rules = list(seq(attr(vs.spec, "http")))
        for rule in list(rules):
            d = attr(rule, "delegate")
            child = snapshot.virtual_service(attr(d, "namespace") or vs.metadata.namespace,
                                             d.name) if d is not None else None
            if child is not None:
                rules.extend(seq(attr(child.spec, "http")))
        return any(attr(m, "source_labels") for r in rules for m in seq(attr(r, "match")))
    return snapshot.memo(("uses-source", vs.metadata.namespace, vs.metadata.name), compute)


def service_virtual_host(svc: Service, port: ServicePort, ctx: RouteContext,
                         domains: Iterable[str] | None = None) -> rc.VirtualHost:
    """The virtual host of one service port. Shared between proxies through the snapshot
    memo: without a VirtualService it depends only on the service and whether the proxy is
    in the service's namespace (short names); with one, on the proxy's match context."""
    vs = virtual_service_for(ctx.snapshot, svc.hostname, ctx.match)
    doms = tuple(domains) if domains is not None else None
    dr = ctx.snapshot.destination_rule(svc.hostname, ctx.namespace, svc.namespace)
    if vs is None:
        dr_key = None if dr is None else (dr.metadata.namespace, dr.metadata.name)
        key: tuple = ("vh-default", svc.kind, svc.namespace, svc.hostname, port.number,
                      svc.namespace == ctx.namespace, doms, ctx.grpc, dr_key)
    else:
        labels = ctx.match.key() if _uses_source(ctx.snapshot, vs) else (
            ctx.match.port, ctx.namespace, ctx.match.gateways)
        key = ("vh", svc.kind, svc.namespace, svc.hostname, port.number, labels, doms,
               ctx.grpc, vs.metadata.namespace, vs.metadata.name)

    def build() -> rc.VirtualHost:
        routes: list[rc.Route] = []
        if vs is not None:
            try:
                routes = vs_routes(vs, ctx)
            except (ValueError, TypeError, AttributeError):
                # Istio skips a VirtualService it cannot translate; the service stays reachable
                log.exception("VirtualService %s/%s: falling back to the default route",
                              vs.metadata.namespace, vs.metadata.name)
        if not routes:
            # as Istio, the default route still honours the DestinationRule's consistentHash
            hashing = ra.hash_policies(policy_for(dr, port.number).load_balancer) if dr else []
            routes = [default_route(cluster_name("outbound", port.number, None, svc.hostname),
                                    ctx, hashing)]
        return rc.VirtualHost(
            # Istio's convention: upstreams see x-envoy-attempt-count on every try
            include_request_attempt_count=not ctx.grpc,
            name=f"{svc.hostname}:{port.number}",
            domains=list(doms if doms is not None
                         else service_domains(svc, port.number, ctx.namespace)),
            routes=routes,
        )
    return ctx.snapshot.memo(key, build)


def fallback_virtual_host(allow_any: bool) -> rc.VirtualHost:
    """Unknown hosts: passthrough with ALLOW_ANY, a 502 with REGISTRY_ONLY (as Istio)."""
    if allow_any:
        return rc.VirtualHost(name="allow_any", domains=["*"], routes=[rc.Route(
            name="allow_any", match=rc.RouteMatch(prefix="/"),
            route=rc.RouteAction(cluster=PASSTHROUGH, timeout=duration_pb2.Duration()))])
    return rc.VirtualHost(name="block_all", domains=["*"], routes=[rc.Route(
        name="block_all", match=rc.RouteMatch(prefix="/"),
        direct_response=rc.DirectResponseAction(status=502))])


def dedupe_domains(vhosts: list[rc.VirtualHost]) -> list[rc.VirtualHost]:
    """Envoy rejects a domain in two virtual hosts; the first (sorted) keeps it. Virtual
    hosts may be shared (memoised), so a trimmed one is a copy."""
    seen: set[str] = set()
    out = []
    for vh in vhosts:
        keep = [d for d in vh.domains if d not in seen]
        seen.update(keep)
        if len(keep) != len(vh.domains):
            if not keep:
                continue
            trimmed = rc.VirtualHost()
            trimmed.CopyFrom(vh)
            del trimmed.domains[:]
            trimmed.domains.extend(keep)
            vh = trimmed
        out.append(vh)
    return out


def route_configuration(name: str, vhosts: list[rc.VirtualHost]) -> route_pb2.RouteConfiguration:
    return route_pb2.RouteConfiguration(
        name=name, virtual_hosts=dedupe_domains(vhosts), validate_clusters=wrappers_pb2.BoolValue(value=False))

