"""The service model: services from Kubernetes `Service` and `ServiceEntry`, instances from
`WorkloadEntry` and ServiceEntry endpoints, and the endpoints of each service port.
"""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass
from enum import Enum
from types import MappingProxyType
from typing import Any, Iterable, Mapping

from ketch.controlplane.instance import InstanceSource, WorkloadInstance
from ketch.controlplane.translate.util import (
    attr,
    enum_name,
    export_set,
    fqdn,
    labels_match,
    seq,
)

EXPORT_TO_ANNOTATION = "networking.istio.io/exportTo"
_VIP_NET = ipaddress.ip_network("10.96.0.0/12")
_VIP_RESERVED = {0, 1, 10, _VIP_NET.num_addresses - 1}  # network, kube API, kube DNS, broadcast


class Protocol(str, Enum):
    HTTP = "HTTP"
    HTTP2 = "HTTP2"
    GRPC = "GRPC"
    GRPC_WEB = "GRPC-WEB"
    HTTPS = "HTTPS"
    TLS = "TLS"
    TCP = "TCP"
    MONGO = "Mongo"
    MYSQL = "MySQL"
    REDIS = "Redis"
    THRIFT = "Thrift"
    UDP = "UDP"

    @property
    def is_http(self) -> bool:
        return self in (Protocol.HTTP, Protocol.HTTP2, Protocol.GRPC, Protocol.GRPC_WEB)

    @property
    def is_http2(self) -> bool:
        return self in (Protocol.HTTP2, Protocol.GRPC)


_BY_NAME = {
    "http": Protocol.HTTP, "http2": Protocol.HTTP2, "h2c": Protocol.HTTP2,
    "grpc": Protocol.GRPC, "grpc-web": Protocol.GRPC_WEB, "https": Protocol.HTTPS,
    "tls": Protocol.TLS, "tcp": Protocol.TCP, "mongo": Protocol.MONGO, "mysql": Protocol.MYSQL,
    "redis": Protocol.REDIS, "thrift": Protocol.THRIFT, "udp": Protocol.UDP,
    "kubernetes.io/h2c": Protocol.HTTP2, "kubernetes.io/ws": Protocol.HTTP,
    "kubernetes.io/wss": Protocol.HTTPS,
}


def protocol_of(name: str | None, app_protocol: str | None = None) -> Protocol:
    """Istio's rule: appProtocol wins, else the port name's `PROTOCOL[-suffix]` prefix.

    An unrecognised name would make Istio sniff; Ketch does not sniff, so it stays opaque
    TCP (the safe choice: HTTP handling of a non-HTTP stream breaks it).
    """
    for candidate in (app_protocol, name):
        if not candidate:
            continue
        low = candidate.lower()
        if low in _BY_NAME:
            return _BY_NAME[low]
        prefix = low.split("-", 1)[0]
        if low.startswith("grpc-web"):
            return Protocol.GRPC_WEB
        if prefix in _BY_NAME:
            return _BY_NAME[prefix]
    return Protocol.TCP


def protocol_from_field(value: Any) -> Protocol:
    """ServiceEntry/Gateway `protocol` field (HTTP, HTTP2, GRPC, HTTPS, TLS, TCP, ...)."""
    return protocol_of(enum_name(value) or "tcp")


def service_vip(hostname: str) -> str:
    """A stable virtual IP for a hostname in 10.96.0.0/12 (Kubernetes' default service range).

    Deterministic so the local runtime's /etc/hosts entries and the control plane agree
    without talking; the kube API (.1) and DNS (.10) addresses are never handed out.
    """
    size = _VIP_NET.num_addresses
    digest = int.from_bytes(hashlib.sha256(hostname.lower().encode()).digest()[:8], "big")
    offset = digest % size
    while offset in _VIP_RESERVED:
        offset = (offset + 1) % size
    return str(_VIP_NET.network_address + offset)


class Resolution(str, Enum):
    CLIENT_SIDE_LB = "ClientSideLB"  # Kubernetes services, ServiceEntry STATIC
    PASSTHROUGH = "Passthrough"  # ServiceEntry NONE
    DNS = "DNS"
    DNS_ROUND_ROBIN = "DNSRoundRobin"


@dataclass(frozen=True)
class ServicePort:
    name: str
    number: int
    protocol: Protocol
    target_port: int | str | None = None


@dataclass(frozen=True)
class Service:
    hostname: str
    namespace: str
    name: str
    ports: tuple[ServicePort, ...]
    addresses: tuple[str, ...] = ()
    resolution: Resolution = Resolution.CLIENT_SIDE_LB
    mesh_external: bool = False
    export_to: frozenset[str] = frozenset({"*"})
    selector: Mapping[str, str] | None = None
    kind: str = "Service"  # or "ServiceEntry"
    # inline ServiceEntry endpoints; None means "select instances"
    endpoints: tuple[WorkloadInstance, ...] | None = None

    def __post_init__(self) -> None:
        if self.selector is not None:
            object.__setattr__(self, "selector", MappingProxyType(dict(self.selector)))

    def __hash__(self) -> int:
        return hash((self.kind, self.namespace, self.hostname))

    @property
    def vip(self) -> str | None:
        return self.addresses[0] if self.addresses else None

    def port(self, number: int) -> ServicePort | None:
        for p in self.ports:
            if p.number == number:
                return p
        return None

    def port_by_name(self, name: str) -> ServicePort | None:
        for p in self.ports:
            if p.name == name:
                return p
        return None


@dataclass(frozen=True)
class Endpoint:
    """One instance serving one service port, at the port the instance listens on."""

    instance: WorkloadInstance
    port: int
    address: str = ""

    @property
    def ip(self) -> str:
        return self.address or self.instance.address


def services_from_kubernetes(resource: Any) -> list[Service]:
    spec = resource.spec
    meta = resource.metadata
    ns = meta.namespace or "default"
    hostname = fqdn(meta.name, ns)
    ports = []
    for p in seq(attr(spec, "ports")):
        target = attr(p, "target_port")
        ports.append(ServicePort(
            name=attr(p, "name") or "",
            number=int(p.port),
            protocol=protocol_of(attr(p, "name"), attr(p, "app_protocol")),
            target_port=_int_or_str(target),
        ))
    # the model keeps Kubernetes' `clusterIP` spelling as an extra field (acronym casing)
    cluster_ip = attr(spec, "cluster_ip") or getattr(spec, "clusterIP", None)
    if cluster_ip and cluster_ip != "None":
        addresses = (str(cluster_ip),)
    else:
        addresses = (service_vip(hostname),)
    annotations = meta.annotations or {}
    export = export_set(str(annotations.get(EXPORT_TO_ANNOTATION, "")).split(","), frozenset({"*"}))
    selector = attr(spec, "selector")
    external = attr(spec, "external_name")
    if attr(spec, "type") == "ExternalName" and external:
        # Istio: a DNS-resolved service whose one endpoint is the external name
        target = WorkloadInstance(name=meta.name, namespace=ns, address=str(external),
                                  source=InstanceSource.SERVICE_ENTRY)
        return [Service(
            hostname=hostname, namespace=ns, name=meta.name, ports=tuple(ports),
            addresses=addresses, resolution=Resolution.DNS, mesh_external=True,
            export_to=export, kind="Service", endpoints=(target,),
        )]
    return [Service(
        hostname=hostname, namespace=ns, name=meta.name, ports=tuple(ports),
        addresses=addresses, export_to=export,
        # a Service without selector has no instances from the registry (manual endpoints)
        selector=dict(selector) if selector else None, kind="Service",
        endpoints=None if selector else (),
    )]


def services_from_service_entry(resource: Any) -> list[Service]:
    spec = resource.spec
    meta = resource.metadata
    ns = meta.namespace or "default"
    resolution = {
        "NONE": Resolution.PASSTHROUGH, "STATIC": Resolution.CLIENT_SIDE_LB,
        "DNS": Resolution.DNS, "DNS_ROUND_ROBIN": Resolution.DNS_ROUND_ROBIN,
    }.get(enum_name(attr(spec, "resolution")) or "NONE", Resolution.PASSTHROUGH)
    external = (enum_name(attr(spec, "location")) or "MESH_EXTERNAL") != "MESH_INTERNAL"
    ports = tuple(
        ServicePort(
            name=attr(p, "name") or "",
            number=int(p.number),
            protocol=protocol_from_field(attr(p, "protocol")),
            target_port=_int_or_str(attr(p, "target_port")),
        )
        for p in seq(attr(spec, "ports"))
    )
    selector = attr(spec, "workload_selector", "labels")
    endpoints: tuple[WorkloadInstance, ...] | None = None
    if not selector:
        endpoints = tuple(
            instance_from_workload_entry(e, f"{meta.name}-{i}", ns, InstanceSource.SERVICE_ENTRY)
            for i, e in enumerate(seq(attr(spec, "endpoints")))
        )
    export = export_set(attr(spec, "export_to"), frozenset({"*"}))
    given = tuple(str(a) for a in seq(attr(spec, "addresses")))
    out = []
    for host in seq(attr(spec, "hosts")):
        hostname = fqdn(str(host), ns)
        # Without addresses, allocate as Istio's DNS auto-allocation does, so that the
        # runtime's name resolution and the listeners agree; wildcards get none.
        addresses = given or (() if "*" in hostname else (service_vip(hostname),))
        out.append(Service(
            hostname=hostname, namespace=ns, name=meta.name, ports=ports, addresses=addresses,
            resolution=resolution, mesh_external=external, export_to=export,
            selector=dict(selector) if selector else None, kind="ServiceEntry",
            endpoints=endpoints,
        ))
    return out


def instance_from_workload_entry(
    spec: Any, name: str, namespace: str, source: InstanceSource = InstanceSource.WORKLOAD_ENTRY
) -> WorkloadInstance:
    return WorkloadInstance(
        name=name,
        namespace=namespace,
        address=str(attr(spec, "address") or ""),
        labels=dict(attr(spec, "labels") or {}),
        service_account=attr(spec, "service_account") or "default",
        ports={str(k): int(v) for k, v in (attr(spec, "ports") or {}).items()},
        locality=attr(spec, "locality") or "",
        weight=int(attr(spec, "weight") or 1),
        network=attr(spec, "network") or "",
        source=source,
    )


def endpoints_for(
    service: Service, port: ServicePort, instances: Iterable[WorkloadInstance]
) -> tuple[Endpoint, ...]:
    """The endpoints of one service port (instances must be in the service's namespace
    for selector-based services; the caller passes the namespace's instances)."""
    if service.endpoints is not None:
        chosen: Iterable[WorkloadInstance] = service.endpoints
    else:
        chosen = (
            i for i in instances
            if i.namespace == service.namespace and labels_match(service.selector, i.labels)
            and service.selector
        )
    out = []
    for inst in chosen:
        target = target_port(service, port, inst)
        if target is not None and inst.address:
            out.append(Endpoint(instance=inst, port=target))
    out.sort(key=lambda e: (e.ip, e.port, e.instance.name))
    return tuple(out)


def target_port(service: Service, port: ServicePort, inst: WorkloadInstance) -> int | None:
    if service.kind == "ServiceEntry":
        # WorkloadEntry/endpoint ports are keyed by the ServiceEntry port name
        if port.name in inst.ports:
            return int(inst.ports[port.name])
        if isinstance(port.target_port, int):
            return port.target_port
        return port.number
    tp = port.target_port
    if isinstance(tp, int):
        return tp
    if isinstance(tp, str):
        return int(inst.ports[tp]) if tp in inst.ports else None
    if port.name and port.name in inst.ports:
        return int(inst.ports[port.name])
    return port.number


def _int_or_str(value: Any) -> int | str | None:
    if value is None or value == "":
        return None
    if isinstance(value, int):
        return value
    text = str(value)
    return int(text) if text.isdigit() else text
