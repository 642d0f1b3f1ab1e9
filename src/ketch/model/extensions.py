"""EnvoyFilter, ProxyConfig (networking.istio.io) and WasmPlugin (extensions.istio.io).

Modelled and validated; the mesh does not enforce them yet (see validation.warnings)."""

from __future__ import annotations

from typing import Any, Literal

from ketch.model.base import Spec
from ketch.model.common import (
    Int32,
    PolicyTargetReference,
    PortSelector,
    Struct,
    TypeWorkloadSelector,
    UInt32,
)

# ---- EnvoyFilter -----------------------------------------------------------------------

ApplyTo = Literal[
    "INVALID",
    "LISTENER",
    "FILTER_CHAIN",
    "NETWORK_FILTER",
    "HTTP_FILTER",
    "ROUTE_CONFIGURATION",
    "VIRTUAL_HOST",
    "HTTP_ROUTE",
    "CLUSTER",
    "EXTENSION_CONFIG",
    "BOOTSTRAP",
    "LISTENER_FILTER",
]
PatchContext = Literal["ANY", "SIDECAR_INBOUND", "SIDECAR_OUTBOUND", "GATEWAY"]


class EnvoyFilterWorkloadSelector(Spec):
    labels: dict[str, str] = {}


class ProxyMatch(Spec):
    proxy_version: str | None = None
    metadata: dict[str, str] = {}


class SubFilterMatch(Spec):
    name: str | None = None


class FilterMatch(Spec):
    name: str | None = None
    sub_filter: SubFilterMatch | None = None


class FilterChainMatch(Spec):
    name: str | None = None
    sni: str | None = None
    transport_protocol: str | None = None
    application_protocols: str | None = None
    filter: FilterMatch | None = None
    destination_port: UInt32 | None = None


class ListenerMatch(Spec):
    port_number: UInt32 | None = None
    port_name: str | None = None
    filter_chain: FilterChainMatch | None = None
    listener_filter: str | None = None
    name: str | None = None


class RouteMatch(Spec):
    name: str | None = None
    action: Literal["ANY", "ROUTE", "REDIRECT", "DIRECT_RESPONSE"] | None = None


class VirtualHostMatch(Spec):
    name: str | None = None
    domain_name: str | None = None
    route: RouteMatch | None = None


class RouteConfigurationMatch(Spec):
    port_number: UInt32 | None = None
    port_name: str | None = None
    gateway: str | None = None
    vhost: VirtualHostMatch | None = None
    name: str | None = None


class ClusterMatch(Spec):
    port_number: UInt32 | None = None
    service: str | None = None
    subset: str | None = None
    name: str | None = None


class EnvoyConfigObjectMatch(Spec):
    context: PatchContext | None = None
    proxy: ProxyMatch | None = None
    listener: ListenerMatch | None = None
    route_configuration: RouteConfigurationMatch | None = None
    cluster: ClusterMatch | None = None


class Patch(Spec):
    operation: Literal[
        "INVALID", "MERGE", "ADD", "REMOVE", "INSERT_BEFORE", "INSERT_AFTER", "INSERT_FIRST", "REPLACE"
    ] | None = None
    value: Struct | None = None
    filter_class: Literal["UNSPECIFIED", "AUTHN", "AUTHZ", "STATS"] | None = None


class EnvoyConfigObjectPatch(Spec):
    apply_to: ApplyTo | None = None
    match: EnvoyConfigObjectMatch | None = None
    patch: Patch | None = None


class EnvoyFilter(Spec):
    workload_selector: EnvoyFilterWorkloadSelector | None = None
    target_refs: tuple[PolicyTargetReference, ...] = ()
    config_patches: tuple[EnvoyConfigObjectPatch, ...] = ()
    priority: Int32 | None = None


# ---- ProxyConfig -----------------------------------------------------------------------


class ProxyImage(Spec):
    image_type: str | None = None


class ProxyConfig(Spec):
    selector: TypeWorkloadSelector | None = None
    concurrency: Int32 | None = None
    environment_variables: dict[str, str] = {}
    image: ProxyImage | None = None


# ---- WasmPlugin ------------------------------------------------------------------------


class EnvValue(Spec):
    name: str | None = None
    value_from: Literal["INLINE", "HOST"] | None = None
    value: str | None = None


class VmConfig(Spec):
    env: tuple[EnvValue, ...] = ()


class TrafficSelector(Spec):
    mode: Literal["UNDEFINED", "CLIENT", "SERVER", "CLIENT_AND_SERVER"] | None = None
    ports: tuple[PortSelector, ...] = ()


class WasmPlugin(Spec):
    selector: TypeWorkloadSelector | None = None
    target_ref: PolicyTargetReference | None = None
    target_refs: tuple[PolicyTargetReference, ...] = ()
    url: str | None = None
    sha256: str | None = None
    image_pull_policy: Literal["UNSPECIFIED_POLICY", "IfNotPresent", "Always"] | None = None
    image_pull_secret: str | None = None
    plugin_config: dict[str, Any] | None = None
    plugin_name: str | None = None
    phase: Literal["UNSPECIFIED_PHASE", "AUTHN", "AUTHZ", "STATS"] | None = None
    priority: Int32 | None = None
    fail_strategy: Literal["FAIL_CLOSE", "FAIL_OPEN"] | None = None
    vm_config: VmConfig | None = None
    match: tuple[TrafficSelector, ...] = ()
    type: Literal["UNSPECIFIED_PLUGIN_TYPE", "HTTP", "NETWORK"] | None = None
