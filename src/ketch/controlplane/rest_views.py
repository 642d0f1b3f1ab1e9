"""JSON shapes of the REST API: pure functions from store, registry and provider data to
plain dicts, kept apart from the aiohttp handlers in `rest.py` so they test without a server."""

from __future__ import annotations

import ipaddress
from collections import defaultdict
from typing import TYPE_CHECKING, Any, Iterable, Sequence

from ketch.controlplane.instance import InstanceSource, WorkloadInstance
from ketch.store.base import Change
from ketch.store.kinds import display_name

if TYPE_CHECKING:
    from ketch.controlplane.registry import Registry
    from ketch.model import Issue, Resource
    from ketch.store.base import ConfigStore

DEFAULT_DOMAIN = "cluster.local"


def is_error(issue: "Issue") -> bool:
    return str(getattr(issue, "level", "Error")) == "Error"


def issue_json(issue: "Issue") -> dict[str, Any]:
    return {
        "file": issue.file,
        "line": issue.line,
        "kind": issue.kind,
        "namespace": issue.namespace,
        "name": issue.name,
        "path": issue.path,
        "reason": issue.reason,
        "level": str(getattr(issue, "level", "Error")),
        "message": str(issue),
    }


def not_enforced_warnings(resources: Iterable["Resource"], already: Sequence[str] = ()) -> list[str]:
    """One warning per resource of a kind the mesh stores but does not act on yet, unless
    the model's loader already said so."""
    from ketch.model.kinds import KINDS

    out = []
    for r in resources:
        info = KINDS.get(r.key.kind)
        if info is None or info.enforced:
            continue
        ident = f"{r.key.namespace}/{r.key.name}" if r.key.namespace else r.key.name
        if any(ident in w and "not enforced" in w for w in already):
            continue
        out.append(
            f"{r.key.kind} {ident}: stored, but not enforced: Ketch does not act on "
            f"{info.kind} yet"
        )
    return out


def change_row(resource: "Resource", change_type: str) -> dict[str, Any]:
    key = resource.key
    return {
        "type": change_type,
        "kind": key.kind,
        "namespace": key.namespace,
        "name": key.name,
        "resourceVersion": resource.metadata.resource_version,
        "displayName": display_name(key.kind),
    }


def change_rows(
    resources: Sequence["Resource"], changes: Sequence[Change], store: "ConfigStore"
) -> list[dict[str, Any]]:
    """One row per applied document, in order: ADDED, MODIFIED or UNCHANGED (kubectl's
    created / configured / unchanged)."""
    pending: dict[Any, list[Change]] = defaultdict(list)
    for change in changes:
        pending[change.key].append(change)
    rows = []
    for resource in resources:
        queue = pending.get(resource.key)
        if queue:
            change = queue.pop(0)
            rows.append(change_row(change.resource, change.type.value))
        else:
            current = store.get(*resource.key) or resource
            rows.append(change_row(current, "UNCHANGED"))
    return rows


def key_namespace(kind: str, namespace: str) -> str:
    """The store key's namespace for a URL segment (cluster-scoped kinds have none)."""
    from ketch.model.kinds import KINDS

    info = KINDS.get(kind)
    if info is not None and not info.namespaced:
        return ""
    return namespace


# -- registry ------------------------------------------------------------------------------


def instance_from_json(body: Any) -> WorkloadInstance | str:
    """A WorkloadInstance from a registration body, or the reason it is invalid."""
    if not isinstance(body, dict):
        return "expected a JSON object"
    name, address = body.get("name"), body.get("address")
    if not isinstance(name, str) or not name:
        return "name is required"
    if not isinstance(address, str) or not address:
        return "address is required"
    try:
        ipaddress.ip_address(address)
    except ValueError:
        return f"address {address!r} is not an IP address"
    ports = body.get("ports") or {}
    if not isinstance(ports, dict) or not all(
        isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool) and 0 < v < 65536
        for k, v in ports.items()
    ):
        return "ports must map port names to numbers in 1..65535"
    labels = body.get("labels") or {}
    if not isinstance(labels, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in labels.items()
    ):
        return "labels must map strings to strings"
    weight = body.get("weight", 1)
    if not isinstance(weight, int) or isinstance(weight, bool) or weight < 0:
        return "weight must be a non-negative integer"
    healthy = body.get("healthy", True)
    if not isinstance(healthy, bool):
        return "healthy must be true or false"
    return WorkloadInstance(
        name=name,
        namespace=str(body.get("namespace") or "default"),
        address=address,
        labels=labels,
        service_account=str(body.get("serviceAccount") or "default"),
        ports=ports,
        locality=str(body.get("locality") or ""),
        weight=weight,
        healthy=healthy,
        network=str(body.get("network") or ""),
        source=InstanceSource.REGISTRATION,
    )


def instance_json(instance: WorkloadInstance) -> dict[str, Any]:
    return {
        "name": instance.name,
        "namespace": instance.namespace,
        "address": instance.address,
        "labels": dict(instance.labels),
        "serviceAccount": instance.service_account,
        "ports": dict(instance.ports),
        "locality": instance.locality,
        "weight": instance.weight,
        "healthy": instance.healthy,
        "network": instance.network,
        "source": instance.source.value,
    }


# -- services ------------------------------------------------------------------------------


def _selected(selector: dict[str, str], labels: Any) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def _workload_entries(store: "ConfigStore") -> list[WorkloadInstance]:
    out = []
    for we in store.list("WorkloadEntry"):
        spec = we.spec
        if not spec.address:
            continue
        out.append(
            WorkloadInstance(
                name=we.key.name,
                namespace=we.key.namespace,
                address=spec.address,
                labels=spec.labels or dict(we.metadata.labels),
                service_account=spec.service_account or "default",
                ports=spec.ports,
                locality=spec.locality or "",
                weight=spec.weight or 1,
                network=spec.network or "",
                source=InstanceSource.WORKLOAD_ENTRY,
            )
        )
    return out


def services(
    store: "ConfigStore", registered: Iterable[WorkloadInstance], mesh: Any = None
) -> list[dict[str, Any]]:
    """The mesh's services as the registry sees them: Kubernetes Services and ServiceEntry
    hosts, each with the instances that back it (registered, WorkloadEntry, inline)."""
    domain = getattr(mesh, "domain_suffix", None) or DEFAULT_DOMAIN
    workloads = list(registered) + _workload_entries(store)
    items = []
    for svc in store.list("Service"):
        ns, name, spec = svc.key.namespace, svc.key.name, svc.spec
        selector = dict(spec.selector or {})
        items.append(
            {
                "hostname": f"{name}.{ns}.svc.{domain}",
                "namespace": ns,
                "name": name,
                "kind": "Service",
                "addresses": [a for a in (spec.cluster_ip,) if a and a != "None"],
                "ports": [
                    {
                        "name": p.name or "",
                        "port": p.port,
                        "protocol": p.app_protocol or p.protocol or "TCP",
                        "targetPort": p.target_port if p.target_port is not None else p.port,
                    }
                    for p in spec.ports
                ],
                "selector": selector,
                "endpoints": [
                    _endpoint(w)
                    for w in workloads
                    if w.namespace == ns and _selected(selector, w.labels)
                ],
            }
        )
    for se in store.list("ServiceEntry"):
        ns, spec = se.key.namespace, se.spec
        selector = dict(spec.workload_selector.labels) if spec.workload_selector else {}
        endpoints = [
            {
                "name": "",
                "address": ep.address or "",
                "ports": dict(ep.ports),
                "labels": dict(ep.labels),
                "healthy": True,
                "source": InstanceSource.SERVICE_ENTRY.value,
            }
            for ep in spec.endpoints
        ] + [_endpoint(w) for w in workloads if w.namespace == ns and _selected(selector, w.labels)]
        for host in spec.hosts:
            items.append(
                {
                    "hostname": host,
                    "namespace": ns,
                    "name": se.key.name,
                    "kind": "ServiceEntry",
                    "addresses": list(spec.addresses),
                    "ports": [
                        {"name": p.name or "", "port": p.number, "protocol": p.protocol or "",
                         "targetPort": p.target_port or p.number}
                        for p in spec.ports
                    ],
                    "resolution": spec.resolution or "NONE",
                    "location": spec.location or "MESH_EXTERNAL",
                    "selector": selector,
                    "endpoints": endpoints,
                }
            )
    return sorted(items, key=lambda s: (s["hostname"], s["namespace"]))


def _endpoint(w: WorkloadInstance) -> dict[str, Any]:
    return {
        "name": w.name,
        "address": w.address,
        "ports": dict(w.ports),
        "labels": dict(w.labels),
        "healthy": w.healthy,
        "source": w.source.value,
    }


# -- proxies and metrics -------------------------------------------------------------------


def resolve_proxy(wanted: str, ids: Sequence[str]) -> str | list[str]:
    """The proxy id `wanted` names: the id itself, a unique id prefix, or a pod name
    (`POD` or `POD.NAMESPACE`, the third field of `sidecar~IP~POD.NS~NS.svc.cluster.local`).
    A list of candidates (empty: none) when it is not unique."""
    if wanted in ids:
        return wanted
    matches = [i for i in ids if i.startswith(wanted)]
    if not matches:
        for proxy_id in ids:
            parts = proxy_id.split("~")
            pod = parts[2] if len(parts) > 2 else ""
            if wanted in (pod, pod.split(".", 1)[0]) or pod.startswith(wanted):
                matches.append(proxy_id)
    return matches[0] if len(matches) == 1 else sorted(matches)


def own_metrics(store: "ConfigStore", registry: "Registry") -> str:
    """The REST side's gauges: config revision and objects per kind, registry size."""
    per_kind: dict[str, int] = defaultdict(int)
    for r in store.list():
        per_kind[r.key.kind] += 1
    instances = registry.instances()
    healthy = sum(1 for i in instances if i.healthy)
    lines = [
        "# HELP ketch_config_revision Revision of the config store.",
        "# TYPE ketch_config_revision gauge",
        f"ketch_config_revision {store.revision}",
        "# HELP ketch_config_objects Stored config objects per kind.",
        "# TYPE ketch_config_objects gauge",
        *(f'ketch_config_objects{{kind="{k}"}} {n}' for k, n in sorted(per_kind.items())),
        "# HELP ketch_registry_instances Registered workload instances.",
        "# TYPE ketch_registry_instances gauge",
        f'ketch_registry_instances{{healthy="true"}} {healthy}',
        f'ketch_registry_instances{{healthy="false"}} {len(instances) - healthy}',
        "# HELP ketch_registry_revision Revision of the instance registry.",
        "# TYPE ketch_registry_revision gauge",
        f"ketch_registry_revision {registry.revision}",
    ]
    return "\n".join(lines) + "\n"
