"""Nothing leaks when `ketch up`'s supervisor dies hard (root, pod mode): its processes
die with it, and the next `ketch up` clears the namespaces, links and rules it left."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

from test_mesh_harness import EXAMPLES, Mesh, no_leftovers, skip_unless_pod_mode

pytestmark = [pytest.mark.e2e, pytest.mark.root]

EMPTY = {"netns": [], "links": [], "iptables": [], "etc": []}


def _alive(pid: int) -> bool:
    try:
        stat = open(f"/proc/{pid}/stat").read()
    except OSError:
        return False
    return stat.rsplit(") ", 1)[-1][:1] != "Z"


def test_supervisor_killed_then_next_up_clears_leftovers(tmp_path):
    skip_unless_pod_mode()
    mesh = Mesh(tmp_path / "state")
    manifest = EXAMPLES / "tcp-echo" / "tcp-echo.yaml"
    try:
        mesh.up(manifest, extra=("--no-gateway",))
        first_prefix = mesh.prefix
        record = json.loads((mesh.state_dir / "runtime.json").read_text())
        pids = [pid for p in mesh.pods() for pid in p["pids"].values() if pid]
        pids.append(record["control_plane_pid"])
        assert len(pids) == 5  # two pods of app + sidecar, and the control plane
        os.kill(record["supervisor_pid"], signal.SIGKILL)
        deadline = time.monotonic() + 15
        while any(_alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [p for p in pids if _alive(p)], "processes outlived their supervisor"
        assert no_leftovers(mesh) != EMPTY  # the kernel objects are still there

        mesh.up(manifest, extra=("--no-gateway",))
        assert mesh.prefix != first_prefix
        mesh.prefix, second = first_prefix, mesh.prefix
        assert no_leftovers(mesh) == EMPTY  # the crashed runtime's objects are gone
        mesh.prefix = second
    finally:
        mesh.down()
    assert no_leftovers(mesh) == EMPTY


def test_reuses_a_running_control_plane_and_leaves_it_up(tmp_path):
    """`ketch up` reuses a control plane already listening (here on loopback only, so the
    pods reach its xDS port through the runtime's relay on the bridge); `ketch down` does
    not stop what it did not start."""
    import subprocess
    import sys
    import urllib.request

    skip_unless_pod_mode()
    mesh = Mesh(tmp_path / "state")
    cp = subprocess.Popen([sys.executable, "-m", "ketch", "control-plane", "--host",
                           "127.0.0.1", "--xds-port", str(mesh.xds_port), "--http-port",
                           str(mesh.http_port), "--log-level", "warning"],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{mesh.rest}/healthz", timeout=1)
                break
            except OSError:
                assert time.monotonic() < deadline, "control plane did not start"
                time.sleep(0.1)
        mesh.up(EXAMPLES / "tcp-echo" / "tcp-echo.yaml", extra=("--no-gateway",))
        record = json.loads((mesh.state_dir / "runtime.json").read_text())
        assert record["control_plane_pid"] == 0  # reused, not started
        # the sidecars got their config through the relay: each pod is registered and synced
        with urllib.request.urlopen(f"{mesh.rest}/api/v1/registry/instances") as resp:
            names = {i["name"] for i in json.loads(resp.read())["items"]}
        assert names == {p["name"] for p in mesh.pods()}
        assert len(mesh.proxies()) == 2
        assert mesh.down().returncode == 0
        assert cp.poll() is None  # still running
        with urllib.request.urlopen(f"{mesh.rest}/api/v1/registry/instances") as resp:
            assert json.loads(resp.read())["items"] == []  # pods unregistered on the way out
    finally:
        mesh.down()
        cp.terminate()
        cp.wait(30)


def test_ctrl_c_of_a_foreground_up_removes_everything(tmp_path):
    import subprocess
    import sys

    skip_unless_pod_mode()
    mesh = Mesh(tmp_path / "state")
    proc = subprocess.Popen(
        [sys.executable, "-m", "ketch", "up", "--foreground", "--no-gateway", "-f",
         str(EXAMPLES / "tcp-echo" / "tcp-echo.yaml"), "--http-port", str(mesh.http_port),
         "--xds-port", str(mesh.xds_port)], env=mesh.env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        runtime = mesh.state_dir / "runtime.json"
        deadline = time.monotonic() + 60
        while not (runtime.exists() and json.loads(runtime.read_text())["phase"] == "Ready"):
            assert proc.poll() is None and time.monotonic() < deadline, "not ready"
            time.sleep(0.1)
        mesh.prefix = json.loads(runtime.read_text())["prefix"]
        pids = [pid for p in mesh.pods() for pid in p["pids"].values() if pid]
        proc.send_signal(signal.SIGINT)
        assert proc.wait(60) == 0
        assert no_leftovers(mesh) == EMPTY
        assert not [p for p in pids if _alive(p)]
        assert not runtime.exists()
    finally:
        if proc.poll() is None:
            proc.kill()
        mesh.down()


def test_invalid_config_fails_up_with_the_reason_and_leaves_nothing(tmp_path):
    skip_unless_pod_mode()
    mesh = Mesh(tmp_path / "state")
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        (EXAMPLES / "tcp-echo" / "tcp-echo.yaml").read_text()
        + "\n---\napiVersion: networking.istio.io/v1\nkind: VirtualService\n"
          "metadata:\n  name: broken\nspec:\n  hosts: [tcp-echo]\n  http:\n"
          "  - route:\n    - destination:\n        host: tcp-echo\n      weight: -5\n")
    out = mesh.ketch("up", "-f", str(bad), "--no-gateway", "--http-port", str(mesh.http_port),
                     "--xds-port", str(mesh.xds_port))
    assert out.returncode != 0
    assert "broken" in out.stderr and "weight" in out.stderr, out.stderr
    assert not (mesh.state_dir / "runtime.json").exists()
    assert mesh.pods() == []
    import subprocess

    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert f"--http-port {mesh.http_port}" not in ps  # the control plane it started is gone
