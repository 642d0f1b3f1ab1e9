"""The `ketch proxy` process: bootstraps from flags, SIGTERM drain, --concurrency workers."""

from __future__ import annotations

import json
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from envoy.config.listener.v3 import listener_pb2
from google.protobuf import json_format

from proxy_harness import bootstrap, cluster, http_listener, route, vhost
from conftest import free_port
from ketch.proxy.config import compile_listener, select_chain
from ketch.proxy.listeners import parse_client_hello

pytestmark = pytest.mark.e2e


def ketch(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ketch", *args], capture_output=True, text=True, timeout=60, **kw)


def test_sidecar_bootstrap_from_flags_and_env():
    out = ketch("proxy", "sidecar", "--print-bootstrap", "--workload", "reviews-v1-abc", "--namespace", "shop",
                "--label", "app=reviews", "--label", "version=v1", "--control-plane", "10.0.0.5:15010",
                env={"INSTANCE_IP": "10.1.2.3", "SERVICE_ACCOUNT": "bookinfo-reviews", "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    b = json.loads(out.stdout)
    assert b["node"]["id"] == "sidecar~10.1.2.3~reviews-v1-abc.shop~shop.svc.cluster.local"
    assert b["node"]["cluster"] == "reviews.shop"
    md = b["node"]["metadata"]
    assert md["LABELS"] == {"app": "reviews", "version": "v1"} and md["SERVICE_ACCOUNT"] == "bookinfo-reviews"
    assert md["INTERCEPTION_MODE"] == "REDIRECT" and md["NAMESPACE"] == "shop"
    ep = b["staticResources"]["clusters"][0]["loadAssignment"]["endpoints"][0]["lbEndpoints"][0]
    assert ep["endpoint"]["address"]["socketAddress"] == {"address": "10.0.0.5", "portValue": 15010}
    router = json.loads(ketch("proxy", "router", "--print-bootstrap", "--interception", "NONE").stdout)
    assert router["node"]["id"].startswith("router~")
    assert router["node"]["metadata"]["INTERCEPTION_MODE"] == "NONE"


def test_bad_bootstrap_is_a_clear_error(tmp_path: Path):
    f = tmp_path / "b.yaml"
    f.write_text("staticResources: {listeners: [{nme: x}]}\n")
    out = ketch("proxy", "--bootstrap", str(f))
    assert out.returncode != 0 and "nme" in out.stderr


class _Slow(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    entered = threading.Event()

    def do_GET(self) -> None:
        if self.path == "/slow":
            _Slow.entered.set()
            time.sleep(1.0)
        body = b"done"
        self.send_response(200)
        self.send_header("content-length", "4")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a) -> None:
        pass


def _start(tmp_path: Path, *extra: str) -> tuple[subprocess.Popen, int, int, ThreadingHTTPServer]:
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Slow)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    port, admin = free_port(), free_port()
    b = bootstrap([http_listener(port, vhost(route("c")))], [cluster("c", srv.server_address[1])],
                  admin={"address": {"socketAddress": {"address": "127.0.0.1", "portValue": admin}}})
    (tmp_path / "b.json").write_text(json.dumps(b))
    proc = subprocess.Popen([sys.executable, "-m", "ketch", "proxy", "--bootstrap", str(tmp_path / "b.json"),
                             "--health-port", "0", *extra], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{admin}/ready", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.stderr else ""
        time.sleep(0.1)
    return proc, port, admin, srv


def test_sigterm_drains_in_flight_requests(tmp_path: Path):
    proc, port, _, srv = _start(tmp_path, "--drain-timeout", "5")
    try:
        result: dict = {}

        def slow_call() -> None:
            result["r"] = httpx.get(f"http://127.0.0.1:{port}/slow", timeout=10)

        _Slow.entered.clear()
        t = threading.Thread(target=slow_call)
        t.start()
        assert _Slow.entered.wait(10)  # the request is in flight upstream
        proc.send_signal(signal.SIGTERM)
        t.join(10)
        assert result["r"].status_code == 200 and result["r"].text == "done"
        assert proc.wait(timeout=10) == 0
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
    finally:
        if proc.poll() is None:
            proc.kill()
        srv.shutdown()


def test_concurrency_workers_share_the_listener(tmp_path: Path):
    proc, port, _, srv = _start(tmp_path, "--concurrency", "2")
    try:
        with httpx.Client() as c:
            for _ in range(20):
                assert c.get(f"http://127.0.0.1:{port}/", headers={"connection": "close"}).text == "done"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        srv.shutdown()


def _client_hello(sni: str, alpn: list[str]) -> bytes:
    """A real ClientHello from the ssl module, captured from a memory BIO."""
    ctx = ssl.create_default_context()
    ctx.set_alpn_protocols(alpn)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname=sni)
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    return outgoing.read()


def test_filter_chain_match_sni_alpn_port_and_prefix():
    hello = _client_hello("api.example.com", ["h2", "http/1.1"])
    assert parse_client_hello(hello) == ("api.example.com", ("h2", "http/1.1"))
    tcp = {"name": "envoy.filters.network.tcp_proxy", "typedConfig": {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
        "statPrefix": "s", "cluster": "x"}}

    def chain(name: str, match: dict) -> dict:
        return {"name": name, "filterChainMatch": match, "filters": [tcp]}

    lst = json_format.ParseDict({"name": "l", "address": {"socketAddress": {"address": "0.0.0.0", "portValue": 1}},
                                 "listenerFilters": [{"name": "envoy.filters.listener.tls_inspector"}],
                                 "filterChains": [
                                     chain("port", {"destinationPort": 9080}),
                                     chain("vip", {"destinationPort": 9080, "prefixRanges": [
                                         {"addressPrefix": "10.96.0.0", "prefixLen": 16}]}),
                                     chain("sni", {"serverNames": ["*.example.com"], "transportProtocol": "tls"}),
                                     chain("h2c", {"applicationProtocols": ["h2c"]}),
                                     chain("any", {})]}, listener_pb2.Listener())
    lc = compile_listener(lst)
    assert lc.inspect
    pick = lambda *a, **k: select_chain(lc, *a, **k).name  # noqa: E731
    assert pick("10.96.1.2", 9080, "1.1.1.1") == "vip"
    assert pick("10.1.1.2", 9080, "1.1.1.1") == "port"
    assert pick("10.1.1.2", 443, "1.1.1.1", sni="api.example.com", transport="tls") == "sni"
    assert pick("10.1.1.2", 443, "1.1.1.1", sni="other.org", transport="tls") == "any"
    assert pick("10.1.1.2", 80, "1.1.1.1", alpn=("h2c",)) == "h2c"
