"""The proxy as translation sees it, parsed from the Envoy `Node` Istio's agent sends.

Node id: `TYPE~IP~POD.NAMESPACE~NAMESPACE.svc.cluster.local` (TYPE `sidecar` or `router`);
metadata keys follow Istio's agent (`NAMESPACE`, `LABELS`, `SERVICE_ACCOUNT`,
`WORKLOAD_NAME`, `INSTANCE_IPS`, `INTERCEPTION_MODE`, `CLUSTER_ID`, `MESH_ID`, and
`GENERATOR: grpc` from a proxyless gRPC bootstrap).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import Enum
from types import MappingProxyType
from typing import Any, Mapping

from google.protobuf import json_format


class ProxyType(str, Enum):
    SIDECAR = "sidecar"
    ROUTER = "router"
    GRPC = "grpc"  # proxyless gRPC client: a sidecar id with GENERATOR=grpc


class InterceptionMode(str, Enum):
    REDIRECT = "REDIRECT"  # pod mode: iptables capture, SO_ORIGINAL_DST
    NONE = "NONE"  # process mode: explicit HTTP proxy on loopback


class NodeError(ValueError):
    """The node id or metadata cannot be understood."""


@dataclass(frozen=True)
class ProxyNode:
    type: ProxyType
    id: str
    ip: str
    pod_name: str
    namespace: str
    dns_domain: str = "default.svc.cluster.local"
    labels: Mapping[str, str] = field(default_factory=dict)
    service_account: str = "default"
    workload_name: str = ""
    instance_ips: tuple[str, ...] = ()
    interception_mode: InterceptionMode = InterceptionMode.REDIRECT
    cluster_id: str = "Kubernetes"
    mesh_id: str = ""
    generator: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "labels", MappingProxyType(dict(self.labels)))

    def __hash__(self) -> int:
        return hash(self.scope_key())

    @classmethod
    def from_node(cls, node: Any) -> ProxyNode:
        """Parse an `envoy.config.core.v3.Node` (or anything with `id` and `metadata`)."""
        meta = _struct_to_dict(getattr(node, "metadata", None))
        return cls.from_id(node.id, meta)

    @classmethod
    def from_id(cls, node_id: str, metadata: Mapping[str, Any] | None = None) -> ProxyNode:
        meta = dict(metadata or {})
        if "~" not in node_id and node_id:
            # A hand-written gRPC bootstrap may use any id: read it as a workload name in the
            # metadata's namespace, so a stock client still gets served.
            ns = str(meta.get("NAMESPACE") or "default")
            ip = str(meta.get("INSTANCE_IPS") or "").split(",")[0]
            istio_id = f"sidecar~{ip}~{node_id}.{ns}~{ns}.svc.cluster.local"
            return replace(cls.from_id(istio_id, meta), id=node_id)
        parts = node_id.split("~")
        if len(parts) != 4:
            raise NodeError(f"node id {node_id!r}: want TYPE~IP~POD.NAMESPACE~DOMAIN")
        kind, ip, pod_ns, domain = parts
        try:
            ptype = ProxyType(kind)
        except ValueError:
            raise NodeError(f"node id {node_id!r}: unknown proxy type {kind!r}") from None
        if ptype is ProxyType.GRPC:
            raise NodeError(f"node id {node_id!r}: proxyless is signalled by GENERATOR metadata")
        pod, _, id_ns = pod_ns.rpartition(".")
        if not pod:
            pod, id_ns = pod_ns, ""
        namespace = str(meta.get("NAMESPACE") or id_ns or "default")
        generator = str(meta.get("GENERATOR") or "")
        if generator == "grpc":
            ptype = ProxyType.GRPC
        labels = meta.get("LABELS") or {}
        if not isinstance(labels, Mapping):
            raise NodeError("metadata LABELS must be a struct of strings")
        ips = meta.get("INSTANCE_IPS") or ip
        if isinstance(ips, str):
            instance_ips = tuple(p for p in ips.split(",") if p)
        else:
            instance_ips = tuple(str(p) for p in ips)
        mode = str(meta.get("INTERCEPTION_MODE") or "REDIRECT").upper()
        try:
            interception = InterceptionMode(mode)
        except ValueError:
            # TPROXY and other Istio modes capture like REDIRECT as far as config goes.
            interception = InterceptionMode.REDIRECT
        return cls(
            type=ptype,
            id=node_id,
            ip=ip,
            pod_name=pod,
            namespace=namespace,
            dns_domain=domain or f"{namespace}.svc.cluster.local",
            labels={str(k): str(v) for k, v in labels.items()},
            service_account=str(meta.get("SERVICE_ACCOUNT") or "default"),
            workload_name=str(meta.get("WORKLOAD_NAME") or pod),
            instance_ips=instance_ips,
            interception_mode=interception,
            cluster_id=str(meta.get("CLUSTER_ID") or "Kubernetes"),
            mesh_id=str(meta.get("MESH_ID") or ""),
            generator=generator,
        )

    def scope_key(self) -> tuple:
        """Every proxy input translation reads; equal keys get equal resources."""
        return (
            self.type.value,
            self.namespace,
            tuple(sorted(self.labels.items())),
            self.ip,
            self.instance_ips,
            self.interception_mode.value,
            self.service_account,
            self.workload_name,
        )

    @property
    def config_namespace(self) -> str:
        return self.namespace


def _struct_to_dict(struct: Any) -> dict[str, Any]:
    if struct is None:
        return {}
    if isinstance(struct, Mapping):
        return dict(struct)
    return json_format.MessageToDict(struct)
