"""Clearing what a dead runtime left behind, found through its state dir's prefix."""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path

from ketch.runtime import netexec
from ketch.runtime.state import StateDir


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie is not alive for our purposes
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[-1][:1] != "Z"
    except OSError:
        return False


def _is_ketch(pid: int) -> bool:
    try:
        return b"ketch" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def kill_recorded(state: StateDir) -> None:
    """SIGKILL the processes the records name, if they are still Ketch's (pids recycle)."""
    pids: list[int] = []
    record = state.read_runtime()
    if record is not None:
        pids.append(record.control_plane_pid)
    for pod in state.pods():
        pids.extend(pod.pids.values())
    for pid in pids:
        if pid_alive(pid) and _is_ketch(pid):
            try:
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass


def cleanup_stale(state: StateDir) -> dict[str, list[str]]:
    """Remove a dead runtime's processes, kernel objects and records. Returns what the
    kernel still held (empty lists when the last stop was clean)."""
    record = state.read_runtime()
    found: dict[str, list[str]] = {}
    kill_recorded(state)
    if record is not None and os.geteuid() == 0:
        found = netexec.cleanup_prefix(record.prefix)
    state.clear_records()
    state.socket.unlink(missing_ok=True)
    state.runtime_file.unlink(missing_ok=True)
    return found


def clear_logs(state: StateDir) -> None:
    """A new runtime starts with fresh logs (pod names of the last one never come back)."""
    shutil.rmtree(state.root / "logs", ignore_errors=True)
