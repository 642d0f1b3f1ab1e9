"""`ketch validate`: exit codes, one line per error, warnings that do not fail, stdin."""

from __future__ import annotations

import re
from pathlib import Path

from click.testing import CliRunner

from ketch.cli import main

GOOD = """\
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: reviews
  namespace: prod
spec:
  host: reviews
  subsets:
  - name: v1
    labels:
      version: v1
"""

BAD = """\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts:
  - reviews
  http:
  - route:
    - destination:
        host: reviews
        subset: v1
      weight: 70
    - destination:
        host: reviews
        subset: v2
      weight: 20
    timeout: 10
    retries:
      attempts: 3
      retryOn: 5xx,bogus
"""

LINE = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+): (?P<kind>\w+) (?P<ns>[\w-]+)/(?P<name>[\w.-]+): (?P<path>\S+): (?P<reason>.+)$")


def run(*args: str, stdin: str | None = None):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(main, ["validate", *args], input=stdin)


def test_valid_file_exits_zero(tmp_path: Path) -> None:
    f = tmp_path / "dr.yaml"
    f.write_text(GOOD)
    result = run("-f", str(f))
    assert result.exit_code == 0, result.output
    assert result.stdout == ""


def test_errors_one_line_each_with_file_line_kind_path_reason(tmp_path: Path) -> None:
    f = tmp_path / "vs.yaml"
    f.write_text(BAD)
    result = run("-f", str(f))
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    parsed = [LINE.match(line) for line in lines]
    assert all(parsed), lines
    got = {(m["line"], m["path"], m["reason"]) for m in parsed if m}
    # a document that does not parse is not checked further, as istiod's unmarshal fails first
    assert got == {("18", "spec.http[0].timeout", "wrong type: expected string, got number 10")}
    assert all(m["file"] == str(f) and m["kind"] == "VirtualService" and m["ns"] == "default" for m in parsed if m)


def test_semantic_errors_after_types_are_fixed(tmp_path: Path) -> None:
    f = tmp_path / "vs.yaml"
    f.write_text(BAD.replace("timeout: 10", "timeout: 10s"))
    result = run("-f", str(f))
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        f"{f}:9: VirtualService default/reviews: spec.http[0].route: total destination weight 90 != 100",
        f"{f}:21: VirtualService default/reviews: spec.http[0].retries.retryOn: \"bogus\" is not a valid retryOn policy",
    ]


def test_repeatable_f_directories_and_stdin(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "dr.yml").write_text(GOOD)
    result = run("-f", str(tmp_path), "-f", "-", stdin=BAD)
    assert result.exit_code == 1
    assert all(line.startswith("-:") for line in result.stdout.splitlines())
    ok = run("-f", str(tmp_path), "-f", "-", stdin=GOOD.replace("name: reviews", "name: ratings"))
    assert ok.exit_code == 0, ok.output


def test_warnings_are_printed_but_do_not_fail(tmp_path: Path) -> None:
    f = tmp_path / "ef.yaml"
    f.write_text(
        "apiVersion: networking.istio.io/v1alpha3\nkind: EnvoyFilter\nmetadata: {name: lua}\n"
        "spec:\n  configPatches:\n  - applyTo: HTTP_FILTER\n    patch: {operation: INSERT_BEFORE, value: {name: envoy.lua}}\n"
    )
    result = run("-f", str(f))
    assert result.exit_code == 0
    assert "Ketch does not enforce it yet" in result.stderr
    assert result.stdout == ""


def test_unknown_kind_and_bad_yaml(tmp_path: Path) -> None:
    f = tmp_path / "x.yaml"
    f.write_text("apiVersion: networking.istio.io/v1\nkind: VirtualSvc\nmetadata: {name: x}\n---\nfoo: [\n")
    result = run("-f", str(f))
    assert result.exit_code == 1
    out = result.stdout
    assert f'{f}:2: VirtualSvc x: kind: unknown kind "VirtualSvc" in networking.istio.io/v1' in out
    assert "invalid YAML" in out


def test_missing_file_is_an_error(tmp_path: Path) -> None:
    result = run("-f", str(tmp_path / "nope.yaml"))
    assert result.exit_code == 1
    assert "cannot read" in result.stdout


def test_samples_validate(samples_dir: Path) -> None:
    result = run("-f", str(samples_dir))
    assert result.exit_code == 0, result.stdout


def test_json_output(tmp_path: Path) -> None:
    import json

    f = tmp_path / "vs.yaml"
    f.write_text(BAD.replace("timeout: 10", "timeout: 10s"))
    result = run("-f", str(f), "-o", "json")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["valid"] is False and report["resources"] == 0
    assert [(e["line"], e["path"]) for e in report["errors"]] == [(9, "spec.http[0].route"), (21, "spec.http[0].retries.retryOn")]
    assert report["errors"][0]["message"].startswith(f"{f}:9: VirtualService default/reviews: ")
    ok = run("-f", "-", "-o", "json", stdin=GOOD)
    assert ok.exit_code == 0 and json.loads(ok.stdout)["valid"] is True
