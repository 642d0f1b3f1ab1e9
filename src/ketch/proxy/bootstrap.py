"""Envoy v3 bootstrap: load from YAML/JSON, or build one for `ketch proxy sidecar|router`.

`load_bootstrap(path)` parses with `json_format.ParseDict` (unknown fields are an error).
`build_bootstrap(BootstrapOptions)` writes what Istio's agent would: the node identity and
metadata of contracts §5, a static `xds-grpc` cluster to the control plane, ADS for CDS and
LDS, and the admin address.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from envoy.config.bootstrap.v3 import bootstrap_pb2
from google.protobuf import json_format

from ketch.proxy.protoutil import Unsupported

XDS_CLUSTER = "xds-grpc"


def load_bootstrap(path: str | Path) -> bootstrap_pb2.Bootstrap:
    text = Path(path).read_text()
    data = yaml.safe_load(text) or {}
    return parse_bootstrap(data)


def _register_typed_configs() -> None:
    """Import the extension protos a bootstrap's typed_config may name, so ParseDict finds them."""
    import importlib

    for mod in ("envoy.extensions.filters.network.http_connection_manager.v3.http_connection_manager_pb2",
                "envoy.extensions.filters.network.tcp_proxy.v3.tcp_proxy_pb2",
                "envoy.extensions.filters.http.router.v3.router_pb2",
                "envoy.extensions.filters.http.fault.v3.fault_pb2",
                "envoy.extensions.filters.http.cors.v3.cors_pb2",
                "envoy.extensions.upstreams.http.v3.http_protocol_options_pb2",
                "envoy.extensions.retry.host.previous_hosts.v3.previous_hosts_pb2",
                "envoy.extensions.transport_sockets.raw_buffer.v3.raw_buffer_pb2",
                "envoy.extensions.access_loggers.stream.v3.stream_pb2",
                "envoy.extensions.access_loggers.file.v3.file_pb2",
                "envoy.extensions.filters.listener.original_dst.v3.original_dst_pb2",
                "envoy.extensions.filters.listener.tls_inspector.v3.tls_inspector_pb2",
                "envoy.extensions.filters.listener.http_inspector.v3.http_inspector_pb2"):
        importlib.import_module(mod)


def parse_bootstrap(data: dict) -> bootstrap_pb2.Bootstrap:
    _register_typed_configs()
    try:
        return json_format.ParseDict(data, bootstrap_pb2.Bootstrap())
    except json_format.ParseError as exc:
        raise Unsupported(f"bootstrap: {exc}") from None


@dataclass(frozen=True)
class BootstrapOptions:
    kind: str = "sidecar"  # sidecar | router
    control_plane: str = "127.0.0.1:15010"
    workload: str = "unknown"
    namespace: str = "default"
    labels: dict[str, str] = field(default_factory=dict)
    service_account: str = "default"
    ip: str = "127.0.0.1"
    interception: str = "REDIRECT"
    admin_port: int = 15000
    mesh_id: str = "cluster.local"
    cluster_id: str = "Kubernetes"

    @classmethod
    def from_env(cls, kind: str, **flags) -> BootstrapOptions:
        env = os.environ
        given = {k: v for k, v in flags.items() if v not in (None, "", (), {})}
        return cls(
            kind=kind,
            control_plane=given.get("control_plane") or env.get("KETCH_CONTROL_PLANE_XDS", "127.0.0.1:15010"),
            workload=given.get("workload") or env.get("POD_NAME", "unknown"),
            namespace=given.get("namespace") or env.get("POD_NAMESPACE", "default"),
            labels=dict(given.get("labels") or {}),
            service_account=given.get("service_account") or env.get("SERVICE_ACCOUNT", "default"),
            ip=given.get("ip") or env.get("INSTANCE_IP", "127.0.0.1"),
            interception=given.get("interception") or "REDIRECT",
            admin_port=int(given.get("admin_port") or 15000),
        )


def _split_hostport(value: str, default_port: int) -> tuple[str, int]:
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        return host, int(rest.lstrip(":") or default_port)
    host, sep, port = value.rpartition(":")
    if not sep:
        return value, default_port
    return host, int(port)


def build_bootstrap(o: BootstrapOptions) -> bootstrap_pb2.Bootstrap:
    ns = o.namespace
    app = o.labels.get("app", o.workload)
    node_id = f"{o.kind}~{o.ip}~{o.workload}.{ns}~{ns}.svc.cluster.local"
    cp_host, cp_port = _split_hostport(o.control_plane, 15010)
    data = {
        "node": {
            "id": node_id,
            "cluster": f"{app}.{ns}",
            "metadata": {
                "NAMESPACE": ns, "LABELS": dict(o.labels), "SERVICE_ACCOUNT": o.service_account,
                "WORKLOAD_NAME": o.workload, "INSTANCE_IPS": o.ip, "INTERCEPTION_MODE": o.interception,
                "CLUSTER_ID": o.cluster_id, "MESH_ID": o.mesh_id,
            },
        },
        "staticResources": {"clusters": [{
            "name": XDS_CLUSTER, "type": "STRICT_DNS" if not _is_ip(cp_host) else "STATIC",
            "connectTimeout": "1s", "http2ProtocolOptions": {},
            "loadAssignment": {"clusterName": XDS_CLUSTER, "endpoints": [{"lbEndpoints": [{"endpoint": {
                "address": {"socketAddress": {"address": cp_host, "portValue": cp_port}}}}]}]},
        }]},
        "dynamicResources": {
            "adsConfig": {"apiType": "GRPC", "transportApiVersion": "V3",
                          "grpcServices": [{"envoyGrpc": {"clusterName": XDS_CLUSTER}}]},
            "cdsConfig": {"ads": {}, "resourceApiVersion": "V3"},
            "ldsConfig": {"ads": {}, "resourceApiVersion": "V3"},
        },
        "admin": {"address": {"socketAddress": {"address": "127.0.0.1", "portValue": o.admin_port}}},
    }
    return parse_bootstrap(data)


def _is_ip(host: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


def ads_target(b: bootstrap_pb2.Bootstrap) -> str | None:
    """host:port of the ADS server named by dynamic_resources.ads_config, if any."""
    dr = b.dynamic_resources
    if not dr.HasField("ads_config"):
        return None
    ads = dr.ads_config
    if ads.api_type not in (2, 5):  # GRPC / AGGREGATED_GRPC: state of the world only
        raise Unsupported(f"ads_config.api_type {ads.api_type}: only state-of-the-world GRPC is supported")
    for gs in ads.grpc_services:
        if gs.HasField("envoy_grpc"):
            name = gs.envoy_grpc.cluster_name
            for c in b.static_resources.clusters:
                if c.name == name:
                    for loc in c.load_assignment.endpoints:
                        for lbe in loc.lb_endpoints:
                            sa = lbe.endpoint.address.socket_address
                            return f"{sa.address}:{sa.port_value}"
            raise Unsupported(f"ads_config: cluster {name!r} not in static_resources")
        if gs.HasField("google_grpc"):
            return gs.google_grpc.target_uri
    raise Unsupported("ads_config: no grpc_services")


def node_metadata(b: bootstrap_pb2.Bootstrap) -> dict:
    return json_format.MessageToDict(b.node.metadata) if b.node.HasField("metadata") else {}
