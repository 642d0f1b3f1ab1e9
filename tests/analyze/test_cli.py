"""`ketch analyze`: output formats, thresholds and exit codes."""

import json
from pathlib import Path

import yaml
from click.testing import CliRunner

from ketch.cli import main

BROKEN_REF = """\
apiVersion: v1
kind: Service
metadata: {name: reviews}
spec:
  selector: {app: reviews}
  ports: [{name: http, port: 9080}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: reviews-v1}
spec:
  selector: {matchLabels: {app: reviews}}
  template:
    metadata: {labels: {app: reviews, version: v1}}
    spec: {containers: [{name: r, image: x}]}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http: [{route: [{destination: {host: reviews, subset: v9}}]}]
"""

WARNING_ONLY = """\
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: db}
spec:
  hosts: [db.example.com]
  ports: [{number: 5432, name: tcp, protocol: TCP}]
  resolution: DNS
"""


def run(args, input=None):
    return CliRunner().invoke(main, ["analyze", *args], input=input)


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_text_output_and_exit_79(tmp_path):
    f = write(tmp_path, "vs.yaml", BROKEN_REF)
    result = run(["-f", f])
    assert result.exit_code == 79
    # the line of the offending field (the subset), as istioctl reports it
    assert result.output == (
        f'Error [IST0101] (VirtualService default/reviews {f}:22) '
        'Referenced host+subset in destinationrule not found: "reviews+v9"\n'
    )


def test_json_and_yaml_output(tmp_path):
    f = write(tmp_path, "vs.yaml", BROKEN_REF)
    result = run(["-f", f, "-o", "json"])
    assert result.exit_code == 79
    assert json.loads(result.output) == [{
        "code": "IST0101",
        "level": "Error",
        "resource": "VirtualService default/reviews",
        "message": 'Referenced host+subset in destinationrule not found: "reviews+v9"',
        "origin": f"{f}:22",
        "documentationUrl": "https://istio.io/latest/docs/reference/config/analysis/ist0101/",
    }]
    as_yaml = run(["-f", f, "-o", "yaml"])
    assert yaml.safe_load(as_yaml.output) == json.loads(result.output)


def test_failure_threshold(tmp_path):
    f = write(tmp_path, "se.yaml", WARNING_ONLY)
    default = run(["-f", f])
    assert default.exit_code == 0
    assert "Warning [IST0134] (ServiceEntry default/db" in default.output
    assert run(["-f", f, "--failure-threshold", "Warning"]).exit_code == 79
    assert run(["-f", f, "--failure-threshold", "Info"]).exit_code == 79
    hidden = run(["-f", f, "--output-threshold", "Error"])
    assert hidden.exit_code == 0 and "IST0134" not in hidden.output


def test_no_issues_and_stdin():
    clean = BROKEN_REF.replace("subset: v9", "port: {number: 9080}")
    result = run(["-f", "-"], input=clean)
    assert result.exit_code == 0
    assert result.output == "\u2714 No validation issues found when analyzing namespace: default.\n"
    assert run(["-f", "-", "-o", "json"], input=clean).output.strip() == "[]"


def test_directory_and_repeated_paths(tmp_path):
    (tmp_path / "d").mkdir()
    write(tmp_path / "d", "a.yaml", BROKEN_REF)
    se = write(tmp_path, "se.yaml", WARNING_ONLY)
    result = run(["-f", str(tmp_path / "d"), "-f", se, "-o", "json"])
    assert sorted(m["code"] for m in json.loads(result.output)) == ["IST0101", "IST0134"]
    assert result.exit_code == 79


def test_invalid_resource_is_a_schema_error(tmp_path):
    f = write(tmp_path, "bad.yaml", """\
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: bad}
spec:
  host: reviews
  trafficPolicy: {tls: {mode: BOGUS}}
""")
    result = run(["-f", f, "-o", "json"])
    assert result.exit_code == 79
    # the invalid DestinationRule is reported, not analysed (no IST0174 for its unknown host)
    [msg] = json.loads(result.output)
    assert (msg["code"], msg["level"], msg["resource"]) == ("IST0106", "Error", "DestinationRule default/bad")
    assert msg["message"].startswith("Schema validation error: spec.trafficPolicy.tls.mode: ")
    assert msg["origin"] == f"{f}:6"  # the line of the bad field


def test_unreadable_input_exits_1(tmp_path):
    f = write(tmp_path, "broken.yaml", "kind: [unclosed\n")
    result = run(["-f", f])
    assert result.exit_code == 1
    assert "broken.yaml" in result.output


def test_mesh_config_file(tmp_path):
    f = write(tmp_path, "se.yaml", WARNING_ONLY)
    mesh = write(tmp_path, "mesh.yaml", """\
defaultConfig:
  proxyMetadata: {ISTIO_META_DNS_CAPTURE: "true", ISTIO_META_DNS_AUTO_ALLOCATE: "true"}
""")
    result = run(["-f", f, "--meshConfigFile", mesh, "--failure-threshold", "Warning"])
    assert result.exit_code == 0, result.output
    assert "No validation issues" in result.output


def test_list_analyzers():
    result = run(["-L"])
    assert result.exit_code == 0
    assert "virtualservice.DestinationRuleAnalyzer" in result.output


def test_suppress_by_flag_and_annotation(tmp_path):
    f = write(tmp_path, "vs.yaml", BROKEN_REF)
    assert run(["-f", f, "-S", "IST0101=VirtualService reviews.default"]).exit_code == 0
    assert run(["-f", f, "-S", "IST01*=VirtualService default/*"]).exit_code == 0
    assert run(["-f", f, "-S", "IST0101=VirtualService other.default"]).exit_code == 79
    assert run(["-f", f, "-S", "nonsense"]).exit_code == 2
    annotated = BROKEN_REF.replace(
        "metadata: {name: reviews}\nspec:\n  hosts",
        "metadata: {name: reviews, annotations: {galley.istio.io/analyze-suppress: 'IST0118,IST0101'}}\nspec:\n  hosts")
    assert "analyze-suppress" in annotated
    g = write(tmp_path, "annotated.yaml", annotated)
    result = run(["-f", g])
    assert (result.exit_code, "IST0101" in result.output) == (0, False)
