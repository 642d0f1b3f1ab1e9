"""A real pod's lifecycle (root only) with a stub proxy and a stub registry: the sidecar
starts first as uid 1337, the app only once the sidecar is ready; the pod registers when
ready, heartbeats, restarts a crashed app with backoff (showing Restarting), unregisters."""

from __future__ import annotations

import asyncio
import secrets
import shutil
import sys
import tempfile
from pathlib import Path

import pytest
from aiohttp import web

from ketch.runtime import manifest, netexec, netplan
from ketch.runtime.pod import LaunchConfig, Pod
from ketch.runtime.registration import RegistryClient
from ketch.runtime.state import StateDir

ok, why = netexec.probe_pod_mode()
pytestmark = [pytest.mark.root, pytest.mark.skipif(not ok, reason=f"needs pod mode: {why}")]

# Stub proxy: records its uid and start time, answers /healthz/ready on 15021 after 0.5 s.
STUB_PROXY = r"""
import http.server, os, sys, time, threading
open(os.environ["STUB_MARK"], "a").write(f"proxy uid={os.getuid()} t={time.time()}\n")
time.sleep(0.5)
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/healthz/ready" else 404); self.end_headers()
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(("0.0.0.0", 15021), H).serve_forever()
"""

# Stub app: records its start; serves 9080; exits with 3 when a client sends "die".
STUB_APP = r"""
import os, socket, sys, time
open(os.environ["STUB_MARK"], "a").write(f"app uid={os.getuid()} t={time.time()}\n")
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 9080)); s.listen(8)
while True:
    c, _ = s.accept()
    c.settimeout(0.5)
    try:
        if c.recv(16).startswith(b"die"):
            sys.exit(3)
    except OSError:
        pass
    c.close()
"""


class StubRegistry:
    def __init__(self) -> None:
        self.calls: list[tuple[str, object]] = []
        app = web.Application()
        app.router.add_post("/api/v1/registry/instances", self.register)
        app.router.add_put("/api/v1/registry/instances/{ns}/{name}/heartbeat", self.beat)
        app.router.add_delete("/api/v1/registry/instances/{ns}/{name}", self.delete)
        self.app = app

    async def register(self, request):
        body = await request.json()
        self.calls.append(("register", body))
        return web.json_response({"name": body["name"], "namespace": body["namespace"],
                                  "ttlSeconds": 30})

    async def beat(self, request):
        self.calls.append(("heartbeat", (await request.json())["healthy"]))
        return web.json_response({})

    async def delete(self, request):
        self.calls.append(("unregister", request.match_info["name"]))
        return web.json_response({})


async def wait_for(predicate, timeout=20.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


@pytest.fixture
def shared_dir():
    # pytest's tmp dirs are private to root; the stub proxy writes as uid 1337
    path = Path(tempfile.mkdtemp(prefix="ketch-pod-test-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


async def test_pod_lifecycle(tmp_path, shared_dir, monkeypatch):
    mark = shared_dir / "mark.txt"
    mark.touch()
    mark.chmod(0o666)
    monkeypatch.setenv("STUB_MARK", str(mark))
    stub = StubRegistry()
    runner = web.AppRunner(stub.app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]

    prefix = "t" + secrets.token_hex(2)
    net = netplan.MeshNetwork(prefix, netplan.choose_subnet(netexec.used_subnets(),
                                                            base="10.235.0.0/16"))
    state = StateDir(tmp_path / "state")
    state.ensure()
    registry = RegistryClient(f"http://127.0.0.1:{port}")
    spec = manifest.PodSpec(
        name="stub-v1-abcde", namespace="default", deployment="stub-v1",
        labels={"app": "stub", "version": "v1"}, service_account="stub-sa",
        containers=(manifest.ContainerSpec(name="app", command=("python3", "-c", STUB_APP),
                                           ports=(("http", 9080),)),))
    launch = LaunchConfig(proxy_command=(sys.executable, "-c", STUB_PROXY),
                          heartbeat_interval=0.3, stop_grace=1.0)
    netexec.setup_bridge(net)
    pod = None
    try:
        pnet = netplan.plan_pod(net, spec.name, 0)
        netexec.setup_pod(net, pnet, "127.0.0.1 localhost\n", netplan.capture_rules())
        pod = Pod(spec, pnet, {"http": 9080}, state, registry, launch)
        await pod.start()
        await asyncio.wait_for(pod.ready_event.wait(), 20)

        lines = mark.read_text().splitlines()
        assert lines[0].startswith("proxy uid=1337") and lines[1].startswith("app uid=0")
        t_proxy, t_app = (float(ln.split("t=")[1]) for ln in lines[:2])
        assert t_app - t_proxy >= 0.5  # the app waited for the sidecar's readiness
        kind, body = stub.calls[0]
        assert kind == "register" and body["address"] == pnet.ip
        assert body["labels"] == {"app": "stub", "version": "v1"}
        assert body["serviceAccount"] == "stub-sa" and body["ports"] == {"http": 9080}
        assert state.pods()[0].phase == "Running" and state.pods()[0].ready
        await wait_for(lambda: ("heartbeat", True) in stub.calls)

        # crash the app: the pod shows Restarting, reports unhealthy, then recovers
        reader, writer = await netexec.open_in_netns(pnet.netns, "127.0.0.1", 9080)
        writer.write(b"die\n")
        await writer.drain()
        writer.close()
        await wait_for(lambda: state.pods()[0].phase == "Restarting", 10)
        assert state.pods()[0].restarts == 1 and not state.pods()[0].ready
        await wait_for(lambda: ("heartbeat", False) in stub.calls, 10)
        await wait_for(lambda: state.pods()[0].phase == "Running" and state.pods()[0].ready, 20)
        assert len([ln for ln in mark.read_text().splitlines() if ln.startswith("app")]) == 2

        await pod.stop()
        assert stub.calls[-1] == ("unregister", spec.name)
        assert state.pods()[0].phase == "Terminating" and not any(state.pods()[0].pids.values())
    finally:
        if pod is not None and not pod.stopping:
            await pod.stop()
        await registry.close()
        await runner.cleanup()
        netexec.cleanup_prefix(prefix)
        assert netexec.leftovers(prefix) == {"netns": [], "links": [], "iptables": [], "etc": []}
