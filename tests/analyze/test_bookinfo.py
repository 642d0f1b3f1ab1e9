"""Istio's Bookinfo samples through the analyzer: no errors, and the warnings Istio gives too."""

from pathlib import Path

import pytest

from ketch.analyze import Level, analyze
from ketch.model import MeshConfig, load_paths, load_text
from tests.conftest import SAMPLES

# destination-rule-all.yaml declares subsets whose Deployments live in Bookinfo manifests the
# samples here do not carry (bookinfo-ratings-v2*.yaml, bookinfo-details-v2.yaml); istioctl
# reports IST0173 (an Error) for them too. These stand-ins give those versions a workload.
OTHER_VERSIONS = "".join(
    f"""
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {app}-{version}}}
spec:
  selector: {{matchLabels: {{app: {app}, version: {version}}}}}
  template:
    metadata: {{labels: {{app: {app}, version: {version}}}}}
    spec: {{containers: [{{name: {app}, image: x}}]}}
"""
    for app, version in [("ratings", "v2"), ("ratings", "v2-mysql"), ("ratings", "v2-mysql-vm"), ("details", "v2")]
)


def bookinfo(samples: Path, *extra: str, with_other_versions: bool = True):
    net = samples / "bookinfo" / "networking"
    paths = [samples / "bookinfo" / "platform" / "bookinfo.yaml", net / "destination-rule-all.yaml",
             net / "bookinfo-gateway.yaml", *(net / e for e in extra)]
    result = load_paths(paths)
    assert not result.errors, [str(e) for e in result.errors]
    resources = result.resources
    if with_other_versions:
        resources += load_text(OTHER_VERSIONS, file="other-versions.yaml").resources
    return analyze(resources, mesh=MeshConfig(), load_errors=result.errors)


def summary(messages):
    return sorted((m.level.label, m.code, str(m.resource)) for m in messages)


VIRTUAL_SERVICES = sorted(p.name for p in (SAMPLES / "bookinfo" / "networking").glob("virtual-service-*.yaml"))


def test_platform_destination_rules_and_gateway_are_clean(samples_dir):
    assert summary(bookinfo(samples_dir)) == []


def test_without_the_other_versions_only_their_subsets_are_reported(samples_dir):
    assert summary(bookinfo(samples_dir, with_other_versions=False)) == [
        ("Error", "IST0173", "DestinationRule default/details"),
        ("Error", "IST0173", "DestinationRule default/ratings"),
        ("Error", "IST0173", "DestinationRule default/ratings"),
        ("Error", "IST0173", "DestinationRule default/ratings"),
    ]


@pytest.mark.parametrize("sample", VIRTUAL_SERVICES)
def test_each_virtual_service_sample_is_clean(samples_dir, sample):
    assert summary(bookinfo(samples_dir, sample)) == []


def test_samples_with_warnings_istio_gives_too(samples_dir):
    # The fault rule is followed by a second match-less rule: Istio's webhook warns about it too.
    assert summary(bookinfo(samples_dir, "fault-injection-details-v1.yaml")) == [
        ("Warning", "IST0130", "VirtualService default/details")]
    # TLS origination to googleapis without caCertificates: the server is not verified.
    assert summary(bookinfo(samples_dir, "egress-rule-google-apis.yaml")) == [
        ("Warning", "IST0129", "DestinationRule default/originate-tls-for-googleapis")]
    for clean in ("destination-rule-all-mtls.yaml", "destination-rule-reviews.yaml"):
        assert not [m for m in bookinfo(samples_dir, clean) if m.level >= Level.WARNING]
