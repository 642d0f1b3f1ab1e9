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
