"""End to end: `ketch control-plane` + `ketch proxy router` (real processes) serving Istio YAML.

A Gateway on a free port, a VirtualService splitting by header to two subsets of a ServiceEntry
whose WorkloadEntries are two local HTTP servers. The router must ACK everything it gets
(no NACKs), become ready, and route as the VirtualService says.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from conftest import free_port
from control_plane_process import ControlPlaneProcess

pytestmark = pytest.mark.e2e


def http_server(name: str) -> tuple[ThreadingHTTPServer, int]:
    class H(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = name.encode()
            self.send_response(200)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a) -> None:
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, srv.server_address[1]


def config(gw_port: int, v1: int, v2: int) -> str:
    return f"""
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: gw, namespace: default}}
spec:
  selector: {{istio: ingressgateway}}
  servers:
  - port: {{number: {gw_port}, name: http, protocol: HTTP}}
    hosts: ["*"]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: web, namespace: default}}
spec:
  hosts: [web.ketch.test]
  ports: [{{number: 80, name: http, protocol: HTTP}}]
  location: MESH_INTERNAL
  resolution: STATIC
  workloadSelector: {{labels: {{app: web}}}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{name: web-v1, namespace: default}}
spec: {{address: 127.0.0.1, labels: {{app: web, version: v1}}, ports: {{http: {v1}}}}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{name: web-v2, namespace: default}}
spec: {{address: 127.0.0.1, labels: {{app: web, version: v2}}, ports: {{http: {v2}}}}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: web, namespace: default}}
spec:
  host: web.ketch.test
  subsets:
  - {{name: v1, labels: {{version: v1}}}}
  - {{name: v2, labels: {{version: v2}}}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: web, namespace: default}}
spec:
  hosts: ["*"]
  gateways: [gw]
  http:
  - match: [{{headers: {{x-version: {{exact: v2}}}}}}]
    route: [{{destination: {{host: web.ketch.test, subset: v2}}}}]
  - route: [{{destination: {{host: web.ketch.test, subset: v1}}}}]
"""


def test_router_serves_gateway_and_virtual_service(tmp_path: Path):
    s1, p1 = http_server("v1")
    s2, p2 = http_server("v2")
    cp = ControlPlaneProcess(tmp_path)
    gw_port, admin_port, health_port = free_port(), free_port(), free_port()
    log = open(tmp_path / "router.log", "w+")
    router = None
    try:
        r = cp.apply(config(gw_port, p1, p2))
        assert r.status_code == 200, r.text
        router = subprocess.Popen(
            [sys.executable, "-m", "ketch", "proxy", "router", "--control-plane", f"127.0.0.1:{cp.xds_port}",
             "--workload", "gw", "--namespace", "default", "--label", "istio=ingressgateway",
             "--admin-port", str(admin_port), "--health-port", str(health_port)],
            stdout=log, stderr=subprocess.STDOUT)

        def output() -> str:
            log.flush()
            log.seek(0)
            return log.read()[-5000:]

        deadline = time.monotonic() + 60
        with httpx.Client(timeout=5) as c:
            while True:
                assert router.poll() is None, f"router exited:\n{output()}"
                try:
                    if c.get(f"http://127.0.0.1:{health_port}/healthz/ready").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, f"router not ready:\n{output()}\n{cp.output()}"
                time.sleep(0.1)
            info = c.get(f"http://127.0.0.1:{admin_port}/server_info").json()
            assert info["ads"]["nacks"] == [], info
            for _ in range(100):  # endpoints may arrive just after readiness
                if c.get(f"http://127.0.0.1:{gw_port}/").text == "v1":
                    break
                time.sleep(0.1)
            assert c.get(f"http://127.0.0.1:{gw_port}/").text == "v1"
            assert c.get(f"http://127.0.0.1:{gw_port}/", headers={"x-version": "v2"}).text == "v2"
            dump = c.get(f"http://127.0.0.1:{admin_port}/config_dump").json()
            assert any(d.get("dynamic_route_configs") for d in dump["configs"])
    finally:
        if router is not None:
            router.terminate()
            try:
                router.wait(timeout=15)
            except subprocess.TimeoutExpired:
                router.kill()
        cp.stop()
        s1.shutdown()
        s2.shutdown()
