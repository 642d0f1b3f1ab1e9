"""Host names and label selectors, with Istio's and Kubernetes' matching rules."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

CLUSTER_DOMAIN = "svc.cluster.local"
ALL_NAMESPACES = "*"


def to_fqdn(namespace: str, host: str) -> str:
    """Istio's ConvertHostToFQDN: a short name becomes `name.ns.svc.cluster.local`;
    wildcards and names with a dot are kept as written."""
    if host.startswith("*") or "." in host:
        return host
    return f"{host}.{namespace}.{CLUSTER_DOMAIN}"


def host_matches(a: str, b: str) -> bool:
    """Istio's host.Name.Matches: true when either name (wildcards included) covers the other."""
    a_wild, b_wild = a.startswith("*"), b.startswith("*")
    if a_wild and b_wild:
        return b[1:].endswith(a[1:]) if len(a) < len(b) else a[1:].endswith(b[1:])
    if a_wild:
        return b.endswith(a[1:])
    if b_wild:
        return a.endswith(b[1:])
    return a == b


def hosts_for_namespace(hosts: Iterable[str], namespace: str) -> list[str]:
    """Istio's NamesForNamespace: `ns/host` entries visible from `namespace`, namespace stripped."""
    out: list[str] = []
    for h in hosts:
        if "/" in h:
            ns, _, rest = h.partition("/")
            if ns not in (namespace, ALL_NAMESPACES):
                continue
            h = rest
        out.append(h)
    return out


def export_scopes(export_to: Iterable[str], namespace: str) -> frozenset[str]:
    """The namespaces a resource is visible in: `{"*"}` for all, `.` is its own namespace."""
    values = [e for e in export_to if e]
    if not values or ALL_NAMESPACES in values:
        return frozenset({ALL_NAMESPACES})
    return frozenset(namespace if e == "." else e for e in values if e != "~")


def selector_string(labels: Mapping[str, str] | None) -> str:
    """A label set as Kubernetes prints a selector built from it: `app=a,version=v1` (sorted)."""
    if not labels:
        return ""
    return ",".join(f"{k}={labels[k]}" for k in sorted(labels))


def selects(selector: Mapping[str, str] | None, labels: Mapping[str, str]) -> bool:
    """A set-based selector matches labels that contain every pair (an empty one matches all)."""
    return all(labels.get(k) == v for k, v in (selector or {}).items())
