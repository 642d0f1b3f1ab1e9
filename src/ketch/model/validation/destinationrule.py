"""DestinationRule rules (istiod's ValidateDestinationRule and traffic policy checks)."""

from __future__ import annotations

import math

from ketch.model.common import ClientTLSSettings, ConnectionPoolSettings, LocalityLoadBalancerSetting
from ketch.model.networking import DestinationRule, LoadBalancerSettings, OutlierDetection, TrafficPolicy
from ketch.model.resource import Resource
from ketch.model.validation import checks
from ketch.model.validation.context import Ctx
from ketch.model.validation.paths import Path
from ketch.model.validation.routing import export_to, subset_name

TOPOLOGY_LABELS = ("topology.kubernetes.io/region", "topology.kubernetes.io/zone", "topology.istio.io/subzone")


def validate_destination_rule(resource: Resource, ctx: Ctx) -> None:
    dr: DestinationRule = resource.spec  # type: ignore[assignment]
    spec = Path("spec")
    ctx.check(spec / "host", checks.wildcard_domain(dr.host or ""))
    traffic_policy(ctx, spec / "trafficPolicy", dr.traffic_policy)
    names: set[str] = set()
    for i, subset in enumerate(dr.subsets):
        p = spec / "subsets" / i
        if subset.name in names:
            ctx.error(p / "name", f"duplicate subset names: {subset.name}")
        names.add(subset.name or "")
        ctx.check(p / "name", subset_name(subset.name or ""))
        ctx.labels(p / "labels", subset.labels)
        traffic_policy(ctx, p / "trafficPolicy", subset.traffic_policy)
    export_to(ctx, spec / "exportTo", dr.export_to, dr_selector=dr.workload_selector is not None)
    if dr.workload_selector is not None:
        workload_selector(ctx, spec / "workloadSelector", dr.workload_selector.match_labels, "matchLabels")


def workload_selector(ctx: Ctx, path: Path, labels: dict[str, str], field: str, prefix: str = "") -> None:
    for k, v in labels.items():
        if k == "":
            ctx.error((path / field).key(k), f'empty key is not supported in selector: "{k}={v}"')
        if "*" in k or "*" in v:
            ctx.error((path / field).key(k), f'wildcard is not supported in selector: "{k}={v}"')
        elif k:
            ctx.labels(path / field, {k: v})
    if not labels:
        ctx.warn(path, f"{prefix}workload selector specified without labels" + (", will be applied to all services in namespace" if prefix else ""))


def traffic_policy(ctx: Ctx, path: Path, tp: TrafficPolicy | None) -> None:
    if tp is None:
        return
    if (
        tp.outlier_detection is None
        and tp.connection_pool is None
        and tp.load_balancer is None
        and tp.tls is None
        and not tp.port_level_settings
        and tp.tunnel is None
        and tp.proxy_protocol is None
        and tp.retry_budget is None
    ):
        ctx.error(path, "traffic policy must have at least one field")
        return
    if tp.tunnel is not None and tp.proxy_protocol is not None:
        ctx.error(path, "tunnel and proxyProtocol must not be set together")
        return
    outlier_detection(ctx, path / "outlierDetection", tp.outlier_detection)
    connection_pool(ctx, path / "connectionPool", tp.connection_pool)
    load_balancer(ctx, path / "loadBalancer", tp.load_balancer, tp.outlier_detection)
    client_tls(ctx, path / "tls", tp.tls)
    for i, pl in enumerate(tp.port_level_settings):
        p = path / "portLevelSettings" / i
        if pl.port is None:
            ctx.error(p / "port", "portTrafficPolicy must have valid port")
        else:
            ctx.port(p / "port" / "number", pl.port.number)
        if pl.outlier_detection is None and pl.connection_pool is None and pl.load_balancer is None and pl.tls is None:
            ctx.error(p, "port traffic policy must have at least one field")
            continue
        outlier_detection(ctx, p / "outlierDetection", pl.outlier_detection)
        connection_pool(ctx, p / "connectionPool", pl.connection_pool)
        load_balancer(ctx, p / "loadBalancer", pl.load_balancer, pl.outlier_detection)
        client_tls(ctx, p / "tls", pl.tls)
    rb = tp.retry_budget
    if rb is not None and rb.percent is not None and not 0 <= rb.percent <= 100:
        ctx.error(path / "retryBudget" / "percent", "retryBudget.percent must be in range [0.0, 100.0]")
    if tp.tunnel is not None:
        t = tp.tunnel
        p = path / "tunnel"
        if t.protocol and t.protocol not in ("CONNECT", "POST"):
            ctx.error(p / "protocol", 'tunnel protocol must be "CONNECT" or "POST"')
        host = t.target_host or ""
        fqdn_err, ip_err = checks.fqdn(host), checks.ip_address(host)
        if fqdn_err and ip_err:
            ctx.error(p / "targetHost", f"tunnel target host must be valid FQDN or IP address: {fqdn_err}; {ip_err}")
        port_err = checks.port(t.target_port)
        if port_err:
            ctx.error(p / "targetPort", f"tunnel target port is invalid: {port_err}")


def outlier_detection(ctx: Ctx, path: Path, od: OutlierDetection | None) -> None:
    if od is None:
        return
    ctx.duration(path / "baseEjectionTime", od.base_ejection_time)
    ctx.duration(path / "interval", od.interval)
    if od.consecutive_errors:
        ctx.warn(path / "consecutiveErrors", "outlier detection consecutive errors is deprecated, use consecutiveGatewayErrors or consecutive5xxErrors instead")
    if not od.split_external_local_origin_errors and (od.consecutive_local_origin_failures or 0) > 0:
        ctx.error(path / "consecutiveLocalOriginFailures", "outlier detection consecutive local origin failures is specified, but split external local origin errors is set to false")
    for field, value in (("maxEjectionPercent", od.max_ejection_percent), ("minHealthPercent", od.min_health_percent)):
        if value is not None and not 0 <= value <= 100:
            ctx.error(path / field, f"percentage {value} is not in range 0..100")
    for field, value in (("consecutiveGatewayErrors", od.consecutive_gateway_errors), ("consecutive5xxErrors", od.consecutive_5xx_errors), ("consecutiveLocalOriginFailures", od.consecutive_local_origin_failures)):
        if value is not None and value < 0:
            ctx.error(path / field, f"{field} must be non-negative")


def connection_pool(ctx: Ctx, path: Path, cp: ConnectionPoolSettings | None) -> None:
    if cp is None:
        return
    if cp.http is None and cp.tcp is None:
        ctx.error(path, "connection pool must have at least one field")
        return
    if cp.http is not None:
        h = cp.http
        p = path / "http"
        for field, attr, what in (
            ("http1MaxPendingRequests", "http1_max_pending_requests", "http1 max pending requests"),
            ("http2MaxRequests", "http2_max_requests", "http2 max requests"),
            ("maxRequestsPerConnection", "max_requests_per_connection", "max requests per connection"),
            ("maxRetries", "max_retries", "max retries"),
            ("maxConcurrentStreams", "max_concurrent_streams", "max concurrent streams"),
        ):
            value = getattr(h, attr)
            if value is not None and value < 0:
                ctx.error(p / field, f"{what} must be non-negative")
        ctx.duration(p / "idleTimeout", h.idle_timeout)
        if h.h2_upgrade_policy == "UPGRADE" and h.use_client_protocol:
            ctx.error(p / "useClientProtocol", "use client protocol must not be true when H2UpgradePolicy is UPGRADE")
    if cp.tcp is not None:
        t = cp.tcp
        p = path / "tcp"
        if t.max_connections is not None and t.max_connections < 0:
            ctx.error(p / "maxConnections", "max connections must be non-negative")
        ctx.duration(p / "connectTimeout", t.connect_timeout)
        ctx.duration(p / "maxConnectionDuration", t.max_connection_duration)
        ctx.duration(p / "idleTimeout", t.idle_timeout)
        if t.tcp_keepalive is not None:
            ctx.duration(p / "tcpKeepalive" / "time", t.tcp_keepalive.time)
            ctx.duration(p / "tcpKeepalive" / "interval", t.tcp_keepalive.interval)


def _is_prime(x: int) -> bool:
    if x <= 0:
        return False
    if x < 4:
        return True
    if x % 2 == 0:
        return False
    return all(x % f for f in range(3, math.isqrt(x) + 1, 2))


def load_balancer(ctx: Ctx, path: Path, lb: LoadBalancerSettings | None, outlier: OutlierDetection | None) -> None:
    if lb is None:
        return
    if lb.simple is not None and lb.consistent_hash is not None:
        ctx.error(path, "only one of simple or consistentHash may be set")
    ch = lb.consistent_hash
    if ch is not None:
        p = path / "consistentHash"
        keys = [k for k in ("http_header_name", "http_cookie", "use_source_ip", "http_query_parameter_name") if getattr(ch, k) not in (None, False)]
        if len(keys) > 1:
            ctx.error(p, "only one of httpHeaderName, httpCookie, useSourceIp or httpQueryParameterName may be set")
        if ch.ring_hash is not None and ch.maglev is not None:
            ctx.error(p, "only one of ringHash or maglev may be set")
        if ch.http_cookie is not None:
            if not ch.http_cookie.name:
                ctx.error(p / "httpCookie" / "name", "name required for HttpCookie")
            if ch.http_cookie.ttl not in (None, "0s"):  # 0s: a session cookie
                ctx.duration(p / "httpCookie" / "ttl", ch.http_cookie.ttl)
        if ch.minimum_ring_size:
            ctx.warn(p / "minimumRingSize", "consistent hash MinimumRingSize is deprecated, use ConsistentHashLB's RingHash configuration instead")
            if ch.ring_hash is not None or ch.maglev is not None:
                ctx.error(p, "only one of MinimumRingSize or Maglev/Ringhash can be specified")
        if ch.maglev is not None:
            size = ch.maglev.table_size or 0
            mp = p / "maglev" / "tableSize"
            if size == 0:
                ctx.error(mp, "tableSize must be set for maglev")
            if size >= 5000011:
                ctx.error(mp, "tableSize must be less than 5000011 for maglev")
            if not _is_prime(size):
                ctx.error(mp, "tableSize must be a prime number for maglev")
    locality_lb(ctx, path / "localityLbSetting", lb.locality_lb_setting, outlier)
    ctx.duration(path / "warmupDurationSecs", lb.warmup_duration_secs)
    if lb.warmup is not None:
        w = lb.warmup
        ctx.duration(path / "warmup" / "duration", w.duration)
        # bounds from the CRD schema (kubebuilder Minimum/Maximum), in the API server's words
        wp = path / "warmup"
        if w.minimum_percent is not None and w.minimum_percent < 0:
            ctx.error(wp / "minimumPercent", f"Invalid value: {w.minimum_percent:g}: {wp}.minimumPercent in body should be greater than or equal to 0")
        if w.minimum_percent is not None and w.minimum_percent > 100:
            ctx.error(wp / "minimumPercent", f"Invalid value: {w.minimum_percent:g}: {wp}.minimumPercent in body should be less than or equal to 100")
        if w.aggression is not None and w.aggression < 0:
            ctx.error(wp / "aggression", f"Invalid value: {w.aggression:g}: {wp}.aggression in body should be greater than or equal to 0")
        if lb.warmup_duration_secs is not None:
            ctx.error(path, "only one of warmupDurationSecs or warmup may be set")


def locality_lb(ctx: Ctx, path: Path, lb: LocalityLoadBalancerSetting | None, outlier: OutlierDetection | None) -> None:
    if lb is None:
        return
    if lb.distribute and lb.failover:
        ctx.error(path, "can not simultaneously specify 'distribute' and 'failover'")
        return
    if lb.failover and lb.failover_priority:
        for i, label in enumerate(lb.failover_priority):
            if label in TOPOLOGY_LABELS:
                ctx.error(path / "failoverPriority" / i, f"can not simultaneously set 'failover' and topology label '{label}' in 'failover_priority'")
                return
    sources = []
    for i, d in enumerate(lb.distribute):
        p = path / "distribute" / i
        sources.append(d.from_ or "")
        total = 0
        for loc, weight in d.to.items():
            if weight <= 0 or weight > 100:
                ctx.error((p / "to").key(loc), "locality weight must be in range [1, 100]")
                return
            total += weight
        if total != 100:
            ctx.error(p / "to", f"total locality weight {total} != 100")
            return
        ctx.check(p / "to", _localities(list(d.to)))
    ctx.check(path / "distribute", _localities(sources))
    if (lb.failover or lb.failover_priority) and outlier is None:
        ctx.warn(path, "outlier detection policy must be provided for failover")
    for i, f in enumerate(lb.failover):
        p = path / "failover" / i
        src, dst = f.from_ or "", f.to or ""
        if src == dst:
            ctx.error(p, "locality lb failover settings must specify different regions")
        if "/" in src or "/" in dst:
            ctx.error(p, "locality lb failover only specify region")
        if "*" in src or "*" in dst:
            ctx.error(p, "locality lb failover region should not contain '*' wildcard")


def _localities(localities: list[str]) -> str | None:
    seen: set[tuple[str, ...]] = set()
    for loc in localities:
        stars = loc.count("*")
        if stars and (stars > 1 or not loc.endswith("*")):
            return f"locality {loc} wildcard '*' number can not exceed 1 and must be in the end"
        parts = tuple(loc.split("/", 2))
        if any(p == "" for p in parts):
            return f"locality {loc} must not contain empty region/zone/subzone info"
        norm = tuple(p for p in parts if p != "*")
        for prior in seen:
            short, long_ = (prior, norm) if len(prior) <= len(norm) else (norm, prior)
            if long_[: len(short)] == short:
                return f"locality {loc} overlap with previous specified ones"
        seen.add(norm)
    return None


def client_tls(ctx: Ctx, path: Path, tls: ClientTLSSettings | None) -> None:
    if tls is None:
        return
    if tls.insecure_skip_verify:
        if tls.mode == "SIMPLE" and (tls.ca_certificates or tls.credential_name or tls.subject_alt_names):
            ctx.error(path, "cannot specify CaCertificates or CredentialName or SubjectAltNames when InsecureSkipVerify is set true")
        if tls.mode == "MUTUAL" and (tls.ca_certificates or tls.subject_alt_names):
            ctx.error(path, "cannot specify CaCertificates or SubjectAltNames when InsecureSkipVerify is set true")
    if tls.mode in ("SIMPLE", "MUTUAL") and tls.credential_name:
        if tls.client_certificate or tls.ca_certificates or tls.private_key or tls.ca_crl:
            ctx.error(path, "cannot specify client certificates or CA certificate or CA CRL If credentialName is set")
        return
    if tls.mode == "MUTUAL":
        if not tls.client_certificate:
            ctx.error(path / "clientCertificate", "client certificate required for mutual tls")
        if not tls.private_key:
            ctx.error(path / "privateKey", "private key required for mutual tls")


RULES = {"DestinationRule": [validate_destination_rule]}
