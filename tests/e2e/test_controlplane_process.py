"""`ketch control-plane` as a process: mesh config file, state dir lock, clean SIGTERM."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from conftest import free_port

pytestmark = pytest.mark.e2e


def start(tmp: Path, *extra: str) -> tuple[subprocess.Popen, str]:
    http_port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "ketch", "control-plane", "--host", "127.0.0.1",
         "--xds-port", str(free_port()), "--http-port", str(http_port), *extra],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return proc, f"http://127.0.0.1:{http_port}"


def wait_healthy(proc: subprocess.Popen, url: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()[0]
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError("control plane never became healthy")


def test_bad_mesh_config_is_refused_with_the_reason(tmp_path: Path) -> None:
    mesh = tmp_path / "mesh.yaml"
    mesh.write_text("connectTimeout: 99h\n")
    proc, _ = start(tmp_path, "--meshConfigFile", str(mesh))
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode not in (0, None)
    assert "connect" in out.lower() and "Traceback" not in out, out


def test_good_mesh_config_serves_and_a_second_process_cannot_share_the_state_dir(
        tmp_path: Path) -> None:
    mesh = tmp_path / "mesh.yaml"
    mesh.write_text("connectTimeout: 5s\noutboundTrafficPolicy: {mode: REGISTRY_ONLY}\n")
    state = str(tmp_path / "state")
    proc, url = start(tmp_path, "--meshConfigFile", str(mesh), "--state-dir", state)
    try:
        wait_healthy(proc, url)
        assert "pilot_xds 0" in httpx.get(f"{url}/metrics").text
        second, _ = start(tmp_path, "--state-dir", state)
        out, _ = second.communicate(timeout=60)
        assert second.returncode not in (0, None)
        assert "in use" in out and "Traceback" not in out, out
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
