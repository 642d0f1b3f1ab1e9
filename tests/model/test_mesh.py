"""MeshConfig: Istio's defaults, overlays from a file or the istio ConfigMap, validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from ketch.model import MeshConfig, MeshConfigError, load_mesh_config


def test_defaults_are_istios() -> None:
    mesh = MeshConfig()
    assert mesh.trust_domain == "cluster.local"
    assert mesh.outbound_traffic_policy.mode == "ALLOW_ANY"
    assert mesh.enable_auto_mtls is True
    assert mesh.root_namespace == "istio-system"
    assert mesh.default_service_export_to == ("*",)
    assert mesh.default_config.proxy_admin_port == 15000
    assert load_mesh_config(None) == mesh


def test_file_overlays_defaults(tmp_path: Path) -> None:
    f = tmp_path / "mesh.yaml"
    f.write_text(
        "trustDomain: example.org\noutboundTrafficPolicy: {mode: REGISTRY_ONLY}\n"
        "defaultVirtualServiceExportTo: ['.']\nextensionProviders:\n- name: otel\n  opentelemetry: {service: otel.observability.svc.cluster.local, port: 4317}\n"
    )
    mesh = load_mesh_config(f)
    assert mesh.trust_domain == "example.org"
    assert mesh.outbound_traffic_policy.mode == "REGISTRY_ONLY"
    assert mesh.default_virtual_service_export_to == (".",)
    assert mesh.enable_auto_mtls is True
    assert [p.name for p in mesh.extension_providers] == ["otel"]


def test_configmap_form(tmp_path: Path) -> None:
    f = tmp_path / "cm.yaml"
    f.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: istio, namespace: istio-system}\ndata:\n  mesh: |-\n    enableAutoMtls: false\n")
    assert load_mesh_config(f).enable_auto_mtls is False


@pytest.mark.parametrize(
    ("text", "path", "reason"),
    [
        ("outboundTrafficPolicy: {mode: DENY}", "outboundTrafficPolicy.mode", "Input should be"),
        ("connectTimeout: 2h", "connectTimeout", "invalid connect timeout: time 2h must be >1ms and <1h0m0s"),
        ("connectTimeout: '10'", "connectTimeout", 'invalid connect timeout: bad Duration: time: missing unit in duration "10"'),
        ("trustDomain: Bad_Domain", "trustDomain", 'trustDomain: trust domain name "Bad_Domain" invalid'),
        ("defaultConfig: {proxyAdminPort: 0}", "defaultConfig.proxyAdminPort", "port number 0 must be in the range 1..65535"),
        ("extensionProviders: [{name: a, prometheus: {}}, {name: a, prometheus: {}}]", "extensionProviders[1].name", "duplicate extension provider name a"),
    ],
)
def test_invalid_mesh_config(tmp_path: Path, text: str, path: str, reason: str) -> None:
    f = tmp_path / "mesh.yaml"
    f.write_text(text + "\n")
    with pytest.raises(MeshConfigError) as exc:
        load_mesh_config(f)
    assert any(i.path == path and i.reason.startswith(reason) for i in exc.value.issues), [str(i) for i in exc.value.issues]


def test_round_trip_through_dict() -> None:
    from ketch.model.mesh import parse_mesh_config

    mesh = parse_mesh_config({"trustDomain": "example.org", "defaultConfig": {"concurrency": 2, "proxyMetadata": {"A": "b"}}})
    again = parse_mesh_config(mesh.to_dict())
    assert again == mesh
    assert again.default_config.proxy_metadata == {"A": "b"}
