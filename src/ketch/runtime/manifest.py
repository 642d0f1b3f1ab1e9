"""Workloads in Kubernetes shape: the parts of Service, Deployment and ServiceAccount that the
runtime acts on, as frozen values. Istio kinds pass through untouched to the control plane.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml

WORKLOAD_KINDS = frozenset({"Deployment", "Service", "ServiceAccount", "Namespace"})


class ManifestError(ValueError):
    pass


@dataclass(frozen=True)
class ServicePortSpec:
    name: str
    port: int
    target_port: int | str


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    namespace: str
    ports: tuple[ServicePortSpec, ...]
    selector: Mapping[str, str] = field(default_factory=dict)
    cluster_ip: str | None = None

    @property
    def hostname(self) -> str:
        return f"{self.name}.{self.namespace}.svc.cluster.local"

    def selects(self, labels: Mapping[str, str]) -> bool:
        return bool(self.selector) and all(labels.get(k) == v for k, v in self.selector.items())


@dataclass(frozen=True)
class ReadinessProbe:
    """httpGet (path set) or tcpSocket; port is a number (names resolved at parse time)."""

    port: int
    path: str | None = None
    period_seconds: float = 2.0


@dataclass(frozen=True)
class ContainerSpec:
    name: str
    command: tuple[str, ...]
    args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    ports: tuple[tuple[str, int], ...] = ()  # (name or "", containerPort)
    readiness: ReadinessProbe | None = None


@dataclass(frozen=True)
class DeploymentSpec:
    name: str
    namespace: str
    labels: Mapping[str, str]
    replicas: int
    service_account: str
    containers: tuple[ContainerSpec, ...]


@dataclass(frozen=True)
class PodSpec:
    """One replica of a deployment: what the runtime starts."""

    name: str
    namespace: str
    deployment: str
    labels: Mapping[str, str]
    service_account: str
    containers: tuple[ContainerSpec, ...]


@dataclass(frozen=True)
class Manifest:
    deployments: tuple[DeploymentSpec, ...] = ()
    services: tuple[ServiceSpec, ...] = ()
    service_accounts: tuple[tuple[str, str], ...] = ()
    namespaces: tuple[str, ...] = ()


def read_documents(paths: Iterable[str | Path]) -> list[dict[str, Any]]:
    """All YAML documents under `paths` (files, or directories searched for *.yaml/*.yml)."""
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml")))
        elif path.exists():
            files.append(path)
        else:
            raise ManifestError(f"{path}: no such file or directory")
    docs: list[dict[str, Any]] = []
    for file in files:
        try:
            for doc in yaml.safe_load_all(file.read_text()):
                if isinstance(doc, dict) and doc.get("kind"):
                    docs.append(doc)
        except yaml.YAMLError as exc:
            raise ManifestError(f"{file}: {exc}") from exc
    return docs


def _int_or_name(value: Any) -> int | str:
    if isinstance(value, int):
        return value
    text = str(value)
    return int(text) if text.isdigit() else text


def _container(raw: Mapping[str, Any], where: str) -> ContainerSpec:
    command = tuple(str(c) for c in raw.get("command") or ())
    args = tuple(str(a) for a in raw.get("args") or ())
    if not command and not args:
        raise ManifestError(f"{where}: container {raw.get('name')!r} has no command or args "
                            "(images are not run; give the local command)")
    if not command:
        command, args = args[:1], args[1:]
    env = tuple((str(e["name"]), str(e.get("value", ""))) for e in raw.get("env") or ()
                if isinstance(e, dict) and "name" in e)
    ports = tuple((str(p.get("name") or ""), int(p["containerPort"]))
                  for p in raw.get("ports") or () if "containerPort" in p)
    probe = None
    rp = raw.get("readinessProbe") or {}
    action = rp.get("httpGet") or rp.get("tcpSocket")
    if action and "port" in action:
        port = _int_or_name(action["port"])
        if isinstance(port, str):
            named = dict(ports)
            if port not in named:
                raise ManifestError(f"{where}: readinessProbe port {port!r} is not a named port")
            port = named[port]
        path = rp["httpGet"].get("path", "/") if rp.get("httpGet") else None
        probe = ReadinessProbe(port=port, path=path,
                               period_seconds=float(rp.get("periodSeconds", 2)))
    return ContainerSpec(name=str(raw.get("name") or "app"), command=command, args=args,
                         env=env, ports=ports, readiness=probe)


def parse(docs: Iterable[Mapping[str, Any]]) -> Manifest:
    deployments: list[DeploymentSpec] = []
    services: list[ServiceSpec] = []
    accounts: list[tuple[str, str]] = []
    namespaces: list[str] = []
    for doc in docs:
        kind = doc.get("kind")
        meta = doc.get("metadata") or {}
        name = str(meta.get("name") or "")
        ns = str(meta.get("namespace") or "default")
        spec = doc.get("spec") or {}
        where = f"{kind} {ns}/{name}"
        if kind == "Namespace":
            namespaces.append(name)
        elif kind == "ServiceAccount":
            accounts.append((ns, name))
        elif kind == "Service":
            ports = tuple(
                ServicePortSpec(name=str(p.get("name") or ""), port=int(p["port"]),
                                target_port=_int_or_name(p.get("targetPort", p["port"])))
                for p in spec.get("ports") or ())
            cluster_ip = spec.get("clusterIP")
            services.append(ServiceSpec(
                name=name, namespace=ns, ports=ports, selector=dict(spec.get("selector") or {}),
                cluster_ip=str(cluster_ip) if cluster_ip and cluster_ip != "None" else None))
        elif kind == "Deployment":
            template = spec.get("template") or {}
            tmeta = template.get("metadata") or {}
            pspec = template.get("spec") or {}
            containers = tuple(_container(c, where) for c in pspec.get("containers") or ())
            if not containers:
                raise ManifestError(f"{where}: no containers")
            deployments.append(DeploymentSpec(
                name=name, namespace=ns, labels=dict(tmeta.get("labels") or {}),
                replicas=int(spec.get("replicas", 1)),
                service_account=str(pspec.get("serviceAccountName") or "default"),
                containers=containers))
    return Manifest(tuple(deployments), tuple(services), tuple(accounts), tuple(namespaces))


def pod_name(deployment: str, index: int, salt: str) -> str:
    """`<deployment>-<5 chars>`, stable for one runtime (salt) and replica index."""
    digest = hashlib.sha256(f"{salt}/{deployment}/{index}".encode()).hexdigest()
    return f"{deployment}-{digest[:5]}"


def pods_for(deployment: DeploymentSpec, salt: str) -> list[PodSpec]:
    return [PodSpec(name=pod_name(deployment.name, i, salt), namespace=deployment.namespace,
                    deployment=deployment.name, labels=deployment.labels,
                    service_account=deployment.service_account,
                    containers=deployment.containers)
            for i in range(deployment.replicas)]


def instance_ports(pod: PodSpec, services: Iterable[ServiceSpec]) -> dict[str, int]:
    """Port name -> number the pod listens on, as the registry wants them: named container
    ports, and the name of every selecting service port mapped to its target port."""
    named = {n: p for c in pod.containers for n, p in c.ports if n}
    ports = dict(named)
    for svc in services:
        if svc.namespace != pod.namespace or not svc.selects(pod.labels):
            continue
        for sp in svc.ports:
            target = sp.target_port
            number = named.get(target) if isinstance(target, str) else target
            if number is not None and sp.name:
                ports.setdefault(sp.name, number)
    return ports
