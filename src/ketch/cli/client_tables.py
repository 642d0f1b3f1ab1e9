"""Tables for the CLI, built from the REST API's JSON: `get` (kubectl's columns),
`proxy-status` and `proxy-config` (istioctl's, read from an Envoy admin config_dump).

Pure functions from plain data to rows; `client.py` does the I/O."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Sequence

Row = list[str]

LDS = "type.googleapis.com/envoy.config.listener.v3.Listener"
RDS = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
CDS = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
EDS = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"


def render(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """kubectl's plain table: left-aligned columns, three spaces apart."""
    rows = [list(headers)] + [list(r) for r in rows]
    widths = [max(len(r[i]) for r in rows) for i in range(len(headers))]
    lines = ["   ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    return "\n".join(lines)


def age(created: str | None, now: float) -> str:
    """kubectl's HumanDuration of the time since `created` (RFC 3339)."""
    if not created:
        return "<unknown>"
    try:
        then = datetime.strptime(created, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    except ValueError:
        return "<unknown>"
    s = max(0, int(now - then.timestamp()))
    m, h, d = s // 60, s // 3600, s // 86400
    if s < 120:
        return f"{s}s"
    if m < 10:
        return f"{m}m{s % 60}s" if s % 60 else f"{m}m"
    if h < 3:
        return f"{m}m"
    if h < 8:
        return f"{h}h{m % 60}m" if m % 60 else f"{h}h"
    if d < 2:
        return f"{h}h"
    if d < 8:
        return f"{d}d{h % 24}h" if h % 24 else f"{d}d"
    if d < 365 * 2:
        return f"{d}d"
    return f"{d // 365}y"


# -- get ------------------------------------------------------------------------------------


def _join(values: Iterable[Any]) -> str:
    return ",".join(str(v) for v in values) or "<none>"


def _service_ports(spec: dict[str, Any]) -> str:
    ports = [f"{p.get('port')}/{p.get('protocol', 'TCP')}" for p in spec.get("ports", [])]
    return _join(ports)


# kind -> (headers, cells(spec)) after NAME and before AGE, as `kubectl get` prints them
_COLUMNS: dict[str, tuple[list[str], Callable[[dict[str, Any]], list[str]]]] = {
    "VirtualService": (["GATEWAYS", "HOSTS"], lambda s: [
        f"[{','.join(s.get('gateways', []))}]" if s.get("gateways") else "",
        f"[{','.join(s.get('hosts', []))}]"]),
    "DestinationRule": (["HOST"], lambda s: [s.get("host", "")]),
    "ServiceEntry": (["HOSTS", "LOCATION", "RESOLUTION"], lambda s: [
        f"[{','.join(s.get('hosts', []))}]", s.get("location", ""), s.get("resolution", "")]),
    "WorkloadEntry": (["ADDRESS"], lambda s: [s.get("address", "")]),
    "PeerAuthentication": (["MODE"], lambda s: [(s.get("mtls") or {}).get("mode", "")]),
    "AuthorizationPolicy": (["ACTION"], lambda s: [s.get("action", "ALLOW")]),
    "Service": (["TYPE", "CLUSTER-IP", "PORT(S)"], lambda s: [
        s.get("type", "ClusterIP"), s.get("clusterIP", "<none>"), _service_ports(s)]),
    "Deployment": (["REPLICAS"], lambda s: [str(s.get("replicas", 1))]),
}

def _pod_cells(item: dict[str, Any]) -> list[str]:
    status = item.get("status", {})
    containers = status.get("containerStatuses", [])
    ready = sum(1 for c in containers if c.get("ready"))
    restarts = sum(int(c.get("restartCount", 0)) for c in containers)
    return [f"{ready}/{len(containers)}", status.get("phase", ""), str(restarts)]


# kinds whose columns read more than the spec (a Pod's status), as `kubectl get pods`
_ITEM_COLUMNS: dict[str, tuple[list[str], Callable[[dict[str, Any]], list[str]]]] = {
    "Pod": (["READY", "STATUS", "RESTARTS"], _pod_cells),
}

_WIDE: dict[str, tuple[list[str], Callable[[dict[str, Any]], list[str]]]] = {
    "Service": (["SELECTOR"], lambda s: [
        _join(f"{k}={v}" for k, v in sorted((s.get("selector") or {}).items()))]),
}


def get_table(kind: str, items: Sequence[dict[str, Any]], *, now: float,
              all_namespaces: bool = False, wide: bool = False) -> str:
    headers, cells = _COLUMNS.get(kind, ([], lambda s: []))
    item_headers, item_cells = _ITEM_COLUMNS.get(kind, ([], lambda i: []))
    headers = [*item_headers, *headers]
    extra_headers, extra_cells = _WIDE.get(kind, ([], lambda s: [])) if wide else ([], lambda s: [])
    out_headers = (["NAMESPACE"] if all_namespaces else []) + ["NAME", *headers, "AGE",
                                                                  *extra_headers]
    if wide:
        out_headers.append("LABELS")
    rows = []
    for item in items:
        meta = item.get("metadata", {})
        spec = item.get("spec", item)
        row = ([meta.get("namespace", "")] if all_namespaces else []) + [meta.get("name", "")]
        row += item_cells(item) + cells(spec) + [age(meta.get("creationTimestamp"), now)] + extra_cells(spec)
        if wide:
            row.append(_join(f"{k}={v}" for k, v in sorted((meta.get("labels") or {}).items())))
        rows.append(row)
    return render(out_headers, rows)


# -- proxy-status ---------------------------------------------------------------------------


def proxy_name(proxy_id: str) -> str:
    """`productpage-v1-7d8f.default` from `sidecar~IP~productpage-v1-7d8f.default~...`."""
    parts = proxy_id.split("~")
    return parts[2] if len(parts) > 2 and parts[2] else proxy_id


def _sync(types: dict[str, Any], short: str) -> str:
    for url, state in types.items():
        if state.get("type") == short or url.endswith(_SHORT_TO_SUFFIX[short]):
            status = str(state.get("status", "")).upper()
            if status == "NACK":
                return f"NACK ({state.get('error') or 'no reason given'})"
            return status or "NOT SENT"
    return "NOT SENT"


_SHORT_TO_SUFFIX = {"CDS": ".Cluster", "LDS": ".Listener", "EDS": ".ClusterLoadAssignment",
                    "RDS": ".RouteConfiguration"}


def status_table(proxies: Sequence[dict[str, Any]], control_plane: str) -> str:
    rows = []
    for p in sorted(proxies, key=lambda p: proxy_name(p.get("id", ""))):
        types = p.get("types") or {}
        rows.append([
            proxy_name(p.get("id", "")),
            p.get("cluster") or "Kubernetes",
            *(_sync(types, t) for t in ("CDS", "LDS", "EDS", "RDS")),
            p.get("controlPlane") or control_plane,
            p.get("proxyVersion") or p.get("version") or "",
        ])
    return render(["NAME", "CLUSTER", "CDS", "LDS", "EDS", "RDS", "ISTIOD", "VERSION"], rows)


# -- proxy-config ---------------------------------------------------------------------------


def sections(dump: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The config_dump's sections by kind: listeners, clusters, routes, endpoints."""
    out: dict[str, dict[str, Any]] = {}
    for section in dump.get("configs", []):
        t = section.get("@type", "")
        for name in ("Listeners", "Clusters", "Routes", "Endpoints"):
            if t.endswith(f".{name}ConfigDump"):
                out[name.lower()] = section
    return out


def listeners(section: dict[str, Any]) -> list[dict[str, Any]]:
    out = [s.get("listener", {}) for s in section.get("staticListeners", [])]
    for d in section.get("dynamicListeners", []):
        state = d.get("activeState") or d.get("warmingState") or {}
        if state.get("listener"):
            out.append(state["listener"])
    return out


def clusters(section: dict[str, Any]) -> list[dict[str, Any]]:
    keys = ("staticClusters", "dynamicActiveClusters", "dynamicWarmingClusters")
    return [c.get("cluster", {}) for k in keys for c in section.get(k, [])]


def route_configs(section: dict[str, Any]) -> list[dict[str, Any]]:
    keys = ("staticRouteConfigs", "dynamicRouteConfigs")
    return [c.get("routeConfig", {}) for k in keys for c in section.get(k, [])]


def endpoint_configs(section: dict[str, Any]) -> list[dict[str, Any]]:
    keys = ("staticEndpointConfigs", "dynamicEndpointConfigs")
    return [c.get("endpointConfig", {}) for k in keys for c in section.get(k, [])]


def _istio_config(metadata: dict[str, Any] | None) -> str:
    """`reviews.default` from Istio's `/apis/.../namespaces/default/virtual-service/reviews`."""
    path = (((metadata or {}).get("filterMetadata") or {}).get("istio") or {}).get("config", "")
    parts = path.strip("/").split("/")
    if "namespaces" in parts and len(parts) >= parts.index("namespaces") + 4:
        i = parts.index("namespaces")
        return f"{parts[i + 3]}.{parts[i + 1]}"
    return ""


def cluster_rows(items: Sequence[dict[str, Any]]) -> list[Row]:
    rows = []
    for c in items:
        name = c.get("name", "")
        parts = name.split("|")
        if len(parts) == 4:
            direction, port, subset, fqdn = parts
        else:
            direction, port, subset, fqdn = "-", "-", "-", name
        kind = c.get("type") or ("-" if c.get("clusterType") else "STATIC")
        rows.append([fqdn or "", port or "-", subset or "-", direction, kind,
                     _istio_config(c.get("metadata")) or "-"])
    return sorted(rows, key=lambda r: (r[0], r[1], r[2], r[3]))


CLUSTER_HEADERS = ["SERVICE FQDN", "PORT", "SUBSET", "DIRECTION", "TYPE", "DESTINATION RULE"]


def _chain_match(match: dict[str, Any]) -> str:
    parts = []
    if "destinationPort" in match:
        parts.append(f"port={match['destinationPort']}")
    if match.get("transportProtocol"):
        parts.append(f"Trans: {match['transportProtocol']}")
    if match.get("applicationProtocols"):
        parts.append(f"App: {','.join(match['applicationProtocols'])}")
    if match.get("serverNames"):
        parts.append(f"SNI: {','.join(match['serverNames'])}")
    if match.get("prefixRanges"):
        parts.append("Addr: " + ",".join(
            f"{r.get('addressPrefix')}/{r.get('prefixLen', 0)}" for r in match["prefixRanges"]))
    return "; ".join(parts) or "ALL"


def _chain_destination(chain: dict[str, Any]) -> str:
    for f in chain.get("filters", []):
        cfg = f.get("typedConfig", {})
        t = cfg.get("@type", "")
        if t.endswith("HttpConnectionManager"):
            if cfg.get("rds"):
                return f"Route: {cfg['rds'].get('routeConfigName', '')}"
            inline = cfg.get("routeConfig", {})
            return f"Inline Route: {inline.get('name', '') or '/*'}"
        if t.endswith("TcpProxy"):
            if cfg.get("cluster"):
                return f"Cluster: {cfg['cluster']}"
            weighted = (cfg.get("weightedClusters") or {}).get("clusters", [])
            return "Clusters: " + ", ".join(f"{w.get('name')}({w.get('weight', 0)})" for w in weighted)
    return "Non-HTTP/Non-TCP"


def listener_rows(items: Sequence[dict[str, Any]]) -> list[Row]:
    rows = []
    for lis in items:
        sock = (lis.get("address") or {}).get("socketAddress") or {}
        address, port = sock.get("address", ""), str(sock.get("portValue", 0))
        chains = list(lis.get("filterChains", []))
        if lis.get("defaultFilterChain"):
            chains.append(lis["defaultFilterChain"])
        if lis.get("apiListener"):
            rows.append([address or lis.get("name", ""), port, "ALL", "API listener"])
        for chain in chains:
            match = _chain_match(chain.get("filterChainMatch") or {})
            rows.append([address, port, match, _chain_destination(chain)])
    return rows


LISTENER_HEADERS = ["ADDRESSES", "PORT", "MATCH", "DESTINATION"]


def _route_match(match: dict[str, Any]) -> str:
    if "prefix" in match:
        return match["prefix"] + "*"
    if "path" in match:
        return match["path"]
    if "safeRegex" in match:
        return f"regex {match['safeRegex'].get('regex', '')}"
    if "pathSeparatedPrefix" in match:
        return match["pathSeparatedPrefix"] + "/*"
    return "/*"


def _domains(domains: Sequence[str]) -> str:
    if len(domains) <= 2:
        return ", ".join(domains)
    return f"{domains[0]}, {domains[1]} + {len(domains) - 2} more..."


def route_rows(items: Sequence[dict[str, Any]]) -> list[Row]:
    rows = []
    for rc in items:
        for vh in rc.get("virtualHosts", []):
            for route in vh.get("routes", []) or [{}]:
                vs = _istio_config(route.get("metadata")) or ("404" if not route else "-")
                rows.append([rc.get("name", ""), vh.get("name", ""), _domains(vh.get("domains", [])),
                             _route_match(route.get("match", {})), vs])
    return rows


ROUTE_HEADERS = ["NAME", "VHOST NAME", "DOMAINS", "MATCH", "VIRTUAL SERVICE"]

_HEALTH = {"UNKNOWN": "HEALTHY", "HEALTHY": "HEALTHY", "UNHEALTHY": "UNHEALTHY",
           "DRAINING": "DRAINING", "TIMEOUT": "TIMEOUT", "DEGRADED": "DEGRADED"}


def endpoint_rows(items: Sequence[dict[str, Any]]) -> list[Row]:
    rows = []
    for cla in items:
        cluster = cla.get("clusterName", "")
        for locality in cla.get("endpoints", []):
            for lb in locality.get("lbEndpoints", []):
                sock = ((lb.get("endpoint") or {}).get("address") or {}).get("socketAddress") or {}
                health = _HEALTH.get(lb.get("healthStatus", "UNKNOWN"), lb.get("healthStatus", ""))
                rows.append([f"{sock.get('address', '')}:{sock.get('portValue', 0)}", health, "OK",
                             cluster])
    return sorted(rows, key=lambda r: (r[3], r[0]))


ENDPOINT_HEADERS = ["ENDPOINT", "STATUS", "OUTLIER CHECK", "CLUSTER"]
