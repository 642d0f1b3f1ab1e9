"""`ketch up|down|logs|restart`: the local runtime (see ketch.runtime)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import click

STATE_HELP = "Runtime state directory (default $KETCH_RUNTIME_DIR or ~/.ketch/runtime)."


def _state(state_dir: Path | None):
    from ketch.runtime.state import StateDir, default_state_dir

    return StateDir(state_dir or default_state_dir())


@click.command("up")
@click.option("-f", "--filename", "paths", multiple=True, required=True,
              type=click.Path(exists=True), help="Manifest and Istio config (files or dirs).")
@click.option("--state-dir", type=click.Path(file_okay=False, path_type=Path), help=STATE_HELP)
@click.option("--xds-port", type=int, default=15010, show_default=True)
@click.option("--http-port", type=int, default=15014, show_default=True)
@click.option("--publish-host", default="127.0.0.1", show_default=True,
              help="Host address where gateway ports are published.")
@click.option("--no-gateway", is_flag=True, help="Do not start the ingress gateway.")
@click.option("--foreground", is_flag=True, help="Stay in the foreground; Ctrl-C stops all.")
@click.option("--timeout", type=float, default=60.0, show_default=True,
              help="Seconds to wait for every pod to be ready.")
def up(paths: tuple[str, ...], state_dir: Path | None, xds_port: int, http_port: int,
       publish_host: str, no_gateway: bool, foreground: bool, timeout: float) -> None:
    """Run the workloads of PATHS in pods with sidecars, behind an ingress gateway."""
    state = _state(state_dir)
    state.root.mkdir(parents=True, exist_ok=True)
    args = [*(a for p in paths for a in ("-f", str(Path(p).resolve()))),
            "--state-dir", str(state.root.resolve()), "--xds-port", str(xds_port),
            "--http-port", str(http_port), "--publish-host", publish_host,
            "--ready-timeout", str(timeout)]
    if no_gateway:
        args.append("--no-gateway")
    if foreground:
        from ketch.runtime.supervisor import main as supervise

        raise SystemExit(supervise(args))
    (state.root / "failed.txt").unlink(missing_ok=True)
    log = open(state.root / "supervisor.log", "ab")
    proc = subprocess.Popen([sys.executable, "-m", "ketch.runtime.supervisor", *args],
                            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    t0 = time.monotonic()
    try:
        while True:
            record = state.read_runtime()
            if record is not None and record.supervisor_pid == proc.pid \
                    and record.phase == "Ready":
                break
            if proc.poll() is not None:
                failed = state.root / "failed.txt"
                reason = failed.read_text() if failed.exists() else ""
                tail = _tail(state.root / "supervisor.log", 20)
                raise click.ClickException(f"ketch up failed: {reason or tail}")
            time.sleep(0.1)
    except KeyboardInterrupt:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
        raise click.Abort()
    took = time.monotonic() - t0
    pods = state.pods()
    click.echo(f"ketch up: {len(pods)} pods ready in {took:.1f} s "
               f"(subnet {record.subnet}, control plane {record.control_plane})")
    for address in record.published:
        click.echo(f"  gateway published at http://{address}")
    click.echo("Stop with `ketch down`.")


@click.command("down")
@click.option("--state-dir", type=click.Path(file_okay=False, path_type=Path), help=STATE_HELP)
@click.option("--timeout", type=float, default=30.0, show_default=True)
def down(state_dir: Path | None, timeout: float) -> None:
    """Stop everything `ketch up` started and remove what it created."""
    from ketch.runtime.cleanup import cleanup_stale, pid_alive

    state = _state(state_dir)
    record = state.read_runtime()
    if record is None:
        click.echo("nothing is up")
        return
    pid = record.supervisor_pid
    if pid_alive(pid) and pid != os.getpid():
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if pid_alive(pid):
            os.kill(pid, signal.SIGKILL)
    # whatever a clean stop left, or a crashed supervisor never removed
    state = _state(state_dir)
    if state.read_runtime() is None:
        state.runtime_file.parent.mkdir(parents=True, exist_ok=True)
        from ketch.runtime.state import RuntimeRecord

        state.write_runtime(RuntimeRecord(prefix=record.prefix, supervisor_pid=0, mode="pod",
                                          control_plane_pid=0))
    found = cleanup_stale(state)
    leaked = sum(len(v) for v in found.values())
    click.echo("ketch down: stopped" + (f" (cleared {leaked} leftovers)" if leaked else ""))


@click.command("logs")
@click.argument("pod")
@click.option("-c", "--container", default=None, help="Container, or `sidecar`.")
@click.option("-f", "--follow", is_flag=True)
@click.option("--state-dir", type=click.Path(file_okay=False, path_type=Path), help=STATE_HELP)
def logs(pod: str, container: str | None, follow: bool, state_dir: Path | None) -> None:
    """Print a pod's logs (its first container unless -c names another, or `sidecar`)."""
    state = _state(state_dir)
    names = [p.name for p in state.pods()]
    match = pod if pod in names else next((n for n in names if n.startswith(pod)), None)
    directory = state.log_dir(match or pod)
    if not directory.is_dir():
        raise click.ClickException(f"no pod {pod!r}")
    files = sorted(p for p in directory.glob("*.log") if p.stem != "sidecar")
    path = directory / f"{container}.log" if container else (files[0] if files else None)
    if path is None or not path.exists():
        raise click.ClickException(f"no logs for {container or 'a container'} in {pod}")
    with open(path, "rb") as fh:
        while True:
            chunk = fh.read(65536)
            if chunk:
                sys.stdout.buffer.write(chunk)
                sys.stdout.flush()
            elif follow:
                time.sleep(0.2)
            else:
                break


@click.command("restart")
@click.argument("deployment")
@click.option("--state-dir", type=click.Path(file_okay=False, path_type=Path), help=STATE_HELP)
def restart(deployment: str, state_dir: Path | None) -> None:
    """Restart every pod of DEPLOYMENT (like `kubectl rollout restart`)."""
    deployment = deployment.removeprefix("deployment/")
    reply = _control(_state(state_dir), {"op": "restart", "deployment": deployment})
    if "error" in reply:
        raise click.ClickException(reply["error"])
    click.echo(f"restarted {', '.join(reply['restarted'])}")


def _control(state, request: dict) -> dict:
    if not state.socket.exists():
        raise click.ClickException("nothing is up (no supervisor socket)")
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(120)
        sock.connect(str(state.socket))
        sock.sendall(json.dumps(request).encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    return json.loads(data or b"{}")


def _tail(path: Path, lines: int) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
