"""`ketch control-plane` as a real process on free ports, for end-to-end tests."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx

from conftest import free_port


class ControlPlaneProcess:
    """`ketch control-plane` on free ports with a private state directory."""

    def __init__(self, tmp: Path) -> None:
        self.xds_port, self.http_port = free_port(), free_port()
        self.log = open(tmp / "control-plane.log", "w+")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ketch", "control-plane", "--host", "127.0.0.1",
             "--xds-port", str(self.xds_port), "--http-port", str(self.http_port),
             "--state-dir", str(tmp / "state")],
            stdout=self.log, stderr=subprocess.STDOUT)
        self.url = f"http://127.0.0.1:{self.http_port}"
        self.http = httpx.Client(base_url=self.url, timeout=10)
        deadline = time.monotonic() + 60
        while True:
            assert self.proc.poll() is None, f"control plane exited:\n{self.output()}"
            try:
                if self.http.get("/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"control plane not ready:\n{self.output()}"
            time.sleep(0.1)

    def output(self) -> str:
        self.log.flush()
        self.log.seek(0)
        return self.log.read()[-5000:]

    def apply(self, text: str) -> httpx.Response:
        return self.http.post("/api/v1/config", content=text,
                              headers={"Content-Type": "application/yaml"})

    def stop(self) -> int:
        """SIGTERM, then the exit code (killed after 20 s)."""
        self.http.close()
        self.proc.terminate()
        try:
            return self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()
