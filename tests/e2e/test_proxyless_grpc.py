"""Acceptance: a stock grpcio client (`xds:///` target) routed by Ketch's control plane.

Real processes: `ketch control-plane` on free ports; two gRPC servers registered as v1 (a
WorkloadEntry applied through the REST API) and v2 (the registration API) of a ServiceEntry;
a grpcio client in a subprocess (the xDS bootstrap is process-wide) that takes commands on
stdin and answers JSON counts. The client is never restarted.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import time
from concurrent import futures
from pathlib import Path

import grpc
import pytest

from control_plane_process import ControlPlaneProcess

pytestmark = pytest.mark.e2e

HOST = "echo.ketch.test"
PORT = 7070
METHOD = "/ketch.test.Echo/Who"

CLIENT = textwrap.dedent(r'''
    import json, sys, grpc
    target, method = sys.argv[1], sys.argv[2]
    channel = grpc.insecure_channel(target)
    call = channel.unary_unary(method)
    for line in sys.stdin:
        cmd = json.loads(line)
        counts = {}
        for _ in range(cmd["n"]):
            try:
                who = call(b"", timeout=cmd.get("timeout", 5), wait_for_ready=True,
                           metadata=tuple(cmd.get("headers", {}).items())).decode()
            except grpc.RpcError as exc:
                who = "error:" + exc.code().name
            counts[who] = counts.get(who, 0) + 1
        print(json.dumps(counts), flush=True)
''')


def echo_server(name: str) -> tuple[grpc.Server, int]:
    """A plain gRPC server whose one method answers its version name."""
    def who(request: bytes, context: grpc.ServicerContext) -> bytes:
        return name.encode()

    handler = grpc.method_handlers_generic_handler(
        "ketch.test.Echo", {"Who": grpc.unary_unary_rpc_method_handler(who)})
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, port


def service_yaml(v1_port: int) -> str:
    return f"""
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: echo, namespace: default}}
spec:
  hosts: [{HOST}]
  ports: [{{number: {PORT}, name: grpc, protocol: GRPC}}]
  location: MESH_INTERNAL
  resolution: STATIC
  workloadSelector: {{labels: {{app: echo}}}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{name: echo-v1, namespace: default}}
spec:
  address: 127.0.0.1
  labels: {{app: echo, version: v1}}
  ports: {{grpc: {v1_port}}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: echo, namespace: default}}
spec:
  host: {HOST}
  subsets:
  - {{name: v1, labels: {{version: v1}}}}
  - {{name: v2, labels: {{version: v2}}}}
"""


def virtual_service(v1: int, v2: int, probe: bool = False) -> str:
    probe_rule = f"""
  - name: probe
    match: [{{headers: {{x-probe: {{exact: "yes"}}}}}}]
    route: [{{destination: {{host: {HOST}, subset: v2}}}}]""" if probe else ""
    return f"""
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: echo, namespace: default}}
spec:
  hosts: [{HOST}]
  http:{probe_rule}
  - name: canary
    match: [{{headers: {{x-canary: {{exact: "yes"}}}}}}]
    route: [{{destination: {{host: {HOST}, subset: v2}}}}]
  - name: split
    route:
    - {{destination: {{host: {HOST}, subset: v1}}, weight: {v1}}}
    - {{destination: {{host: {HOST}, subset: v2}}, weight: {v2}}}
"""


class GrpcClient:
    def __init__(self, tmp: Path, xds_port: int) -> None:
        bootstrap = tmp / "bootstrap.json"
        bootstrap.write_text(json.dumps({
            "xds_servers": [{"server_uri": f"127.0.0.1:{xds_port}",
                             "channel_creds": [{"type": "insecure"}],
                             "server_features": ["xds_v3"]}],
            "node": {"id": "sidecar~127.0.0.1~grpc-client.default~default.svc.cluster.local",
                     "cluster": "grpc-client.default",
                     "metadata": {"GENERATOR": "grpc", "NAMESPACE": "default",
                                  "LABELS": {"app": "grpc-client"}}},
        }))
        env = dict(os.environ, GRPC_XDS_BOOTSTRAP=str(bootstrap))
        self.stderr = open(tmp / "client.log", "w+")
        self.proc = subprocess.Popen(
            [sys.executable, "-c", CLIENT, f"xds:///{HOST}:{PORT}", METHOD],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr, text=True, env=env)

    def calls(self, n: int, headers: dict[str, str] | None = None) -> dict[str, int]:
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(json.dumps({"n": n, "headers": headers or {}}) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            self.stderr.seek(0)
            raise AssertionError(f"grpc client died:\n{self.stderr.read()[-3000:]}")
        return json.loads(line)

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def mesh(tmp_path: Path):
    servers = {name: echo_server(name) for name in ("v1", "v2")}
    cp = ControlPlaneProcess(tmp_path)
    try:
        yield cp, servers, lambda: GrpcClient(tmp_path, cp.xds_port)
    finally:
        code = cp.stop()
        for server, _ in servers.values():
            server.stop(None)
        if code != 0:
            print(cp.output())
        assert code == 0, "control plane did not exit cleanly on SIGTERM"


def within(counts: dict[str, int], version: str, share: float, n: int) -> bool:
    return abs(counts.get(version, 0) / n - share) <= 0.05


def test_virtual_service_split_header_match_and_live_update(mesh, tmp_path: Path) -> None:
    cp, servers, start_client = mesh
    resp = cp.apply(service_yaml(servers["v1"][1]) + "---" + virtual_service(80, 20))
    assert resp.status_code == 200, resp.text
    reg = cp.http.post("/api/v1/registry/instances", json={
        "name": "echo-v2", "namespace": "default", "labels": {"app": "echo", "version": "v2"},
        "serviceAccount": "echo", "address": "127.0.0.1", "ports": {"grpc": servers["v2"][1]}})
    assert reg.status_code == 200, reg.text

    client = start_client()
    try:
        # The apply and the registration may land in two pushes: wait until both versions
        # answer (loops on chance, too: 0.8**40 that 40 calls all reach v1).
        deadline = time.monotonic() + 60
        while set(client.calls(40)) != {"v1", "v2"}:
            assert time.monotonic() < deadline, f"v1 and v2 never both served:\n{cp.output()}"
        n = 1000
        counts = client.calls(n)
        assert set(counts) <= {"v1", "v2"}, (counts, cp.output())
        assert within(counts, "v1", 0.80, n) and within(counts, "v2", 0.20, n), counts

        assert client.calls(100, {"x-canary": "yes"}) == {"v2": 100}

        # the proxy shows up, synced, as a proxyless gRPC client
        proxies = cp.http.get("/api/v1/proxies").json()["items"]
        [grpc_proxy] = [p for p in proxies if p["type"] == "grpc"]
        assert {t["type"] for t in grpc_proxy["types"].values()} >= {"LDS", "RDS", "CDS", "EDS"}
        dump = cp.http.get(f"/api/v1/proxies/{grpc_proxy['id']}/config").json()
        listeners = dump["configs"][0]["dynamicListeners"]
        assert [x["name"] for x in listeners] == [f"{HOST}:{PORT}"]

        # a new VirtualService, same client: a probe rule tells when it arrived
        resp = cp.apply(virtual_service(30, 70, probe=True))
        assert resp.status_code == 200, resp.text
        deadline = time.monotonic() + 30
        while client.calls(20, {"x-probe": "yes"}) != {"v2": 20}:  # 0.2**20 by chance
            assert time.monotonic() < deadline, "new VirtualService never reached the client"
        counts = client.calls(n)
        assert within(counts, "v1", 0.30, n) and within(counts, "v2", 0.70, n), counts
        assert client.calls(50, {"x-canary": "yes"}) == {"v2": 50}
        # the push of the new VirtualService was timed from the change to the client's ACK
        metrics = cp.http.get("/metrics").text
        for name in ('pilot_xds_pushes{type="rds"}', "pilot_xds_push_time_bucket", "pilot_xds 1"):
            assert name in metrics, name
        converged = re.search(r'pilot_proxy_convergence_time_count\{type="RDS"\} (\d+)', metrics)
        assert converged and int(converged.group(1)) >= 1, metrics
    finally:
        client.close()


INVALID = """---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: other, namespace: default}
spec:
  host: other.ketch.test
"""


def bad_config() -> str:
    """A valid DestinationRule after an invalid VirtualService: neither may be stored."""
    return virtual_service(50, 50).replace("weight: 50}", "weight: abc}", 1) + INVALID


def test_invalid_config_through_the_api_changes_nothing(mesh) -> None:
    cp, servers, _ = mesh
    assert cp.apply(service_yaml(servers["v1"][1]) + "---" + virtual_service(80, 20)).status_code == 200
    before = cp.http.get("/api/v1/config").json()["items"]
    resp = cp.apply(bad_config())
    assert resp.status_code == 400, resp.text
    errors = resp.json()["errors"]
    assert any(e["kind"] == "VirtualService" and "weight" in (e["path"] or "")
               for e in errors), errors
    assert cp.http.get("/api/v1/config").json()["items"] == before


def test_invalid_config_through_the_cli_changes_nothing(mesh, tmp_path: Path) -> None:
    cp, servers, _ = mesh
    env = dict(os.environ, KETCH_CONTROL_PLANE=cp.url)
    helped = subprocess.run([sys.executable, "-m", "ketch", "apply", "--help"],
                            capture_output=True, text=True, env=env, timeout=60)
    if "not built yet" in helped.stdout + helped.stderr:
        pytest.skip("`ketch apply` is not built yet (CLI client owned elsewhere)")
    assert cp.apply(service_yaml(servers["v1"][1]) + "---" + virtual_service(80, 20)).status_code == 200
    before = cp.http.get("/api/v1/config").json()["items"]
    bad_file = tmp_path / "bad.yaml"
    bad_file.write_text(bad_config())
    out = subprocess.run([sys.executable, "-m", "ketch", "apply", "-f", str(bad_file)],
                         capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode != 0
    assert "weight" in out.stdout + out.stderr
    assert cp.http.get("/api/v1/config").json()["items"] == before
