"""`ketch analyze` against the live mesh: config and registered workloads from the control
plane's REST API (a stand-in server speaking docs/contracts.md §3)."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from click.testing import CliRunner

from ketch.analyze.live import LiveError, fetch_live
from ketch.cli import main

CONFIG = {"items": [
    {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "reviews", "namespace": "default"},
     "spec": {"selector": {"app": "reviews"}, "ports": [{"name": "http", "port": 9080}]}},
    {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
     "metadata": {"name": "reviews", "namespace": "default"},
     "spec": {"hosts": ["reviews"], "http": [{"route": [{"destination": {"host": "reviews", "subset": "v2"}}]}]}},
    {"apiVersion": "networking.istio.io/v1", "kind": "Gateway", "metadata": {"name": "edge", "namespace": "default"},
     "spec": {"selector": {"app": "edge"},
              "servers": [{"port": {"number": 80, "name": "http", "protocol": "HTTP"}, "hosts": ["*"]}]}},
]}
INSTANCES = {"items": [
    {"name": "edge-1", "namespace": "default", "labels": {"app": "edge", "istio": "edge"}, "address": "10.0.0.9"},
    {"name": "reviews-v2-1", "namespace": "default", "labels": {"app": "reviews", "version": "v2"}},
]}


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        body = {"/api/v1/config": CONFIG, "/api/v1/registry/instances": INSTANCES}.get(self.path)
        data = json.dumps(body).encode()
        self.send_response(200 if body is not None else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def control_plane():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


def test_fetch_live_reads_config_and_instances(control_plane):
    live = fetch_live(control_plane)
    assert [d["kind"] for d in live.documents] == ["Service", "VirtualService", "Gateway"]
    assert [(w.namespace, w.name, dict(w.labels)) for w in live.workloads] == [
        ("default", "edge-1", {"app": "edge", "istio": "edge"}),
        ("default", "reviews-v2-1", {"app": "reviews", "version": "v2"}),
    ]


def test_analyze_the_live_mesh(control_plane):
    result = CliRunner().invoke(main, ["analyze", "--control-plane", control_plane, "-o", "json"])
    found = sorted((m["code"], m["resource"], m["message"]) for m in json.loads(result.output))
    # the registered edge instance satisfies the Gateway's selector (and replaces the assumed
    # ingress gateway); only the missing subset and the port the edge has no Service for remain
    assert [(c, r) for c, r, _ in found] == [
        ("IST0101", "VirtualService default/reviews"),
        ("IST0162", "Gateway default/edge"),
    ]
    assert found[0][2] == 'Referenced host+subset in destinationrule not found: "reviews+v2"'
    assert result.exit_code == 79
    text = CliRunner().invoke(main, ["analyze", "--control-plane", control_plane]).output
    assert 'Error [IST0101] (VirtualService default/reviews) Referenced host+subset' in text


def test_files_over_the_live_mesh(control_plane, tmp_path):
    rule = tmp_path / "dr.yaml"
    rule.write_text("""\
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  subsets: [{name: v2, labels: {version: v2}}]
""")
    result = CliRunner().invoke(
        main, ["analyze", "--live", "--control-plane", control_plane, "-f", str(rule), "-o", "json"])
    assert [m["code"] for m in json.loads(result.output)] == ["IST0162"]
    assert result.exit_code == 0
    files_only = CliRunner().invoke(main, ["analyze", "-f", str(rule), "-o", "json"])
    assert [m["code"] for m in json.loads(files_only.output)] == ["IST0174"]  # no reviews Service


def test_unreachable_control_plane_exits_1(unused_port):
    with pytest.raises(LiveError):
        fetch_live(f"http://127.0.0.1:{unused_port}")
    result = CliRunner().invoke(main, ["analyze", "--control-plane", f"http://127.0.0.1:{unused_port}"])
    assert result.exit_code == 1
    assert "cannot read" in result.output
