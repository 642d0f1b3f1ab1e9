"""Loader: documents, lists, JSON, directories, stdin, unknown kinds, lines, namespaces."""

from __future__ import annotations

import io
import json
from pathlib import Path

from ketch.model import KINDS, Issue, Resource, ResourceKey, dump_yaml, load_documents, load_paths, load_text
from ketch.model.duration import seconds

VS = """\
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
      weight: 100
"""


def test_loads_typed_resource_with_default_namespace() -> None:
    result = load_text(VS, "vs.yaml")
    assert result.errors == ()
    (vs,) = result.resources
    assert isinstance(vs, Resource)
    assert vs.key == ResourceKey("VirtualService", "default", "reviews")
    assert vs.spec.http[0].route[0].destination.subset == "v1"
    assert vs.origin is not None and vs.origin.file == "vs.yaml" and vs.origin.line == 1


def test_snake_case_input_is_accepted_and_equal() -> None:
    camel = load_text(
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: r}\n"
        "spec: {host: r, trafficPolicy: {connectionPool: {http: {http1MaxPendingRequests: 3}}}}\n"
    )
    snake = load_text(
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: r}\n"
        "spec: {host: r, traffic_policy: {connection_pool: {http: {http1_max_pending_requests: 3}}}}\n"
    )
    assert camel.errors == snake.errors == ()
    assert camel.resources == snake.resources
    assert snake.resources[0].spec.traffic_policy.connection_pool.http.http1_max_pending_requests == 3


def test_error_carries_line_and_field_path() -> None:
    text = VS.replace("      weight: 100", "      weight: 100\n      wieght: 3")
    result = load_text(text, "f.yaml")
    assert result.resources == ()
    (issue,) = result.errors
    assert issue.line == 14
    assert issue.path == "spec.http[0].route[0].wieght"
    assert str(issue) == 'f.yaml:14: VirtualService default/reviews: spec.http[0].route[0].wieght: unknown field "wieght"'


def test_unknown_enum_and_wrong_type() -> None:
    text = (
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: r, namespace: ns}\n"
        "spec:\n  host: r\n  trafficPolicy:\n    tls:\n      mode: STRICT\n    connectionPool:\n"
        "      tcp:\n        maxConnections: lots\n"
    )
    errors = {i.path: i for i in load_text(text).errors}
    assert errors["spec.trafficPolicy.tls.mode"].reason.startswith('unknown value "STRICT"')
    assert errors["spec.trafficPolicy.tls.mode"].line == 8
    assert "expected integer" in errors["spec.trafficPolicy.connectionPool.tcp.maxConnections"].reason
    assert errors["spec.trafficPolicy.connectionPool.tcp.maxConnections"].line == 11


def test_list_kind_and_json() -> None:
    doc = {"apiVersion": "v1", "kind": "List", "items": [json.loads(json.dumps(load_text(VS).resources[0].to_dict()))]}
    result = load_text(json.dumps(doc), "x.json")
    assert result.errors == ()
    assert [r.key for r in result.resources] == [ResourceKey("VirtualService", "default", "reviews")]


def test_unknown_kinds_are_reported_never_raised() -> None:
    text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n---\napiVersion: networking.istio.io/v1\nkind: VirtualServise\nmetadata: {name: c}\n"
    result = load_text(text)
    assert result.resources == ()
    assert [i.reason for i in result.errors] == ['unknown kind "VirtualServise" in networking.istio.io/v1']
    assert result.errors[0].line == 6
    assert result.warnings[0].kind == "ConfigMap"


def test_bad_yaml_is_an_issue() -> None:
    result = load_text("a: [\n", "bad.yaml")
    assert len(result.errors) == 1 and result.errors[0].file == "bad.yaml"


def test_directories_recursive_and_stdin(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "vs.yml").write_text(VS)
    (tmp_path / "svc.json").write_text(
        json.dumps({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s", "namespace": "n"}, "spec": {"ports": [{"port": 80, "targetPort": "http"}]}})
    )
    (tmp_path / "notes.txt").write_text("not config")
    stdin = io.StringIO(VS.replace("reviews\nspec", "ratings\nspec"))
    result = load_paths([tmp_path, "-"], stdin=stdin)
    assert result.errors == ()
    keys = sorted(r.key for r in result.resources)
    assert keys == [
        ResourceKey("Service", "n", "s"),
        ResourceKey("VirtualService", "default", "ratings"),
        ResourceKey("VirtualService", "default", "reviews"),
    ]
    svc = next(r for r in result.resources if r.kind == "Service")
    assert svc.spec.ports[0].target_port == "http"


def test_dump_and_load_are_equal_and_ignore_origin() -> None:
    first = load_text(VS, "one.yaml").resources
    again = load_text(dump_yaml(first), "two.yaml").resources
    assert first == again
    assert first[0].origin != again[0].origin


def test_cluster_scoped_kind_has_no_namespace() -> None:
    (ns,) = load_text("apiVersion: v1\nkind: Namespace\nmetadata: {name: prod}\n").resources
    assert ns.key == ResourceKey("Namespace", "", "prod")


def test_gateway_api_gateway_does_not_collide_with_istio_gateway() -> None:
    text = (
        "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: g}\nspec: {selector: {istio: ingressgateway}, servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ['*']}]}\n---\n"
        "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: g}\nspec: {gatewayClassName: istio, listeners: [{name: http, port: 80, protocol: HTTP}]}\n"
    )
    result = load_text(text)
    assert result.errors == ()
    assert {r.key.kind for r in result.resources} == {"Gateway", "Gateway.gateway.networking.k8s.io"}
    assert KINDS["Gateway.gateway.networking.k8s.io"].kind == "Gateway"


def test_load_documents_without_lines() -> None:
    result = load_documents([{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}, "spec": {"ports": "x"}}], "body")
    (issue,) = result.errors
    assert isinstance(issue, Issue) and issue.file == "body" and issue.path == "spec.ports"


def test_duration_seconds() -> None:
    assert seconds("1.5s") == 1.5
    assert seconds("100ms") == 0.1
    assert seconds("1m30s") == 90.0


def test_list_items_report_their_own_lines_and_namespaces() -> None:
    text = (
        "apiVersion: v1\nkind: List\nitems:\n"
        "- apiVersion: networking.istio.io/v1\n  kind: DestinationRule\n  metadata: {name: a, namespace: prod}\n"
        "  spec:\n    host: a\n    subsets:\n    - name: V1\n"
        "- apiVersion: v1\n  kind: ServiceAccount\n  metadata: {name: b}\n"
    )
    result = load_text(text, "list.yaml")
    (issue,) = result.errors
    assert (issue.line, issue.kind, issue.namespace, issue.path) == (10, "DestinationRule", "prod", "spec.subsets[0].name")
    (sa,) = result.resources
    assert sa.key == ResourceKey("ServiceAccount", "default", "b")
    assert sa.origin is not None and sa.origin.line == 11


def test_documents_after_a_bad_one_still_load() -> None:
    text = VS.replace("weight: 100", "weight: lots") + "---\n" + VS.replace("reviews\nspec", "ratings\nspec")
    result = load_text(text)
    assert [r.name for r in result.resources] == ["ratings"]
    assert [i.name for i in result.errors] == ["reviews"]
    assert result.resources[0].origin is not None and result.resources[0].origin.document == 1


def test_comments_and_empty_documents_are_skipped() -> None:
    text = "# leading comment\n---\n---\n" + VS + "---\n# trailing\n"
    result = load_text(text)
    assert result.errors == () and len(result.resources) == 1
    assert result.resources[0].origin is not None and result.resources[0].origin.line == 4


def test_with_meta_copies_and_equality_ignores_origin() -> None:
    (vs,) = load_text(VS, "a.yaml").resources
    moved = vs.with_meta(namespace="prod", resource_version="7")
    assert moved.key == ResourceKey("VirtualService", "prod", "reviews")
    assert moved.metadata.resource_version == "7" and vs.metadata.resource_version is None
    assert moved != vs
    assert vs.with_origin(None) == vs
    assert vs.to_dict()["spec"]["http"][0]["route"][0] == {"destination": {"host": "reviews", "subset": "v1"}, "weight": 100}


def test_structural_errors_in_maps_use_brackets() -> None:
    text = (
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: r\n  labels: {app: [x]}\nspec:\n  hosts: [r]\n"
        "  http:\n  - match:\n    - headers:\n        x-user: {exakt: bob}\n    route: [{destination: {host: r}}]\n"
    )
    errors = {i.path: i for i in load_text(text).errors}
    assert errors["spec.http[0].match[0].headers[x-user].exakt"].line == 11
    assert errors["spec.http[0].match[0].headers[x-user].exakt"].reason == 'unknown field "exakt"'
    assert errors["metadata.labels[app]"].line == 5


def test_duplicate_keys_are_errors_with_line_and_path() -> None:
    text = VS.replace("      weight: 100", "      weight: 100\n      weight: 0") + "---\n" + VS.replace("reviews\nspec", "ratings\nspec")
    result = load_text(text, "dup.yaml")
    (issue,) = result.errors
    assert (issue.line, issue.path, issue.name) == (14, "spec.http[0].route[0].weight", "reviews")
    assert issue.reason == 'duplicate key "weight" (first set on line 13)'
    assert [r.name for r in result.resources] == ["ratings"]


def test_unreachable_and_overlapping_rules_are_warnings() -> None:
    text = (
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: r}\nspec:\n  hosts: [r]\n  http:\n"
        "  - match: [{uri: {prefix: /debug}}]\n    route: [{destination: {host: r}}]\n"
        "  - match: [{uri: {prefix: /debugs}}]\n    route: [{destination: {host: r}}]\n"
        "  - match: [{uri: {prefix: /debug}}]\n    route: [{destination: {host: r}}]\n"
        "  - route: [{destination: {host: r}}]\n"
        "  - route: [{destination: {host: r}}]\n"
    )
    result = load_text(text)
    assert result.errors == () and len(result.resources) == 1
    reasons = {(w.path, w.reason) for w in result.warnings}
    assert reasons == {
        ("spec.http[1].match[0]", "virtualService rule #1 match #0 of prefix /debugs is not used (duplicate/overlapping match in rule #0 of prefix /debug on #0)"),
        ("spec.http[2].match[0]", "virtualService rule #2 match #0 is not used (duplicate/overlapping match in rule #0)"),
        ("spec.http[2]", "virtualService rule #2 not used (all matches used by prior rules)"),
        ("spec.http[4]", "virtualService rule #4 not used (only the last rule can have no matches)"),
    }
    assert {w.line for w in result.warnings} == {9, 11, 14}


def test_sidecar_duplicate_egress_hosts_are_warnings() -> None:
    text = (
        "apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: default, namespace: prod}\nspec:\n  egress:\n"
        "  - hosts: ['prod/*', './a.example.com', '*/*']\n"
    )
    result = load_text(text)
    assert result.errors == ()
    assert {(w.path, w.reason) for w in result.warnings} == {
        ("spec.egress[0].hosts[1]", "duplicated egress host: ./a.example.com"),
        ("spec.egress[0].hosts", "`*/*` host select all resources, no other hosts can be added"),
    }


def test_kinds_of_groups_ketch_does_not_serve_are_skipped_with_a_warning() -> None:
    text = (
        "apiVersion: install.istio.io/v1alpha1\nkind: IstioOperator\nmetadata: {name: x}\nspec: {profile: demo}\n---\n"
        "apiVersion: telemetry.istio.io/v1\nkind: Telemetri\nmetadata: {name: y}\n"
    )
    result = load_text(text)
    assert [i.kind for i in result.warnings] == ["IstioOperator"]
    assert [(i.kind, i.reason) for i in result.errors] == [("Telemetri", 'unknown kind "Telemetri" in telemetry.istio.io/v1')]
