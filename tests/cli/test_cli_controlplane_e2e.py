"""End to end: a real `ketch control-plane` process with a state directory, the CLI against
it, a raw ADS stream standing in for a sidecar, and a restart that keeps the config."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc
import pytest
from click.testing import CliRunner
from envoy.config.core.v3.base_pb2 import Node
from envoy.service.discovery.v3 import ads_pb2_grpc
from envoy.service.discovery.v3.discovery_pb2 import DiscoveryRequest
from google.protobuf.struct_pb2 import Struct

from ketch.cli import main

pytestmark = pytest.mark.e2e

CDS = "type.googleapis.com/envoy.config.cluster.v3.Cluster"

CONFIG = """\
apiVersion: v1
kind: Service
metadata: {name: reviews}
spec:
  selector: {app: reviews}
  ports: [{name: http, port: 9080, targetPort: 9080}]
---
apiVersion: v1
kind: Service
metadata: {name: productpage}
spec:
  selector: {app: productpage}
  ports: [{name: http, port: 9080}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - route:
    - {destination: {host: reviews, subset: v1}, weight: 80}
    - {destination: {host: reviews, subset: v2}, weight: 20}
"""

NODE_ID = "sidecar~10.0.0.5~productpage-v1-e2e.default~default.svc.cluster.local"


class ControlPlaneProcess:
    def __init__(self, state_dir: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ketch", "control-plane", "--state-dir", str(state_dir),
             "--host", "127.0.0.1", "--xds-port", "0", "--http-port", "0",
             "--log-level", "warning"],
            stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=lambda: [lines.put(l) for l in self.proc.stderr], daemon=True).start()
        deadline = time.monotonic() + 60
        seen = []
        while time.monotonic() < deadline:
            try:
                line = lines.get(timeout=1)
            except queue.Empty:
                if self.proc.poll() is not None:
                    break
                continue
            seen.append(line)
            m = re.search(r"ready: xds \S+:(\d+) http \S+:(\d+)", line)
            if m:
                self.xds_port, self.http_port = int(m.group(1)), int(m.group(2))
                self.url = f"http://127.0.0.1:{self.http_port}"
                return
        self.stop()
        raise RuntimeError("control plane did not start:\n" + "".join(seen))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def cli(cp: ControlPlaneProcess, *args: str, input: str | None = None):
    return CliRunner().invoke(main, [*args, "--control-plane", cp.url], input=input)


class Sidecar:
    """An ADS stream subscribed to CDS as a sidecar, ACKing every response it gets."""

    def __init__(self, xds_port: int) -> None:
        self.requests: queue.Queue[DiscoveryRequest | None] = queue.Queue()
        meta = Struct()
        meta.update({"NAMESPACE": "default", "LABELS": {"app": "productpage", "version": "v1"},
                     "INTERCEPTION_MODE": "REDIRECT", "SERVICE_ACCOUNT": "bookinfo-productpage"})
        self.node = Node(id=NODE_ID, cluster="productpage.default", metadata=meta)
        self.requests.put(DiscoveryRequest(node=self.node, type_url=CDS))
        self.channel = grpc.insecure_channel(f"127.0.0.1:{xds_port}")
        stub = ads_pb2_grpc.AggregatedDiscoveryServiceStub(self.channel)
        self.responses = stub.StreamAggregatedResources(iter(self.requests.get, None), timeout=120)
        self.received = 0
        self.thread = threading.Thread(target=self._ack, daemon=True)
        self.thread.start()

    def _ack(self) -> None:
        try:
            for response in self.responses:
                self.received += 1
                self.requests.put(DiscoveryRequest(node=self.node, type_url=CDS,
                                                   version_info=response.version_info,
                                                   response_nonce=response.nonce))
        except grpc.RpcError:
            pass  # closed at the end of the test

    def close(self) -> None:
        self.requests.put(None)
        self.channel.close()


def eventually(check, timeout: float = 30.0):
    """Poll `check` until it returns a truthy value (pushes are debounced and asynchronous)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.2)


def test_cli_against_real_control_plane_and_restart(tmp_path):
    state = tmp_path / "state"
    cp = ControlPlaneProcess(state)
    try:
        result = cli(cp, "apply", "-f", "-", input=CONFIG)
        assert result.exit_code == 0, result.output
        assert "virtualservice.networking.istio.io/reviews created" in result.stdout
        bad = CONFIG.replace("weight: 20", "weight: 30")  # 80 + 30 != 100
        result = cli(cp, "apply", "-f", "-", input=bad)
        assert result.exit_code == 1 and "weight" in result.stdout
        version_before = cli(cp, "get", "vs", "reviews", "-o", "json").stdout

        sidecar = Sidecar(cp.xds_port)
        try:
            def reviews_v2_cluster():
                out = cli(cp, "proxy-config", "clusters", "productpage-v1-e2e").stdout
                pattern = r"reviews\.default\.svc\.cluster\.local\s+9080\s+v2\s+outbound\s+EDS"
                return out if any(re.match(pattern, l) for l in out.splitlines()) else None

            assert eventually(reviews_v2_cluster), cli(cp, "proxy-config", "clusters", "productpage-v1-e2e").output

            def synced_row():
                out = cli(cp, "proxy-status").stdout
                row = next((l for l in out.splitlines() if l.startswith("productpage-v1-e2e")), "")
                return row if row.split()[2:3] == ["SYNCED"] else None

            row = eventually(synced_row)
            assert row, cli(cp, "proxy-status").output
            assert row.split()[:2] == ["productpage-v1-e2e.default", "Kubernetes"]
            assert "NOT SENT" in row  # LDS, EDS, RDS never asked for
        finally:
            sidecar.close()
    finally:
        cp.stop()

    cp = ControlPlaneProcess(state)  # same state directory: same objects and versions
    try:
        assert cli(cp, "get", "vs", "reviews", "-o", "json").stdout == version_before
        result = cli(cp, "get", "svc")
        assert [l.split()[0] for l in result.stdout.splitlines()] == ["NAME", "productpage", "reviews"]
        result = cli(cp, "apply", "-f", "-", input=CONFIG)
        assert set(result.stdout.split()) >= {"unchanged"} and "created" not in result.stdout
    finally:
        cp.stop()
