"""Every document under ../shared/istio-samples loads and validates."""

from __future__ import annotations

from pathlib import Path

import yaml

from ketch.model import dump_yaml, expand_paths, load_paths, load_text


def _documents(path: Path) -> int:
    return sum(1 for d in yaml.safe_load_all(path.read_text()) if d)


def test_every_sample_document_loads_and_validates(samples_dir: Path) -> None:
    files = [Path(f) for f in expand_paths([samples_dir])]
    assert files, "no sample files found"
    for file in files:
        result = load_paths([file])
        assert result.errors == (), "\n".join(str(e) for e in result.errors)
        assert len(result.resources) == _documents(file), file
        for resource in result.resources:
            assert resource.origin is not None and resource.origin.line >= 1


def test_samples_cover_the_kinds_we_expect(samples_dir: Path) -> None:
    kinds = {r.key.kind for r in load_paths([samples_dir]).resources}
    assert {"VirtualService", "DestinationRule", "Gateway", "ServiceEntry", "Service", "Deployment", "ServiceAccount"} <= kinds
    assert {"HTTPRoute", "TCPRoute", "Gateway.gateway.networking.k8s.io"} <= kinds


def test_gateway_api_documents_say_they_are_not_enforced(samples_dir: Path) -> None:
    result = load_paths([samples_dir / "tcp-echo" / "gateway-api"])
    assert result.errors == ()
    assert {w.kind for w in result.warnings} == {"Gateway", "TCPRoute"}
    assert all("does not enforce" in w.reason and w.level == "Warning" for w in result.warnings)


def test_samples_round_trip_through_dump(samples_dir: Path) -> None:
    first = load_paths([samples_dir]).resources
    again = load_text(dump_yaml(first), "dump.yaml")
    assert again.errors == ()
    assert again.resources == first


def test_bookinfo_typed_access(samples_dir: Path) -> None:
    result = load_paths([samples_dir / "bookinfo" / "networking" / "virtual-service-reviews-80-20.yaml"])
    (vs,) = result.resources
    weights = [(r.destination.subset, r.weight) for r in vs.spec.http[0].route]
    assert weights == [("v1", 80), ("v2", 20)]
    (dr,) = load_paths([samples_dir / "bookinfo" / "networking" / "destination-rule-all-mtls.yaml"]).resources[:1]
    assert dr.spec.traffic_policy.tls.mode == "ISTIO_MUTUAL"


def test_istio_reference_examples_validate() -> None:
    path = Path(__file__).parent / "data" / "istio-reference-examples.yaml"
    result = load_paths([path])
    assert result.errors == (), "\n".join(str(e) for e in result.errors)
    assert len(result.resources) == _documents(path)
    kinds = {r.kind for r in result.resources}
    assert {"Gateway", "VirtualService", "DestinationRule", "ServiceEntry", "Sidecar", "WorkloadEntry", "WorkloadGroup",
            "PeerAuthentication", "RequestAuthentication", "AuthorizationPolicy", "Telemetry", "EnvoyFilter",
            "ProxyConfig", "WasmPlugin", "Pod"} <= kinds
