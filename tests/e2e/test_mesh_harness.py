"""Driving a real `ketch up` from end-to-end tests (helpers only; no tests here).

Each test module brings up its own runtime with a private state dir and non-default control
plane ports, so it never reuses a control plane someone else started. Gateway ports come
from the YAML (8080, 31400) and so are fixed: the e2e modules run one after another.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT.parent / "shared" / "istio-samples"
NETWORKING = SAMPLES / "bookinfo" / "networking"
EXAMPLES = ROOT / "examples"


def skip_unless_pod_mode(*host_ports: int) -> None:
    from ketch.runtime.netexec import probe_pod_mode

    ok, why = probe_pod_mode()
    if not ok:
        pytest.skip(f"needs pod mode (root, ip, iptables): {why}")
    if not SAMPLES.is_dir():
        pytest.skip(f"Istio samples not found at {SAMPLES}")
    busy = [p for p in host_ports if not port_free(p)]
    if busy:
        # the gateway ports come from Istio's YAML; something else holds them here
        pytest.skip(f"host port(s) {busy} in use; the gateway publishes there")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


class Mesh:
    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.http_port = _free_port()
        self.xds_port = _free_port()
        self.rest = f"http://127.0.0.1:{self.http_port}"
        self.env = dict(os.environ, KETCH_RUNTIME_DIR=str(state_dir))
        self.prefix = ""
        self.up_seconds = 0.0

    # -- lifecycle ----------------------------------------------------------------------
    def ketch(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "ketch", *args], env=self.env,
                              capture_output=True, text=True, timeout=timeout)

    def up(self, *paths: Path, timeout: float = 90, extra: tuple[str, ...] = ()) -> None:
        t0 = time.monotonic()
        out = self.ketch("up", *(a for p in paths for a in ("-f", str(p))), *extra,
                         "--http-port", str(self.http_port), "--xds-port", str(self.xds_port),
                         "--timeout", str(timeout), timeout=timeout + 30)
        self.up_seconds = time.monotonic() - t0
        if out.returncode != 0:
            log = (self.state_dir / "supervisor.log")
            raise AssertionError(f"ketch up failed: {out.stdout}{out.stderr}\n"
                                 + (log.read_text()[-3000:] if log.exists() else ""))
        record = json.loads((self.state_dir / "runtime.json").read_text())
        self.prefix = record["prefix"]

    def down(self) -> subprocess.CompletedProcess:
        return self.ketch("down", timeout=90)

    # -- state --------------------------------------------------------------------------
    def pods(self) -> list[dict]:
        from ketch.runtime.state import list_pods

        return list_pods(self.state_dir)

    def pod(self, deployment: str) -> dict:
        return next(p for p in self.pods() if p["deployment"] == deployment)

    def pod_exec(self, deployment: str, *argv: str, timeout: float = 120
                 ) -> subprocess.CompletedProcess:
        """Run a command inside a pod's network namespace, as its app would run (captured)."""
        pod = self.pod(deployment)
        return subprocess.run(["ip", "netns", "exec", pod["netns"], *argv], capture_output=True,
                              text=True, timeout=timeout, env=self.env)

    def log(self, pod_name: str, container: str) -> str:
        path = self.state_dir / "logs" / pod_name / f"{container}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    # -- control plane ------------------------------------------------------------------
    def _request(self, method: str, path: str, body: bytes | None = None,
                 ctype: str = "application/yaml") -> tuple[int, object]:
        req = urllib.request.Request(self.rest + path, data=body, method=method,
                                     headers={"Content-Type": ctype})
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.status, json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode(errors="replace")

    def proxies(self) -> list[dict]:
        status, body = self._request("GET", "/api/v1/proxies")
        assert status == 200, body
        return body["items"]  # type: ignore[index]

    def apply(self, *sources: Path | str, settle: float = 1.0) -> None:
        """Apply YAML (paths or text) and wait until every proxy has acknowledged it."""
        text = "\n---\n".join(s.read_text() if isinstance(s, Path) else s for s in sources)
        before = {p["id"]: p.get("version") for p in self.proxies()}
        status, body = self._request("POST", "/api/v1/config", text.encode())
        assert status == 200, body
        self.wait_synced(before)
        time.sleep(settle)  # listeners swap in the proxy's loop after the ACK

    def delete(self, kind: str, name: str, namespace: str = "default") -> None:
        before = {p["id"]: p.get("version") for p in self.proxies()}
        status, body = self._request("DELETE", f"/api/v1/config/{kind}/{namespace}/{name}")
        assert status in (200, 404), body
        if status == 200:
            self.wait_synced(before)

    def wait_synced(self, before: dict[str, object], timeout: float = 30) -> None:
        t0 = time.monotonic()
        while time.monotonic() < t0 + timeout:
            items = self.proxies()
            # a change that moves no snapshot version (a no-op apply) counts as moved
            # once the debounce has surely passed
            moved = time.monotonic() - t0 > 2.0 or all(
                p.get("version") != before.get(p["id"]) for p in items)
            synced = all(t.get("status") == "SYNCED" for p in items
                         for t in (p.get("types") or {}).values())
            if items and moved and synced:
                return
            time.sleep(0.1)
        raise AssertionError(f"proxies not synced in {timeout} s: {self.proxies()}")


def http_get(url: str, *, cookie: str | None = None, timeout: float = 30
             ) -> tuple[int, str, float]:
    """(status, body, seconds) of a GET; status 0 when no response came."""
    headers = {"Cookie": cookie} if cookie else {}
    req = urllib.request.Request(url, headers=headers)
    t0 = time.monotonic()
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read().decode(errors="replace"), time.monotonic() - t0
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace"), time.monotonic() - t0
    except (urllib.error.URLError, OSError):
        return 0, "", time.monotonic() - t0


def no_leftovers(mesh: Mesh) -> dict[str, list[str]]:
    from ketch.runtime.netexec import leftovers

    return leftovers(mesh.prefix)
