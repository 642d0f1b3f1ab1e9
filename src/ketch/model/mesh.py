"""MeshConfig: the mesh-wide settings Istio keeps outside the CRDs, with Istio's defaults.

`load_mesh_config(path)` reads either a bare MeshConfig YAML (what `istioctl analyze
--meshConfigFile` takes) or the `istio` ConfigMap whose `data.mesh` holds it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import ValidationError

from ketch.model.base import OpenSpec, Spec
from ketch.model.common import LocalityLoadBalancerSetting, TCPKeepalive


class MeshOutboundTrafficPolicy(Spec):
    mode: Literal["REGISTRY_ONLY", "ALLOW_ANY"] = "ALLOW_ANY"


class MeshProxyConfig(OpenSpec):
    """meshconfig ProxyConfig (`defaultConfig`): the fields Ketch reads are typed."""

    discovery_address: str = "istiod.istio-system.svc:15012"
    proxy_admin_port: int = 15000
    status_port: int = 15020
    drain_duration: str = "45s"
    termination_drain_duration: str = "5s"
    concurrency: int | None = None
    proxy_metadata: dict[str, str] = {}
    hold_application_until_proxy_starts: bool | None = None
    tracing: dict[str, Any] | None = None


class ExtensionProviderConfig(OpenSpec):
    """One entry of `extensionProviders`: a name plus exactly one provider block
    (envoyExtAuthzHttp, envoyExtAuthzGrpc, zipkin, opentelemetry, prometheus, envoyFileAccessLog, ...)."""

    name: str


class DefaultProviders(Spec):
    tracing: tuple[str, ...] = ()
    metrics: tuple[str, ...] = ()
    access_logging: tuple[str, ...] = ()


class CertificateData(OpenSpec):
    pem: str | None = None
    spiffe_bundle_url: str | None = None
    cert_signers: tuple[str, ...] = ()
    trust_domains: tuple[str, ...] = ()


def _default_providers() -> tuple[ExtensionProviderConfig, ...]:
    return (
        ExtensionProviderConfig.model_validate({"name": "prometheus", "prometheus": {}}),
        ExtensionProviderConfig.model_validate({"name": "envoy", "envoyFileAccessLog": {"path": "/dev/stdout"}}),
    )


class MeshConfig(OpenSpec):
    """Istio's MeshConfig; unset fields take Istio's defaults (pkg/config/mesh DefaultMeshConfig)."""

    trust_domain: str = "cluster.local"
    trust_domain_aliases: tuple[str, ...] = ()
    root_namespace: str = "istio-system"
    outbound_traffic_policy: MeshOutboundTrafficPolicy = MeshOutboundTrafficPolicy()
    default_config: MeshProxyConfig = MeshProxyConfig()
    enable_auto_mtls: bool = True
    enable_tracing: bool = True
    access_log_file: str = ""
    access_log_format: str = ""
    access_log_encoding: Literal["TEXT", "JSON"] = "TEXT"
    connect_timeout: str = "10s"
    protocol_detection_timeout: str = "0s"
    dns_refresh_rate: str = "60s"
    ingress_class: str = "istio"
    ingress_service: str = "istio-ingressgateway"
    ingress_controller_mode: Literal["UNSPECIFIED", "OFF", "DEFAULT", "STRICT"] = "STRICT"
    ingress_selector: str | None = None
    h2_upgrade_policy: Literal["DO_NOT_UPGRADE", "UPGRADE"] = "DO_NOT_UPGRADE"
    enable_prometheus_merge: bool = True
    locality_lb_setting: LocalityLoadBalancerSetting | None = None
    tcp_keepalive: TCPKeepalive | None = None
    default_service_export_to: tuple[str, ...] = ("*",)
    default_virtual_service_export_to: tuple[str, ...] = ("*",)
    default_destination_rule_export_to: tuple[str, ...] = ("*",)
    extension_providers: tuple[ExtensionProviderConfig, ...] = _default_providers()
    default_providers: DefaultProviders = DefaultProviders(metrics=("prometheus",))
    discovery_selectors: tuple[dict[str, Any], ...] = ()
    ca_certificates: tuple[CertificateData, ...] = ()
    service_settings: tuple[dict[str, Any], ...] = ()
    default_http_retry_policy: dict[str, Any] | None = None
    mesh_mtls: dict[str, Any] | None = None
    tls_defaults: dict[str, Any] | None = None
    inbound_cluster_stat_name: str | None = None
    outbound_cluster_stat_name: str | None = None


class MeshConfigError(ValueError):
    """The mesh config file could not be read; `issues` holds one Issue per problem."""

    def __init__(self, issues: list[Any]) -> None:
        super().__init__("; ".join(str(i) for i in issues))
        self.issues = issues


def parse_mesh_config(data: Any, file: str = "-") -> MeshConfig:
    from ketch.model.meta import Issue

    if data is None:
        return MeshConfig()
    if isinstance(data, dict) and data.get("kind") == "ConfigMap":
        text = (data.get("data") or {}).get("mesh") or ""
        data = yaml.safe_load(text) or {}
    if not isinstance(data, dict):
        raise MeshConfigError([Issue(file, 1, "MeshConfig", "", "", "", "mesh config must be a mapping")])
    try:
        mesh = MeshConfig.model_validate(data)
    except ValidationError as exc:
        issues = [
            Issue(file, 1, "MeshConfig", "", "", ".".join(str(p) for p in err["loc"]), err["msg"])
            for err in exc.errors()
        ]
        raise MeshConfigError(issues) from exc
    problems = validate_mesh_config(mesh)
    if problems:
        raise MeshConfigError([Issue(file, 1, "MeshConfig", "", "", path, reason) for path, reason in problems])
    return mesh


def _trust_domain(domain: str) -> bool:
    from ketch.model.validation.checks import is_dns1123_label

    parts = domain.split(".")
    return bool(domain) and all(is_dns1123_label(p) or (i == len(parts) - 1 and p == "") for i, p in enumerate(parts))


def validate_mesh_config(mesh: MeshConfig) -> list[tuple[str, str]]:
    """istiod's ValidateMeshConfig rules that apply to what Ketch models: (path, reason) pairs."""
    from ketch.model.duration import DurationError, parse
    from ketch.model.validation.checks import duration, port

    out: list[tuple[str, str]] = []
    err = duration(mesh.connect_timeout)
    if err is None and not 0.001 <= parse(mesh.connect_timeout) <= 3600:
        err = f"time {mesh.connect_timeout} must be >1ms and <1h0m0s"
    if err:
        out.append(("connectTimeout", f"invalid connect timeout: {err}"))
    try:
        secs = parse(mesh.protocol_detection_timeout)
        if secs != 0 and abs(round(secs * 1000) - secs * 1000) > 1e-6:
            out.append(("protocolDetectionTimeout", "invalid protocol detection timeout: only durations to ms precision are supported"))
    except DurationError:
        out.append(("protocolDetectionTimeout", f'invalid protocol detection timeout: bad Duration: time: invalid duration "{mesh.protocol_detection_timeout}"'))
    if not _trust_domain(mesh.trust_domain):
        out.append(("trustDomain", f'trustDomain: trust domain name "{mesh.trust_domain}" invalid'))
    for i, alias in enumerate(mesh.trust_domain_aliases):
        if not _trust_domain(alias):
            out.append((f"trustDomainAliases[{i}]", f'trustDomainAliases[{i}], domain `{alias}` : trust domain name "{alias}" invalid'))
    for field, value in (("proxyAdminPort", mesh.default_config.proxy_admin_port), ("statusPort", mesh.default_config.status_port)):
        err = port(value)
        if err:
            out.append((f"defaultConfig.{field}", err))
    names: set[str] = set()
    for i, provider in enumerate(mesh.extension_providers):
        if not provider.name:
            out.append((f"extensionProviders[{i}].name", "empty extension provider name"))
        elif provider.name in names:
            out.append((f"extensionProviders[{i}].name", f"duplicate extension provider name {provider.name}"))
        names.add(provider.name)
    return out


def load_mesh_config(path: str | Path | None = None) -> MeshConfig:
    """Istio's defaults overlaid with the file at `path` (none: the defaults)."""
    if path is None:
        return MeshConfig()
    text = Path(path).read_text()
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        from ketch.model.meta import Issue

        raise MeshConfigError([Issue(str(path), 1, "MeshConfig", "", "", "", f"invalid YAML: {exc}")]) from exc
    return parse_mesh_config(data, str(path))
