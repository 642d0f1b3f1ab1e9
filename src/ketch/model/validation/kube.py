"""Kubernetes API-server rules for the kinds a local mesh runs: Service, Deployment, Pod,
Namespace, ServiceAccount. Wording follows the API server's field errors."""

from __future__ import annotations

import re

from ketch.model.kube import Container, DeploymentSpec, PodSpec, ServiceSpec
from ketch.model.resource import Resource
from ketch.model.validation import checks
from ketch.model.validation.context import Ctx
from ketch.model.validation.paths import Path

_PORT_RANGE = "must be between 1 and 65535, inclusive"
_IANA = re.compile(r"^[a-z0-9]([a-z0-9-]{0,13}[a-z0-9])?$")
PROTOCOLS = ("TCP", "UDP", "SCTP")
SERVICE_TYPES = ("ClusterIP", "NodePort", "LoadBalancer", "ExternalName")


def _target_port(ctx: Ctx, path: Path, value: int | str | None) -> None:
    if value is None:
        return
    if isinstance(value, int):
        if not 1 <= value <= 65535:
            ctx.error(path, f"Invalid value: {value}: {_PORT_RANGE}")
    elif not _IANA.match(value) or not any(c.isalpha() for c in value) or "--" in value:
        ctx.error(path, f'Invalid value: "{value}": must be a valid port number or an IANA_SVC_NAME (at most 15 lowercase alphanumerics and -, with at least one letter)')


def validate_service(resource: Resource, ctx: Ctx) -> None:
    svc: ServiceSpec = resource.spec  # type: ignore[assignment]
    spec = Path("spec")
    if svc.type is not None and svc.type not in SERVICE_TYPES:
        supported = ", ".join(f'"{t}"' for t in SERVICE_TYPES)
        ctx.error(spec / "type", f'Unsupported value: "{svc.type}": supported values: {supported}')
    if not svc.ports and svc.type != "ExternalName" and svc.cluster_ip != "None":
        ctx.error(spec / "ports", "Required value")
    names: set[str] = set()
    seen: set[tuple[int, str]] = set()
    for i, port in enumerate(svc.ports):
        p = spec / "ports" / i
        if len(svc.ports) > 1 and not port.name:
            ctx.error(p / "name", "Required value")
        if port.name:
            if not checks.is_dns1123_label(port.name):
                ctx.error(p / "name", f'Invalid value: "{port.name}": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or \'-\', and must start and end with an alphanumeric character')
            if port.name in names:
                ctx.error(p / "name", f'Duplicate value: "{port.name}"')
            names.add(port.name)
        if port.port is None or not 1 <= port.port <= 65535:
            ctx.error(p / "port", f"Invalid value: {port.port or 0}: {_PORT_RANGE}")
        proto = port.protocol or "TCP"
        if proto not in PROTOCOLS:
            ctx.error(p / "protocol", f'Unsupported value: "{proto}": supported values: "SCTP", "TCP", "UDP"')
        key = (port.port or 0, proto)
        if key in seen:
            ctx.error(p, f'Duplicate value: {{"port": {key[0]}, "protocol": "{proto}"}}')
        seen.add(key)
        _target_port(ctx, p / "targetPort", port.target_port)
    ctx.labels(spec / "selector", svc.selector)


def _containers(ctx: Ctx, path: Path, containers: tuple[Container, ...], field: str, required: bool) -> None:
    if required and not containers:
        ctx.error(path / field, "Required value")
    names: set[str] = set()
    for i, c in enumerate(containers):
        p = path / field / i
        if not c.name:
            ctx.error(p / "name", "Required value")
        elif not checks.is_dns1123_label(c.name):
            ctx.error(p / "name", f'Invalid value: "{c.name}": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or \'-\', and must start and end with an alphanumeric character')
        elif c.name in names:
            ctx.error(p / "name", f'Duplicate value: "{c.name}"')
        names.add(c.name or "")
        for j, port in enumerate(c.ports):
            if port.container_port is None or not 1 <= port.container_port <= 65535:
                ctx.error(p / "ports" / j / "containerPort", f"Invalid value: {port.container_port or 0}: {_PORT_RANGE}")
            if port.name and (len(port.name) > 15 or not _IANA.match(port.name)):
                ctx.error(p / "ports" / j / "name", f'Invalid value: "{port.name}": must be no more than 15 characters')
        for j, env in enumerate(c.env):
            if not env.name:
                ctx.error(p / "env" / j / "name", "Required value")
        for probe_field, probe in (("readinessProbe", c.readiness_probe), ("livenessProbe", c.liveness_probe), ("startupProbe", c.startup_probe)):
            if probe is None:
                continue
            handlers = [h for h in (probe.http_get, probe.tcp_socket, probe.exec) if h is not None]
            if len(handlers) > 1:
                ctx.error(p / probe_field, "Forbidden: may not specify more than 1 handler type")
            if probe.http_get is not None:
                _target_port(ctx, p / probe_field / "httpGet" / "port", probe.http_get.port)
            if probe.tcp_socket is not None:
                _target_port(ctx, p / probe_field / "tcpSocket" / "port", probe.tcp_socket.port)


def pod_spec(ctx: Ctx, path: Path, spec: PodSpec | None) -> None:
    if spec is None:
        ctx.error(path, "Required value")
        return
    _containers(ctx, path, spec.containers, "containers", True)
    _containers(ctx, path, spec.init_containers, "initContainers", False)
    sa = spec.service_account_name or spec.service_account
    if sa and not checks.is_dns1123_subdomain(sa):
        ctx.error(path / "serviceAccountName", f'Invalid value: "{sa}": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, \'-\' or \'.\', and must start and end with an alphanumeric character')


def validate_pod(resource: Resource, ctx: Ctx) -> None:
    pod_spec(ctx, Path("spec"), resource.spec)  # type: ignore[arg-type]


def validate_deployment(resource: Resource, ctx: Ctx) -> None:
    d: DeploymentSpec = resource.spec  # type: ignore[assignment]
    spec = Path("spec")
    if d.replicas is not None and d.replicas < 0:
        ctx.error(spec / "replicas", f"Invalid value: {d.replicas}: must be greater than or equal to 0")
    if d.selector is None or (not d.selector.match_labels and not d.selector.match_expressions):
        ctx.error(spec / "selector", "Required value")
    else:
        ctx.labels(spec / "selector" / "matchLabels", d.selector.match_labels)
        for i, expr in enumerate(d.selector.match_expressions):
            if expr.operator not in ("In", "NotIn", "Exists", "DoesNotExist"):
                ctx.error(spec / "selector" / "matchExpressions" / i / "operator", f'Unsupported value: "{expr.operator}": supported values: "In", "NotIn", "Exists", "DoesNotExist"')
    if d.template is None:
        ctx.error(spec / "template", "Required value")
        return
    labels = d.template.metadata.labels if d.template.metadata is not None else {}
    ctx.labels(spec / "template" / "metadata" / "labels", labels)
    if d.selector is not None and any(labels.get(k) != v for k, v in d.selector.match_labels.items()):
        ctx.error(spec / "template" / "metadata" / "labels", "Invalid value: selector does not match template labels")
    pod_spec(ctx, spec / "template" / "spec", d.template.spec)


RULES = {
    "Service": [validate_service],
    "Pod": [validate_pod],
    "Deployment": [validate_deployment],
}
