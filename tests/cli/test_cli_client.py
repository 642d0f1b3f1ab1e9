"""`ketch apply|get|delete|proxy-status|proxy-config` against the REST app on a real port."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "controlplane"))
from cli_server import ServedAPI  # noqa: E402
from rest_fakes import FakeProxies  # noqa: E402

from ketch.cli import main  # noqa: E402
from tests_free_port import closed_port_url  # noqa: E402

VS = """\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, subset: v1}
      weight: W1
    - destination: {host: reviews, subset: v2}
      weight: W2
"""

DR = """\
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: reviews
spec:
  host: reviews
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
"""

BROKEN = """\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: ratings
  namespace: prod
spec:
  hosts: [ratings]
  http:
  - route:
    - destination: {host: ratings}
      wieght: 100
"""


def cells(line: str) -> list[str]:
    """A table row's cells (columns are at least three spaces apart)."""
    return [c for c in re.split(r"\s{3,}", line.strip())]


def vs(w1: int) -> str:
    return VS.replace("W1", str(w1)).replace("W2", str(100 - w1))


@pytest.fixture(scope="module")
def served():
    with ServedAPI(FakeProxies()) as api:
        yield api


@pytest.fixture
def api(served):
    for r in served.store.list():
        served.store.delete(*r.key)
    return served


def run(api, *args: str, input: str | None = None):
    result = CliRunner().invoke(main, [*args, "--control-plane", api.url], input=input)
    return result


def test_apply_created_configured_unchanged(api, tmp_path):
    (tmp_path / "vs.yaml").write_text(vs(80))
    (tmp_path / "dr.yaml").write_text(DR)
    result = run(api, "apply", "-f", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "destinationrule.networking.istio.io/reviews created",
        "virtualservice.networking.istio.io/reviews created",
    ]
    (tmp_path / "vs.yaml").write_text(vs(50))
    result = run(api, "apply", "-f", str(tmp_path))
    assert result.stdout.splitlines() == [
        "destinationrule.networking.istio.io/reviews unchanged",
        "virtualservice.networking.istio.io/reviews configured",
    ]
    assert api.store.get("VirtualService", "default", "reviews").spec.http[0].route[0].weight == 50


def test_apply_from_stdin_and_dry_run(api):
    result = run(api, "apply", "-f", "-", "--dry-run", input=DR)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "destinationrule.networking.istio.io/reviews created (dry run)"
    assert api.store.list() == []


def test_invalid_apply_prints_errors_and_stores_nothing(api, tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(vs(80) + "---\n" + BROKEN)
    result = run(api, "apply", "-f", str(path))
    assert result.exit_code == 1
    (line,) = result.stdout.splitlines()
    assert line.startswith(f"{path}:")
    assert ": VirtualService prod/ratings: spec.http[0].route[0].wieght: " in line
    assert api.store.list() == []


def test_conflict_from_server_is_located(api, tmp_path):
    run(api, "apply", "-f", "-", input=vs(80))
    run(api, "apply", "-f", "-", input=vs(70))
    stale = tmp_path / "stale.yaml"
    stale.write_text(vs(10).replace("  name: reviews\n", '  name: reviews\n  resourceVersion: "1"\n'))
    result = run(api, "apply", "-f", str(stale))
    assert result.exit_code == 1
    assert result.stdout.startswith(f"{stale}:1: VirtualService default/reviews: metadata.resourceVersion: conflict")
    assert api.store.get("VirtualService", "default", "reviews").spec.http[0].route[0].weight == 70


def test_envoyfilter_warns_not_enforced(api):
    ef = "apiVersion: networking.istio.io/v1alpha3\nkind: EnvoyFilter\nmetadata: {name: lua}\nspec: {}\n"
    result = run(api, "apply", "-f", "-", input=ef)
    assert result.exit_code == 0, result.output
    assert "not enforced" in result.stderr
    assert "envoyfilter.networking.istio.io/lua created" in result.stdout


def test_get_table_yaml_json_and_aliases(api):
    run(api, "apply", "-f", "-", input=vs(80) + "---\n" + DR + "---\n"
        + BROKEN.replace("wieght", "weight"))
    for alias in ("vs", "virtualservice", "virtualservices", "VirtualService"):
        result = run(api, "get", alias)
        assert result.exit_code == 0, result.output
        header, row = result.stdout.splitlines()
        assert header.split() == ["NAME", "GATEWAYS", "HOSTS", "AGE"]
        assert row.split()[:2] == ["reviews", "[reviews]"]
    result = run(api, "get", "vs", "-A")
    rows = [line.split()[:2] for line in result.stdout.splitlines()]
    assert rows == [["NAMESPACE", "NAME"], ["default", "reviews"], ["prod", "ratings"]]
    result = run(api, "get", "dr", "reviews", "-o", "yaml")
    doc = yaml.safe_load(result.stdout)
    assert doc["kind"] == "DestinationRule" and doc["spec"]["host"] == "reviews"
    result = run(api, "get", "vs", "-n", "prod", "-o", "json")
    doc = json.loads(result.stdout)
    assert doc["kind"] == "List" and [i["metadata"]["name"] for i in doc["items"]] == ["ratings"]
    result = run(api, "get", "vs", "-o", "name")
    assert result.stdout.strip() == "virtualservice.networking.istio.io/reviews"


def test_get_missing_and_unknown(api):
    result = run(api, "get", "vs", "nope")
    assert result.exit_code == 1
    assert 'Error from server (NotFound): virtualservices.networking.istio.io "nope" not found' in result.stderr
    result = run(api, "get", "frobnicators")
    assert result.exit_code == 1 and 'resource type "frobnicators"' in result.output
    result = run(api, "get", "gw")
    assert result.exit_code == 0 and "No resources found in default namespace." in result.stderr


def test_delete_by_name_and_by_file(api, tmp_path):
    path = tmp_path / "all.yaml"
    path.write_text(vs(80) + "---\n" + DR)
    run(api, "apply", "-f", str(path))
    result = run(api, "delete", "dr", "reviews")
    assert result.exit_code == 0
    assert result.stdout.strip() == 'destinationrule.networking.istio.io "reviews" deleted'
    result = run(api, "delete", "-f", str(path))
    assert result.exit_code == 1  # the DestinationRule is already gone
    assert 'virtualservice.networking.istio.io "reviews" deleted' in result.stdout
    assert "NotFound" in result.stderr
    assert api.store.list() == []
    assert run(api, "delete", "-f", str(path), "--ignore-not-found").exit_code == 0


def test_proxy_status_table(api):
    result = run(api, "proxy-status")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["NAME", "CLUSTER", "CDS", "LDS", "EDS", "RDS", "ISTIOD", "VERSION"]
    by_name = {line.split()[0]: line for line in lines[1:]}
    assert set(by_name) == {"productpage-v1-7d8f.default", "reviews-v1-abcd.default",
                            "istio-ingressgateway-1.istio-system"}
    assert by_name["productpage-v1-7d8f.default"].split()[2:6] == ["SYNCED"] * 4
    reviews = by_name["reviews-v1-abcd.default"]
    assert "NACK (unsupported field: max_grpc_timeout)" in reviews and "STALE" in reviews
    assert by_name["istio-ingressgateway-1.istio-system"].split()[4:8] == ["NOT", "SENT", "NOT", "SENT"]


def test_proxy_config_tables(api):
    result = run(api, "proxy-config", "clusters", "productpage-v1-7d8f")
    assert result.exit_code == 0, result.output
    rows = [cells(line) for line in result.stdout.splitlines()]
    assert rows[0] == ["SERVICE FQDN", "PORT", "SUBSET", "DIRECTION", "TYPE", "DESTINATION RULE"]
    assert ["reviews.default.svc.cluster.local", "9080", "v1", "outbound", "EDS", "-"] in rows
    assert ["PassthroughCluster", "-", "-", "-", "ORIGINAL_DST", "-"] in rows
    assert ["9080", "-", "inbound", "STATIC", "-"] in rows  # istioctl leaves its FQDN empty

    result = run(api, "proxy-config", "listeners", "productpage-v1-7d8f.default")
    rows = [cells(line) for line in result.stdout.splitlines()]
    assert rows == [
        ["ADDRESSES", "PORT", "MATCH", "DESTINATION"],
        ["0.0.0.0", "15001", "ALL", "Cluster: PassthroughCluster"],
        ["0.0.0.0", "9080", "ALL", "Route: 9080"],
    ]

    result = run(api, "proxy-config", "routes", "productpage")
    assert "reviews.default.svc.cluster.local:9080" in result.stdout
    assert "reviews.default" in result.stdout.splitlines()[1].split()[-1]

    result = run(api, "proxy-config", "endpoints", "productpage")
    rows = [line.split() for line in result.stdout.splitlines()]
    assert rows[1:] == [
        ["10.10.0.7:9080", "HEALTHY", "OK", "outbound|9080|v1|reviews.default.svc.cluster.local"],
        ["10.10.0.8:9080", "UNHEALTHY", "OK", "outbound|9080|v1|reviews.default.svc.cluster.local"],
    ]

    result = run(api, "proxy-config", "clusters", "productpage", "-o", "json")
    names = [c["name"] for c in json.loads(result.stdout)]
    assert "outbound|9080|v2|reviews.default.svc.cluster.local" in names

    result = run(api, "proxy-config", "all", "productpage")
    assert result.exit_code == 0 and "SERVICE FQDN" in result.stdout and "ENDPOINT" in result.stdout


def test_proxy_config_unknown_or_ambiguous(api):
    result = run(api, "proxy-config", "clusters", "nobody")
    assert result.exit_code == 1 and "not connected" in result.output
    result = run(api, "proxy-config", "clusters", "sidecar")
    assert result.exit_code == 1 and "several proxies" in result.output


def test_unreachable_control_plane_is_one_clear_line(tmp_path):
    result = CliRunner().invoke(main, ["get", "vs", "--control-plane", closed_port_url()])
    assert result.exit_code == 1
    assert "cannot reach the Ketch control plane" in result.output
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_address_from_environment(api, monkeypatch):
    monkeypatch.setenv("KETCH_CONTROL_PLANE", api.url)
    run(api, "apply", "-f", "-", input=DR)
    result = CliRunner().invoke(main, ["get", "dr"])
    assert result.exit_code == 0 and "reviews" in result.stdout


@pytest.mark.parametrize("args, expected", [
    (["clusters", "--subset", "v2"], [["reviews.default.svc.cluster.local", "9080", "v2", "outbound", "EDS", "-"]]),
    (["clusters", "--direction", "inbound"], [["", "9080", "-", "inbound", "STATIC", "-"]]),
    (["clusters", "--fqdn", "PassthroughCluster"], [["PassthroughCluster", "-", "-", "-", "ORIGINAL_DST", "-"]]),
    (["listeners", "--port", "15001"], [["0.0.0.0", "15001", "ALL", "Cluster: PassthroughCluster"]]),
    (["routes", "--name", "nope"], []),
    (["endpoints", "--address", "10.10.0.8"],
     [["10.10.0.8:9080", "UNHEALTHY", "OK", "outbound|9080|v1|reviews.default.svc.cluster.local"]]),
])
def test_proxy_config_filters(api, args, expected):
    result = run(api, "proxy-config", args[0], "productpage", *args[1:])
    assert result.exit_code == 0, result.output
    rows = [re.split(r"\s{3,}", line.rstrip()) for line in result.stdout.splitlines()[1:]]
    assert rows == expected
