"""Transparent capture: iptables REDIRECT to 15001 inside a network namespace, SO_ORIGINAL_DST
recovery and hand-off to the listener matching the original destination (contracts §4).

Needs root, `ip` and `iptables`; each test makes its own uniquely named namespace.
"""

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

pytestmark = [pytest.mark.root, pytest.mark.e2e]

HCM = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
TCP = "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy"
ROUTER = {"name": "envoy.filters.http.router",
          "typedConfig": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}

UPSTREAM = r"""
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = ("backend saw host=" + self.headers.get("host", "") + " path=" + self.path).encode()
        self.send_response(200); self.send_header("content-length", str(len(body))); self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a): pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"""


def _need() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root for network namespaces and iptables")
    for tool in ("ip", "iptables", "curl"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} not installed")


def sh(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(args, check=True, capture_output=True, text=True)


@pytest.fixture
def netns():
    _need()
    name = f"kt{os.getpid() % 100000}{uuid.uuid4().hex[:6]}"
    try:
        sh("ip", "netns", "add", name)
    except subprocess.CalledProcessError as exc:
        pytest.skip(f"cannot create a network namespace: {exc.stderr.strip()}")
    try:
        ex = ("ip", "netns", "exec", name)
        sh(*ex, "ip", "link", "set", "lo", "up")
        # a veth pair inside the namespace gives the service range a route (names are per-namespace)
        sh(*ex, "ip", "link", "add", "svc0", "type", "veth", "peer", "name", "svc1")
        sh(*ex, "ip", "addr", "add", "10.96.0.1/16", "dev", "svc0")
        sh(*ex, "ip", "addr", "add", "10.97.0.1/16", "dev", "svc0")
        sh(*ex, "ip", "link", "set", "svc0", "up")
        sh(*ex, "ip", "link", "set", "svc1", "up")
        # as istio-init does for outbound: service traffic goes to the sidecar's 15001
        sh(*ex, "iptables", "-t", "nat", "-A", "OUTPUT", "-p", "tcp", "-d", "10.96.0.0/16",
           "-j", "REDIRECT", "--to-ports", "15001")
        # stands in for inbound capture (PREROUTING in a pod): this range goes to 15006
        sh(*ex, "iptables", "-t", "nat", "-A", "OUTPUT", "-p", "tcp", "-d", "10.97.0.0/16",
           "-j", "REDIRECT", "--to-ports", "15006")
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True)


def bootstrap() -> dict:
    outbound = {
        "name": "virtualOutbound", "address": {"socketAddress": {"address": "0.0.0.0", "portValue": 15001}},
        "useOriginalDst": True,
        "filterChains": [{"filters": [{"name": "envoy.filters.network.tcp_proxy",
                                       "typedConfig": {"@type": TCP, "statPrefix": "BlackHole",
                                                       "cluster": "BlackHoleCluster"}}]}]}
    http_80 = {
        "name": "0.0.0.0_80", "address": {"socketAddress": {"address": "0.0.0.0", "portValue": 80}},
        "bindToPort": False,
        "filterChains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager", "typedConfig": {
            "@type": HCM, "statPrefix": "outbound_0.0.0.0_80", "httpFilters": [ROUTER],
            "routeConfig": {"name": "80", "virtualHosts": [{
                "name": "web:80", "domains": ["web", "web:80", "10.96.0.10", "10.96.0.10:80"],
                "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "outbound|80||web"}}]}]}}}]}]}
    tcp_vip = {
        "name": "10.96.0.20_9000", "address": {"socketAddress": {"address": "10.96.0.20", "portValue": 9000}},
        "bindToPort": False,
        "filterChains": [{"filters": [{"name": "envoy.filters.network.tcp_proxy",
                                       "typedConfig": {"@type": TCP, "statPrefix": "tcp", "cluster": "outbound|80||web"}}]}]}

    inbound = {
        "name": "virtualInbound", "address": {"socketAddress": {"address": "0.0.0.0", "portValue": 15006}},
        "listenerFilters": [{"name": "envoy.filters.listener.original_dst", "typedConfig": {
            "@type": "type.googleapis.com/envoy.extensions.filters.listener.original_dst.v3.OriginalDst"}}],
        "filterChains": [
            {"name": "inbound|8080||", "filterChainMatch": {"destinationPort": 8080},
             "filters": [{"name": "envoy.filters.network.http_connection_manager", "typedConfig": {
                 "@type": HCM, "statPrefix": "inbound_0.0.0.0_8080", "httpFilters": [ROUTER],
                 "routeConfig": {"name": "inbound|8080||", "virtualHosts": [{
                     "name": "inbound|http|8080", "domains": ["*"], "routes": [
                         {"match": {"prefix": "/"}, "route": {"cluster": "inbound|8080||"}}]}]}}}]},
            {"name": "inbound-passthrough", "filters": [{"name": "envoy.filters.network.tcp_proxy",
                                                         "typedConfig": {"@type": TCP, "statPrefix": "bh",
                                                                         "cluster": "BlackHoleCluster"}}]}]}

    def static(name: str, port: int | None) -> dict:
        c = {"name": name, "type": "STATIC", "connectTimeout": "1s"}
        if port:
            c["loadAssignment"] = {"clusterName": name, "endpoints": [{"lbEndpoints": [
                {"endpoint": {"address": {"socketAddress": {"address": "127.0.0.1", "portValue": port}}}}]}]}
        return c

    return {"node": {"id": "sidecar~10.96.0.1~client.default~default.svc.cluster.local", "cluster": "client.default",
                     "metadata": {"INTERCEPTION_MODE": "REDIRECT"}},
            "staticResources": {"listeners": [outbound, http_80, tcp_vip, inbound],
                                "clusters": [static("outbound|80||web", 8080), static("inbound|8080||", 8080),
                                             static("BlackHoleCluster", None)]},
            "admin": {"address": {"socketAddress": {"address": "127.0.0.1", "portValue": 15000}}}}


def test_redirected_http_and_tcp_reach_the_listener_of_the_original_destination(netns: str, tmp_path: Path):
    ex = ["ip", "netns", "exec", netns]
    (tmp_path / "b.json").write_text(json.dumps(bootstrap()))
    up = subprocess.Popen([*ex, sys.executable, "-c", UPSTREAM, "8080"])
    log = open(tmp_path / "proxy.log", "w+")
    proxy = subprocess.Popen([*ex, sys.executable, "-m", "ketch", "proxy", "--bootstrap", str(tmp_path / "b.json"),
                              "--health-port", "15021"], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            r = subprocess.run([*ex, "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                                "http://127.0.0.1:15021/healthz/ready"], capture_output=True, text=True)
            if r.stdout == "200":
                break
            assert proxy.poll() is None and time.monotonic() < deadline, log.read()
            time.sleep(0.1)
        out = subprocess.run([*ex, "curl", "-s", "-H", "Host: web", "http://10.96.0.10/hello"],
                             capture_output=True, text=True, timeout=20)
        assert out.stdout == "backend saw host=web path=/hello"
        # a TCP VIP goes to its own listener (exact address match), bytes pass through untouched
        raw = subprocess.run([*ex, "curl", "-s", "http://10.96.0.20:9000/raw"], capture_output=True, text=True,
                             timeout=20)
        assert raw.stdout == "backend saw host=10.96.0.20:9000 path=/raw"
        # inbound: the original destination's port picks virtualInbound's chain (no hand-off)
        inb = subprocess.run([*ex, "curl", "-s", "http://10.97.0.5:8080/in"], capture_output=True, text=True,
                             timeout=20)
        assert inb.stdout == "backend saw host=10.97.0.5:8080 path=/in"
        other = subprocess.run([*ex, "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "http://10.97.0.5:9999/"],
                               capture_output=True, text=True, timeout=20)
        assert other.stdout == "000"
        # anything else lands on 15001's own chain (BlackHoleCluster): the connection is closed
        bh = subprocess.run([*ex, "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "http://10.96.0.30:7777/"],
                            capture_output=True, text=True, timeout=20)
        assert bh.stdout == "000"
    finally:
        proxy.terminate()
        up.terminate()
        proxy.wait(timeout=15)
        up.wait(timeout=15)
