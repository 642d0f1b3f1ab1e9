"""The Kubernetes kinds a local mesh needs: Namespace, Service, ServiceAccount, Deployment, Pod.

Fields the mesh reads are typed (snake_case of the Kubernetes API); the rest of the large
Pod API is accepted and kept as written (OpenSpec), so real manifests load unchanged.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from ketch.model.base import OpenSpec, Spec


class NamespaceSpec(OpenSpec):
    finalizers: tuple[str, ...] = ()


class ServicePort(Spec):
    name: str | None = None
    protocol: str | None = None
    app_protocol: str | None = None
    port: int | None = None
    target_port: int | str | None = None
    node_port: int | None = None


class ServiceSpec(OpenSpec):
    type: str | None = None
    ports: tuple[ServicePort, ...] = ()
    selector: dict[str, str] = {}
    cluster_ip: str | None = Field(default=None, alias="clusterIP")
    cluster_ips: tuple[str, ...] = Field(default=(), alias="clusterIPs")
    external_ips: tuple[str, ...] = Field(default=(), alias="externalIPs")
    load_balancer_ip: str | None = Field(default=None, alias="loadBalancerIP")
    external_name: str | None = None
    ip_families: tuple[str, ...] = ()
    ip_family_policy: str | None = None
    session_affinity: str | None = None
    publish_not_ready_addresses: bool | None = None


class ServiceAccountSpec(OpenSpec):
    """ServiceAccount has no spec; its top-level fields (secrets, ...) are kept here."""


class EnvVar(OpenSpec):
    name: str | None = None
    value: str | None = None
    value_from: dict[str, Any] | None = None


class ContainerPort(Spec):
    name: str | None = None
    container_port: int | None = None
    protocol: str | None = None
    host_port: int | None = None
    host_ip: str | None = Field(default=None, alias="hostIP")


class HTTPGetAction(OpenSpec):
    path: str | None = None
    port: int | str | None = None
    host: str | None = None
    scheme: str | None = None


class TCPSocketAction(OpenSpec):
    port: int | str | None = None
    host: str | None = None


class ExecAction(Spec):
    command: tuple[str, ...] = ()


class Probe(OpenSpec):
    http_get: HTTPGetAction | None = None
    tcp_socket: TCPSocketAction | None = None
    exec: ExecAction | None = None
    initial_delay_seconds: int | None = None
    period_seconds: int | None = None
    timeout_seconds: int | None = None
    success_threshold: int | None = None
    failure_threshold: int | None = None


class Container(OpenSpec):
    name: str | None = None
    image: str | None = None  # accepted and ignored: workloads run as local processes
    image_pull_policy: str | None = None
    command: tuple[str, ...] = ()
    args: tuple[str, ...] = ()
    working_dir: str | None = None
    env: tuple[EnvVar, ...] = ()
    ports: tuple[ContainerPort, ...] = ()
    readiness_probe: Probe | None = None
    liveness_probe: Probe | None = None
    startup_probe: Probe | None = None


class PodSpec(OpenSpec):
    containers: tuple[Container, ...] = ()
    init_containers: tuple[Container, ...] = ()
    service_account_name: str | None = None
    service_account: str | None = None
    restart_policy: str | None = None
    termination_grace_period_seconds: int | None = None
    host_network: bool | None = None


class PodTemplateMeta(OpenSpec):
    labels: dict[str, str] = {}
    annotations: dict[str, str] = {}
    name: str | None = None


class PodTemplateSpec(Spec):
    metadata: PodTemplateMeta | None = None
    spec: PodSpec | None = None


class LabelSelectorRequirement(Spec):
    key: str | None = None
    operator: str | None = None
    values: tuple[str, ...] = ()


class LabelSelector(Spec):
    match_labels: dict[str, str] = {}
    match_expressions: tuple[LabelSelectorRequirement, ...] = ()


class DeploymentSpec(OpenSpec):
    replicas: int | None = None
    selector: LabelSelector | None = None
    template: PodTemplateSpec | None = None
