"""DestinationRule, Gateway, ServiceEntry, WorkloadEntry, WorkloadGroup, Sidecar
(networking.istio.io), every field of Istio's API."""

from __future__ import annotations

from typing import Literal

from ketch.model.base import Spec
from ketch.model.common import (
    ClientTLSSettings,
    ConnectionPoolSettings,
    Destination,
    Duration,
    Int32,
    LocalityLoadBalancerSetting,
    Port,
    PortSelector,
    ServerTLSSettings,
    TypeWorkloadSelector,
    UInt32,
    UInt64,
    WorkloadSelector,
)

# ---- DestinationRule -------------------------------------------------------------------


class HTTPCookieAttribute(Spec):
    name: str | None = None
    value: str | None = None


class HTTPCookie(Spec):
    name: str | None = None
    path: str | None = None
    ttl: Duration | None = None
    attributes: tuple[HTTPCookieAttribute, ...] = ()


class RingHash(Spec):
    minimum_ring_size: UInt64 | None = None


class MagLev(Spec):
    table_size: UInt64 | None = None


class ConsistentHashLB(Spec):
    http_header_name: str | None = None
    http_cookie: HTTPCookie | None = None
    use_source_ip: bool | None = None
    http_query_parameter_name: str | None = None
    ring_hash: RingHash | None = None
    maglev: MagLev | None = None
    minimum_ring_size: UInt64 | None = None  # deprecated by ringHash


class WarmupConfiguration(Spec):
    duration: Duration | None = None
    minimum_percent: float | None = None
    aggression: float | None = None


SimpleLB = Literal["UNSPECIFIED", "LEAST_CONN", "RANDOM", "PASSTHROUGH", "ROUND_ROBIN", "LEAST_REQUEST"]


class LoadBalancerSettings(Spec):
    simple: SimpleLB | None = None
    consistent_hash: ConsistentHashLB | None = None
    locality_lb_setting: LocalityLoadBalancerSetting | None = None
    warmup_duration_secs: Duration | None = None
    warmup: WarmupConfiguration | None = None


class OutlierDetection(Spec):
    split_external_local_origin_errors: bool | None = None
    consecutive_local_origin_failures: UInt32 | None = None
    consecutive_gateway_errors: UInt32 | None = None
    consecutive_5xx_errors: UInt32 | None = None
    consecutive_errors: Int32 | None = None  # deprecated
    interval: Duration | None = None
    base_ejection_time: Duration | None = None
    max_ejection_percent: Int32 | None = None
    min_health_percent: Int32 | None = None


class TunnelSettings(Spec):
    protocol: str | None = None
    target_host: str | None = None
    target_port: UInt32 | None = None


class ProxyProtocol(Spec):
    version: Literal["V1", "V2"] | None = None


class RetryBudget(Spec):
    percent: float | None = None
    min_retry_concurrency: UInt32 | None = None


class PortTrafficPolicy(Spec):
    port: PortSelector | None = None
    load_balancer: LoadBalancerSettings | None = None
    connection_pool: ConnectionPoolSettings | None = None
    outlier_detection: OutlierDetection | None = None
    tls: ClientTLSSettings | None = None


class TrafficPolicy(Spec):
    load_balancer: LoadBalancerSettings | None = None
    connection_pool: ConnectionPoolSettings | None = None
    outlier_detection: OutlierDetection | None = None
    tls: ClientTLSSettings | None = None
    port_level_settings: tuple[PortTrafficPolicy, ...] = ()
    tunnel: TunnelSettings | None = None
    proxy_protocol: ProxyProtocol | None = None
    retry_budget: RetryBudget | None = None


class Subset(Spec):
    name: str | None = None
    labels: dict[str, str] = {}
    traffic_policy: TrafficPolicy | None = None


class DestinationRule(Spec):
    host: str | None = None
    traffic_policy: TrafficPolicy | None = None
    subsets: tuple[Subset, ...] = ()
    export_to: tuple[str, ...] = ()
    workload_selector: TypeWorkloadSelector | None = None


# ---- Gateway ---------------------------------------------------------------------------


class Server(Spec):
    port: Port | None = None
    bind: str | None = None
    hosts: tuple[str, ...] = ()
    tls: ServerTLSSettings | None = None
    default_endpoint: str | None = None
    name: str | None = None


class Gateway(Spec):
    servers: tuple[Server, ...] = ()
    selector: dict[str, str] = {}


# ---- WorkloadEntry / ServiceEntry / WorkloadGroup ---------------------------------------


class WorkloadEntry(Spec):
    address: str | None = None
    ports: dict[str, UInt32] = {}
    labels: dict[str, str] = {}
    network: str | None = None
    locality: str | None = None
    weight: UInt32 | None = None
    service_account: str | None = None


class ServiceEntry(Spec):
    hosts: tuple[str, ...] = ()
    addresses: tuple[str, ...] = ()
    ports: tuple[Port, ...] = ()
    location: Literal["MESH_EXTERNAL", "MESH_INTERNAL"] | None = None
    resolution: Literal["NONE", "STATIC", "DNS", "DNS_ROUND_ROBIN"] | None = None
    endpoints: tuple[WorkloadEntry, ...] = ()
    workload_selector: WorkloadSelector | None = None
    export_to: tuple[str, ...] = ()
    subject_alt_names: tuple[str, ...] = ()


class WorkloadGroupObjectMeta(Spec):
    labels: dict[str, str] = {}
    annotations: dict[str, str] = {}


class HTTPHeader(Spec):
    name: str | None = None
    value: str | None = None


class HTTPHealthCheckConfig(Spec):
    path: str | None = None
    port: UInt32 | None = None
    host: str | None = None
    scheme: str | None = None
    http_headers: tuple[HTTPHeader, ...] = ()


class TCPHealthCheckConfig(Spec):
    host: str | None = None
    port: UInt32 | None = None


class ExecHealthCheckConfig(Spec):
    command: tuple[str, ...] = ()


class GrpcHealthCheckConfig(Spec):
    port: UInt32 | None = None
    service: str | None = None


class ReadinessProbe(Spec):
    initial_delay_seconds: Int32 | None = None
    timeout_seconds: Int32 | None = None
    period_seconds: Int32 | None = None
    success_threshold: Int32 | None = None
    failure_threshold: Int32 | None = None
    http_get: HTTPHealthCheckConfig | None = None
    tcp_socket: TCPHealthCheckConfig | None = None
    exec: ExecHealthCheckConfig | None = None
    grpc: GrpcHealthCheckConfig | None = None


class WorkloadGroup(Spec):
    metadata: WorkloadGroupObjectMeta | None = None
    template: WorkloadEntry | None = None
    probe: ReadinessProbe | None = None


# ---- Sidecar ---------------------------------------------------------------------------

CaptureMode = Literal["DEFAULT", "IPTABLES", "NONE"]


class IstioIngressListener(Spec):
    port: Port | None = None
    bind: str | None = None
    capture_mode: CaptureMode | None = None
    default_endpoint: str | None = None
    tls: ServerTLSSettings | None = None
    connection_pool: ConnectionPoolSettings | None = None


class IstioEgressListener(Spec):
    port: Port | None = None
    bind: str | None = None
    capture_mode: CaptureMode | None = None
    hosts: tuple[str, ...] = ()


class OutboundTrafficPolicy(Spec):
    mode: Literal["REGISTRY_ONLY", "ALLOW_ANY"] | None = None
    egress_proxy: Destination | None = None


class Sidecar(Spec):
    workload_selector: WorkloadSelector | None = None
    ingress: tuple[IstioIngressListener, ...] = ()
    egress: tuple[IstioEgressListener, ...] = ()
    inbound_connection_pool: ConnectionPoolSettings | None = None
    outbound_traffic_policy: OutboundTrafficPolicy | None = None
