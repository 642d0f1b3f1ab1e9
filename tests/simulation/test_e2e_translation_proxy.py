"""End to end: translation served by the real control plane to the real proxy (process
mode), with real HTTP servers, inside a private network namespace so the fixed Istio
ports (15001, 15010, 15014) cannot collide with anything else. Needs root and `ip`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from ketch.controlplane.translate.service import service_vip

pytestmark = [pytest.mark.e2e, pytest.mark.root]

CONFIG = """
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: web}
spec:
  host: web
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web}
spec:
  hosts: [web]
  http:
  - match: [{headers: {x-canary: {exact: "1"}}}]
    route: [{destination: {host: web, subset: v2}}]
  - match: [{uri: {prefix: /teapot}}]
    directResponse: {status: 418, body: {string: teapot}}
  - route: [{destination: {host: web, subset: DEFAULT}}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: edge, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 8080, name: http, protocol: HTTP}
    hosts: ["*"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: edge}
spec:
  hosts: ["*"]
  gateways: [istio-system/edge]
  http:
  - match: [{uri: {prefix: /v2}}]
    rewrite: {uri: /}
    route: [{destination: {host: web, subset: v2}}]
"""


def _need_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root for a network namespace")
    if shutil.which("ip") is None or shutil.which("curl") is None:
        pytest.skip("needs iproute2 and curl")


@pytest.fixture
def netns():
    _need_root()
    name = "ktr" + uuid.uuid4().hex[:10]
    subprocess.run(["ip", "netns", "add", name], check=True)
    procs: list[subprocess.Popen] = []
    try:
        subprocess.run(["ip", "netns", "exec", name, "ip", "link", "set", "lo", "up"], check=True)
        yield name, procs
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        subprocess.run(["ip", "netns", "del", name], check=False)


def _spawn(ns: str, procs: list, args: list[str], log: Path) -> None:
    procs.append(subprocess.Popen(["ip", "netns", "exec", ns, *args], stdout=log.open("w"),
                                  stderr=subprocess.STDOUT))


def _curl(ns: str, *args: str) -> tuple[str, str]:
    out = subprocess.run(["ip", "netns", "exec", ns, "curl", "-s", "-m", "20", "-w", "\n%{http_code}",
                          *args], capture_output=True, text=True, timeout=40)
    body, _, code = out.stdout.rpartition("\n")
    return body.strip(), code.strip()


def _eventually(check, what: str, timeout: float = 90.0):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}; last={last!r}")


def test_routes_reach_the_real_proxy(netns, tmp_path: Path) -> None:
    ns, procs = netns
    for v, port in (("v1", 8081), ("v2", 8082)):
        d = tmp_path / v
        d.mkdir()
        (d / "index.html").write_text(v)
        _spawn(ns, procs, [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1",
                           "--directory", str(d)], tmp_path / f"{v}.log")
    _spawn(ns, procs, [sys.executable, "-m", "ketch", "control-plane", "--registry-ttl", "600"],
           tmp_path / "cp.log")
    _eventually(lambda: _curl(ns, "http://127.0.0.1:15014/healthz")[1] == "200", "control plane")

    def apply(text: str) -> None:
        body, code = _curl(ns, "-XPOST", "-H", "Content-Type: application/yaml",
                           "--data-binary", text, "http://127.0.0.1:15014/api/v1/config")
        assert code == "200", body

    apply(CONFIG.replace("subset: DEFAULT", "subset: v1"))
    for v, port in (("v1", 8081), ("v2", 8082)):
        inst = {"name": f"web-{v}", "namespace": "default", "labels": {"app": "web", "version": v},
                "address": "127.0.0.1", "ports": {"http": port}}
        body, code = _curl(ns, "-XPOST", "-d", json.dumps(inst),
                           "http://127.0.0.1:15014/api/v1/registry/instances")
        assert code == "200", body
    _spawn(ns, procs, [sys.executable, "-m", "ketch", "proxy", "sidecar", "--workload", "client",
                       "--namespace", "default", "--label", "app=client", "--ip", "127.0.0.1",
                       "--interception", "NONE", "--health-port", "0"], tmp_path / "proxy.log")

    _spawn(ns, procs, [sys.executable, "-m", "ketch", "proxy", "router", "--workload", "edge",
                       "--namespace", "istio-system", "--label", "istio=ingressgateway",
                       "--ip", "127.0.0.1", "--admin-port", "15100", "--health-port", "0"],
           tmp_path / "router.log")

    vip = service_vip("web.default.svc.cluster.local")
    via = ["-x", "http://127.0.0.1:15001"]
    _eventually(lambda: _curl(ns, *via, f"http://{vip}/") == ("v1", "200"), "the default route")
    assert _curl(ns, *via, "-H", "x-canary: 1", f"http://{vip}/") == ("v2", "200")
    assert _curl(ns, *via, f"http://{vip}/teapot") == ("teapot", "418")
    # the router: a Gateway listener with the bound VirtualService, prefix rewritten
    _eventually(lambda: _curl(ns, "http://127.0.0.1:8080/v2") == ("v2", "200"), "the gateway route")
    assert _curl(ns, "http://127.0.0.1:8080/other")[1] == "404"
    # a changed VirtualService reaches the running proxy
    apply(CONFIG.replace("subset: DEFAULT", "subset: v2"))
    _eventually(lambda: _curl(ns, *via, f"http://{vip}/") == ("v2", "200"), "the new default route")
