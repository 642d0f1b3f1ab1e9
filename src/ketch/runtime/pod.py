"""One pod: its sidecar and containers as supervised processes.

Order, as Istio with holdApplicationUntilProxyStarts: the sidecar starts first (as uid 1337
so capture exempts it), the containers start once its /healthz/ready answers (or after a
deadline, with a message). Crashed processes restart with backoff; the pod shows as
Restarting meanwhile. Registration follows readiness: register when first ready, heartbeat
with the current readiness, unregister on stop.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import signal
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

from ketch.runtime import netexec
from ketch.runtime.backoff import Backoff
from ketch.runtime.manifest import ContainerSpec, PodSpec
from ketch.runtime.netplan import PROXY_UID, PodNetwork
from ketch.runtime.registration import Registration, RegistryClient
from ketch.runtime.state import PodRecord, StateDir

HEALTH_PORT = 15021
SCRUBBED_ENV = ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "NO_PROXY",
                "no_proxy", "ALL_PROXY", "all_proxy")


@dataclass(frozen=True)
class LaunchConfig:
    """How this runtime starts processes (shared by all pods)."""

    python: str = sys.executable
    xds_address: str = "127.0.0.1:15010"
    sidecar_ready_timeout: float = 20.0
    heartbeat_interval: float = 5.0
    stop_grace: float = 3.0
    concurrency: int = 1
    # what stands for `python -m ketch proxy` (tests run a stub proxy through this)
    proxy_command: tuple[str, ...] = ()


def resolve_command(argv: tuple[str, ...], python: str) -> list[str]:
    """`python`/`python3` in a container command means the runtime's own interpreter."""
    out = list(argv)
    if out and out[0] in ("python", "python3", "python3.11"):
        out[0] = python
    return out


def _die_with_parent() -> None:
    # PR_SET_PDEATHSIG: if the supervisor is killed, its children go too.
    try:
        ctypes.CDLL(None).prctl(1, signal.SIGKILL)
    except (OSError, AttributeError):
        pass


class Proc:
    """A supervised process with restart backoff."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log: Path,
                 cwd: Path) -> None:
        self.name, self.argv, self.env, self.log, self.cwd = name, argv, env, log, cwd
        self.process: asyncio.subprocess.Process | None = None
        self.started_at = 0.0
        self.backoff = Backoff()

    async def start(self) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as out:
            self.process = await asyncio.create_subprocess_exec(
                *self.argv, stdin=asyncio.subprocess.DEVNULL, stdout=out,
                stderr=asyncio.subprocess.STDOUT, env=self.env, cwd=self.cwd,
                start_new_session=True, preexec_fn=_die_with_parent)
        self.started_at = time.monotonic()

    @property
    def pid(self) -> int:
        return self.process.pid if self.process and self.process.returncode is None else 0

    async def stop(self, grace: float) -> None:
        proc = self.process
        if proc is None or proc.returncode is not None:
            return
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                return
            try:
                await asyncio.wait_for(proc.wait(), wait)
                return
            except asyncio.TimeoutError:
                continue


class Pod:
    def __init__(self, spec: PodSpec, net: PodNetwork, ports: dict[str, int],
                 state: StateDir, registry: RegistryClient, launch: LaunchConfig,
                 proxy_mode: str = "sidecar") -> None:
        self.proxy_mode = proxy_mode  # "sidecar", or "router" for a gateway pod
        self.spec = spec
        self.net = net
        self.state = state
        self.registry = registry
        self.launch = launch
        self.reg = Registration(spec.name, spec.namespace, spec.labels, spec.service_account,
                                net.ip, ports)
        self.record = PodRecord(name=spec.name, namespace=spec.namespace,
                                deployment=spec.deployment, ip=net.ip, netns=net.netns,
                                labels=dict(spec.labels), service_account=spec.service_account)
        self.sidecar = Proc("sidecar", self._sidecar_argv(), self._base_env(),
                            state.log_dir(spec.name) / "sidecar.log", state.root)
        self.containers = [Proc(c.name, self._container_argv(c), self._container_env(c),
                                state.log_dir(spec.name) / f"{c.name}.log", state.root)
                           for c in spec.containers]
        self.registered = False
        self._last_reported = False  # the readiness the registry last heard
        self.stopping = False
        self._tasks: list[asyncio.Task] = []
        self.ready_event = asyncio.Event()

    # -- process descriptions -------------------------------------------------------------
    def _base_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in SCRUBBED_ENV}
        env.update({"POD_NAME": self.spec.name, "POD_NAMESPACE": self.spec.namespace,
                    "HOSTNAME": self.spec.name, "INSTANCE_IP": self.net.ip,
                    "POD_IP": self.net.ip, "SERVICE_ACCOUNT": self.spec.service_account,
                    "PYTHONUNBUFFERED": "1"})
        return env

    def _container_env(self, c: ContainerSpec) -> dict[str, str]:
        env = self._base_env()
        env.update(dict(c.env))
        return env

    def _netns_prefix(self) -> list[str]:
        return ["ip", "netns", "exec", self.net.netns]

    def _sidecar_argv(self) -> list[str]:
        argv = [*self._netns_prefix(), "setpriv", f"--reuid={PROXY_UID}",
                f"--regid={PROXY_UID}", "--clear-groups",
                # changing uid clears the parent-death signal; ask for it again
                "--pdeathsig", "SIGKILL", "--",
                *(self.launch.proxy_command or (self.launch.python, "-m", "ketch", "proxy")),
                self.proxy_mode,
                "--control-plane", self.launch.xds_address, "--workload", self.spec.name,
                "--namespace", self.spec.namespace, "--service-account",
                self.spec.service_account, "--ip", self.net.ip,
                "--concurrency", str(self.launch.concurrency)]
        if self.proxy_mode == "sidecar":
            argv += ["--interception", "REDIRECT"]
        for k, v in sorted(self.spec.labels.items()):
            argv += ["--label", f"{k}={v}"]
        return argv

    def _container_argv(self, c: ContainerSpec) -> list[str]:
        return [*self._netns_prefix(), *resolve_command((*c.command, *c.args),
                                                        self.launch.python)]

    # -- state ----------------------------------------------------------------------------
    def _update(self, **changes) -> None:
        pids = {"sidecar": self.sidecar.pid} | {c.name: c.pid for c in self.containers}
        self.record = replace(self.record, pids=pids, **changes)
        self.state.write_pod(self.record)

    # -- lifecycle ------------------------------------------------------------------------
    async def start(self) -> None:
        self._update(phase="Pending", started_at=time.time())
        await self.sidecar.start()
        self._update()
        if not await self._wait_sidecar_ready():
            self._update(message="sidecar not ready in time; starting the app anyway")
        for c in self.containers:
            await c.start()
        self._update(phase="Running")
        self._tasks = [asyncio.create_task(self._watch(p)) for p in
                       (self.sidecar, *self.containers)]
        self._tasks.append(asyncio.create_task(self._readiness_loop()))

    async def _wait_sidecar_ready(self) -> bool:
        deadline = time.monotonic() + self.launch.sidecar_ready_timeout
        while time.monotonic() < deadline:
            if self.sidecar.process and self.sidecar.process.returncode is not None:
                return False
            if await netexec.http_get_status(self.net.netns, "127.0.0.1", HEALTH_PORT,
                                             "/healthz/ready") == 200:
                return True
            await asyncio.sleep(0.1)
        return False

    async def sidecar_ready(self) -> bool:
        return bool(self.sidecar.pid) and await netexec.http_get_status(
            self.net.netns, "127.0.0.1", HEALTH_PORT, "/healthz/ready") == 200

    async def containers_ready(self) -> bool:
        for proc, c in zip(self.containers, self.spec.containers):
            if not proc.pid:
                return False
            if c.readiness is not None:
                if c.readiness.path is not None:
                    status = await netexec.http_get_status(
                        self.net.netns, "127.0.0.1", c.readiness.port, c.readiness.path)
                    if not 200 <= status < 400:
                        return False
                elif not await netexec.tcp_open(self.net.netns, "127.0.0.1",
                                                c.readiness.port):
                    return False
                continue
            for _, port in c.ports:
                if not await netexec.tcp_open(self.net.netns, "127.0.0.1", port):
                    return False
        return True

    async def _readiness_loop(self) -> None:
        last_beat = 0.0
        while not self.stopping:
            # as Kubernetes with istio-proxy's readiness probe: the pod is ready only when
            # its proxy is (configured) and every container is
            ready = await self.sidecar_ready() and await self.containers_ready()
            if ready != self.record.ready:
                self._update(ready=ready)
            now = time.monotonic()
            if ready and self.proxy_mode != "sidecar":
                self.ready_event.set()  # gateways serve no service: nothing to register
            elif ready and not self.registered:
                if await self.registry.register(self.reg, True) is not None:
                    self.registered = True
                    last_beat = now
            elif self.registered and (now - last_beat >= self.launch.heartbeat_interval
                                      or ready != self._last_reported):
                status = await self.registry.heartbeat(self.reg, ready)
                if status == 404:
                    self.registered = False
                elif status:
                    last_beat = now
            self._last_reported = ready
            if ready and self.registered:
                self.ready_event.set()
            await asyncio.sleep(0.2 if not ready else 1.0)

    async def _watch(self, proc: Proc) -> None:
        while not self.stopping:
            assert proc.process is not None
            code = await proc.process.wait()
            if self.stopping:
                return
            ran_for = time.monotonic() - proc.started_at
            delay = proc.backoff.next_delay(ran_for)
            self._update(phase="Restarting", ready=False, restarts=self.record.restarts + 1,
                         message=f"{proc.name} exited with {code}; restarting in {delay:g}s")
            await asyncio.sleep(delay)
            if self.stopping:
                return
            await proc.start()
            self._update(phase="Running")

    async def restart(self) -> None:
        """Stop and start every process of the pod (network and identity kept)."""
        if self.registered:
            await self.registry.heartbeat(self.reg, False)
        await self.stop(unregister=False)
        self.stopping = False
        self.ready_event.clear()
        await self.start()

    async def stop(self, unregister: bool = True) -> None:
        self.stopping = True
        self._update(phase="Terminating", ready=False)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        if unregister and self.registered:
            await self.registry.unregister(self.reg)
            self.registered = False
        await asyncio.gather(*(c.stop(self.launch.stop_grace) for c in self.containers))
        await self.sidecar.stop(self.launch.stop_grace)
        self._update()
