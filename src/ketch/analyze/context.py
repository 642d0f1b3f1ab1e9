"""The analysis context: built once from the loaded resources, indexed for the analyzers.

Analyzers never see raw YAML; they read typed resources (`ketch.model.Resource`) and the
indexes here. Ketch has no Kubernetes API server, so Deployments' pod templates stand in
for Pods (a workload), Services and ServiceEntries make the service registry, and, as
istioctl does, an ingress gateway (`istio: ingressgateway` in `istio-system`, with Istio's
default Service) is assumed present unless the input brings gateway workloads of its own.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ketch.analyze.hosts import ALL_NAMESPACES, export_scopes, to_fqdn
from ketch.analyze.messages import Message, ResourceRef, new_message

ISTIO_SYSTEM = "istio-system"
EXPORT_TO_ANNOTATION = "networking.istio.io/exportTo"
CLUSTER_SCOPED = frozenset({"Namespace"})


def attr(obj: Any, name: str, default: Any = None) -> Any:
    """A field of a typed spec, or `default` when the object or the field is absent/unset."""
    if obj is None:
        return default
    if isinstance(obj, Mapping):
        value = obj.get(name, default)
    else:
        value = getattr(obj, name, default)
    return default if value is None else value


@dataclass(frozen=True)
class Workload:
    """A pod, or a Deployment's pod template standing in for its pods."""

    namespace: str
    name: str
    labels: Mapping[str, str]
    resource: Any = None  # None for the assumed default ingress gateway


@dataclass(frozen=True)
class ServicePort:
    number: int
    name: str = ""
    protocol: str = ""
    target_port: str = ""  # as written: a number or a container port name
    app_protocol: str = ""


@dataclass(frozen=True)
class MeshService:
    """One host of the service registry: a Kubernetes Service or a ServiceEntry host."""

    hostname: str
    namespace: str
    scopes: frozenset[str]
    ports: tuple[ServicePort, ...]
    selector: Mapping[str, str] = field(default_factory=dict)
    resource: Any = None

    def visible_from(self, namespace: str) -> bool:
        return ALL_NAMESPACES in self.scopes or namespace in self.scopes


DEFAULT_INGRESS_LABELS = {"app": "istio-ingressgateway", "istio": "ingressgateway"}
DEFAULT_INGRESS = Workload(ISTIO_SYSTEM, "istio-ingressgateway", DEFAULT_INGRESS_LABELS)
DEFAULT_INGRESS_SERVICE = MeshService(
    hostname=f"istio-ingressgateway.{ISTIO_SYSTEM}.svc.cluster.local",
    namespace=ISTIO_SYSTEM,
    scopes=frozenset({ALL_NAMESPACES}),
    ports=(
        ServicePort(15021, "status-port", "TCP", "15021"),
        ServicePort(80, "http2", "TCP", "8080"),
        ServicePort(443, "https", "TCP", "8443"),
    ),
    selector=DEFAULT_INGRESS_LABELS,
)


def _labels(meta: Any) -> dict[str, str]:
    return dict(attr(meta, "labels", {}) or {})


def kind_of(resource: Any) -> str:
    """The index key of a resource's kind: the Gateway API's Gateway is not Istio's."""
    return getattr(resource, "kind_id", None) or resource.kind


def _workloads(resources: Iterable[Any]) -> list[Workload]:
    out = []
    for r in resources:
        if r.kind == "WorkloadEntry":
            out.append(Workload(r.metadata.namespace, r.metadata.name, dict(attr(r.spec, "labels", {})), r))
        elif r.kind == "Pod":
            out.append(Workload(r.metadata.namespace, r.metadata.name, _labels(r.metadata), r))
        elif r.kind == "Deployment":
            if attr(r.spec, "replicas", 1) == 0:
                continue  # scaled to zero: no pods to select
            template = attr(r.spec, "template")
            out.append(Workload(r.metadata.namespace, r.metadata.name,
                                _labels(attr(template, "metadata")), r))
    return out


def _service_ports(spec: Any) -> tuple[ServicePort, ...]:
    ports = []
    for p in attr(spec, "ports", ()):
        number = attr(p, "port") or attr(p, "number") or 0
        target = attr(p, "target_port", "")
        ports.append(ServicePort(int(number), attr(p, "name", ""), attr(p, "protocol", ""),
                                 str(target) if target != "" else "", attr(p, "app_protocol", "")))
    return tuple(ports)


def _services(resources: Iterable[Any]) -> list[MeshService]:
    out = []
    for r in resources:
        ns = r.metadata.namespace
        if kind_of(r) == "Service":
            export = (attr(r.metadata, "annotations", {}) or {}).get(EXPORT_TO_ANNOTATION, "")
            scopes = export_scopes([e.strip() for e in export.split(",")], ns)
            out.append(MeshService(to_fqdn(ns, r.metadata.name), ns, scopes, _service_ports(r.spec),
                                   dict(attr(r.spec, "selector", {}) or {}), r))
        elif kind_of(r) == "ServiceEntry":
            scopes = export_scopes(attr(r.spec, "export_to", ()), ns)
            selector = dict(attr(attr(r.spec, "workload_selector"), "labels", {}) or {})
            for h in attr(r.spec, "hosts", ()):
                out.append(MeshService(to_fqdn(ns, h), ns, scopes, _service_ports(r.spec), selector, r))
    return out


class AnalysisContext:
    """Everything analyzers read, indexed once. Immutable after construction."""

    def __init__(self, resources: Iterable[Any], mesh: Any = None, lines: Any = None,
                 workloads: Iterable[Workload] = ()) -> None:
        """`workloads`: running instances (e.g. from the control plane's registry) besides
        those the resources declare."""
        self.lines = lines  # a LineResolver for field-level lines, else document lines
        # Like istioctl, the same resource given twice means the last one wins.
        by_key: dict[tuple[str, str | None, str], Any] = {}
        for r in resources:
            by_key[(kind_of(r), r.metadata.namespace, r.metadata.name)] = r
        self.resources: tuple[Any, ...] = tuple(by_key.values())
        self._by_key = by_key
        kinds: dict[str, list[Any]] = defaultdict(list)
        for r in self.resources:
            kinds[kind_of(r)].append(r)
        self._by_kind = {k: tuple(v) for k, v in kinds.items()}
        self.mesh = mesh

        workloads = _workloads(self.resources) + list(workloads)
        self.assumes_default_ingress = not any("istio" in w.labels for w in workloads)
        if self.assumes_default_ingress:
            workloads.append(DEFAULT_INGRESS)
        self.workloads: tuple[Workload, ...] = tuple(workloads)

        services = _services(self.resources)
        if self.assumes_default_ingress:
            services.append(DEFAULT_INGRESS_SERVICE)
        self.services: tuple[MeshService, ...] = tuple(services)
        self.k8s_services: tuple[MeshService, ...] = tuple(
            s for s in services if s.resource is None or s.resource.kind == "Service")
        self._by_host: dict[str, list[MeshService]] = defaultdict(list)
        for s in services:
            self._by_host[s.hostname].append(s)
        self._wildcard_services = tuple(s for s in services if s.hostname.startswith("*"))

        namespaces = {"default", ISTIO_SYSTEM}
        namespaces.update(r.metadata.name for r in self.of_kind("Namespace"))
        namespaces.update(r.metadata.namespace for r in self.resources if r.metadata.namespace)
        namespaces.update(w.namespace for w in self.workloads)
        self.namespaces: frozenset[str] = frozenset(namespaces)

    # --- lookups -------------------------------------------------------------------------

    def of_kind(self, kind: str) -> tuple[Any, ...]:
        return self._by_kind.get(kind, ())

    def find(self, kind: str, namespace: str | None, name: str) -> Any:
        return self._by_key.get((kind, namespace, name))

    def find_service(self, namespace: str, host: str) -> MeshService | None:
        """Istio's GetDestinationHost: the service a destination host names, seen from a namespace."""
        candidates = self._by_host.get(to_fqdn(namespace, host), ())
        # exported to the namespace itself first, then to all namespaces, then wildcard hosts
        for s in candidates:
            if namespace in s.scopes:
                return s
        for s in candidates:
            if ALL_NAMESPACES in s.scopes:
                return s
        bare = host[1:] if host.startswith("*") else host
        for s in self._wildcard_services:
            if s.visible_from(namespace) and bare.endswith(s.hostname[1:]):
                return s
        return None

    @property
    def root_namespace(self) -> str:
        return attr(self.mesh, "root_namespace", ISTIO_SYSTEM) or ISTIO_SYSTEM

    # --- messages ------------------------------------------------------------------------

    @staticmethod
    def ref(resource: Any) -> ResourceRef:
        ns = None if resource.kind in CLUSTER_SCOPED else resource.metadata.namespace
        return ResourceRef(resource.kind, ns, resource.metadata.name)

    def message(self, code: str, resource: Any, *args: Any, path: Sequence[str | int] = ()) -> Message:
        """A message about `resource`; `path` (YAML field names) points at the offending field."""
        origin = getattr(resource, "origin", None)
        line = attr(origin, "line")
        if path and self.lines is not None:
            line = self.lines.line(origin, path) or line
        return new_message(code, self.ref(resource), *args, file=attr(origin, "file"), line=line)


def full_name(resource: Any) -> str:
    """`namespace/name`, as Istio prints a resource's FullName."""
    return f"{resource.metadata.namespace}/{resource.metadata.name}"
