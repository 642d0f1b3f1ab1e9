"""Real pods (root only): a pair of network namespaces on a bridge, name resolution through
/etc/netns hosts, and istio-iptables capture checked with stand-in proxies that report the
original destination (SO_ORIGINAL_DST). Everything is torn down and checked gone."""

from __future__ import annotations

import ipaddress
import os
import secrets
import shutil
import subprocess
import sys
import time

import pytest

from ketch.runtime import manifest, netexec, netplan

ok, why = netexec.probe_pod_mode()
pytestmark = [pytest.mark.root, pytest.mark.skipif(not ok, reason=f"needs pod mode: {why}")]

# A stand-in proxy: on each port, answer every connection with "<tag> <orig dst>\n".
REPORTER = r"""
import socket, struct, sys, threading
def serve(port, tag):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port)); s.listen(16)
    while True:
        c, _ = s.accept()
        raw = c.getsockopt(socket.SOL_IP, 80, 16)  # SO_ORIGINAL_DST
        dport, = struct.unpack("!H", raw[2:4]); dip = socket.inet_ntoa(raw[4:8])
        c.sendall(f"{tag} {dip}:{dport}\n".encode()); c.close()
for spec in sys.argv[1:]:
    port, tag = spec.split("=")
    threading.Thread(target=serve, args=(int(port), tag), daemon=True).start()
print("ready", flush=True)
threading.Event().wait()
"""

CLIENT = r"""
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3)
print(s.makefile().readline().strip())
"""


@pytest.fixture
def mesh():
    prefix = "t" + secrets.token_hex(2)
    subnet = netplan.choose_subnet(netexec.used_subnets(), base="10.234.0.0/16")
    net = netplan.MeshNetwork(prefix, subnet)
    procs: list[subprocess.Popen] = []
    netexec.setup_bridge(net)
    try:
        yield net, procs
    finally:
        for p in procs:
            p.kill()
            p.wait()
        netexec.cleanup_prefix(prefix)
        left = netexec.leftovers(prefix)
        assert left == {"netns": [], "links": [], "iptables": [], "etc": []}, left


def _start(procs, netns, *args, uid=None):
    cmd = ["ip", "netns", "exec", netns]
    if uid is not None:
        cmd += ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--"]
    p = subprocess.Popen([*cmd, sys.executable, "-c", REPORTER, *args],
                         stdout=subprocess.PIPE, text=True)
    procs.append(p)
    assert p.stdout.readline().strip() == "ready"


def _call(netns, host, port, uid=None) -> str:
    cmd = ["ip", "netns", "exec", netns]
    if uid is not None:
        cmd += ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--"]
    out = subprocess.run([*cmd, sys.executable, "-c", CLIENT, host, str(port)],
                         capture_output=True, text=True, timeout=20)
    return out.stdout.strip() or out.stderr.strip().splitlines()[-1]


def test_pod_pair_connectivity_names_and_capture(mesh):
    net, procs = mesh
    svc = manifest.ServiceSpec("echo", "default", (manifest.ServicePortSpec("tcp", 9000, 9000),))
    vip = "10.96.77.7"
    a = netplan.plan_pod(net, "client-1", 0)
    b = netplan.plan_pod(net, "server-1", 1)
    for pod in (a, b):
        netexec.setup_pod(net, pod, netplan.hosts_file(pod, "default", [svc], lambda h: vip),
                          netplan.capture_rules())
    # pod b: the app on 9000 (root), the "sidecar" (uid 1337) on 15006 inbound and 15021
    _start(procs, b.netns, "9000=app", "15006=inbound", "15021=health")
    # pod a: the "sidecar" outbound on 15001
    _start(procs, a.netns, "15001=outbound", uid=1337)

    # the app's outbound call, by service name, is captured with its original destination
    assert _call(a.netns, "echo", 9000) == f"outbound {vip}:9000"
    assert _call(a.netns, "echo.default.svc.cluster.local", 9000) == f"outbound {vip}:9000"
    # the proxy (uid 1337) is exempt: it reaches pod b across the bridge, where inbound
    # capture sends it to 15006 with the original destination preserved
    assert _call(a.netns, b.ip, 9000, uid=1337) == f"inbound {b.ip}:9000"
    # the health port is excluded from inbound capture
    assert _call(a.netns, b.ip, 15021, uid=1337) == f"health {b.ip}:15021"
    # loopback inside the pod is not captured (the inbound proxy reaching the app)
    assert _call(b.netns, "127.0.0.1", 9000, uid=1337) == "app 127.0.0.1:9000"
    # the host reaches pods over the bridge (how the control plane and gateway see them)
    status = subprocess.run([sys.executable, "-c", CLIENT, b.ip, "15021"],
                            capture_output=True, text=True, timeout=20)
    assert status.stdout.strip() == f"health {b.ip}:15021"
    assert os.path.exists(f"/etc/netns/{a.netns}/hosts")


def test_cleanup_removes_pods_left_by_a_crash(mesh):
    net, procs = mesh
    pod = netplan.plan_pod(net, "orphan", 0)
    netexec.setup_pod(net, pod, "127.0.0.1 localhost\n", netplan.capture_rules())
    _start(procs, pod.netns, "9999=x")
    found = netexec.leftovers(net.prefix)
    assert pod.netns in found["netns"] and net.bridge in found["links"]
    assert len(found["iptables"]) == 2 and found["etc"] == [pod.netns]
    netexec.cleanup_prefix(net.prefix)
    # the process inside the namespace was killed with it
    deadline = time.monotonic() + 10
    while procs[0].poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert procs[0].poll() is not None
