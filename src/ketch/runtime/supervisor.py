"""The supervisor behind `ketch up`: control plane, config, network, pods, gateway.

It runs in the foreground of `ketch up --foreground`, or detached (`ketch up` starts it as
`python -m ketch.runtime.supervisor` and waits for it to report Ready in the state dir).
Whatever it created it removes on stop; a supervisor that died without stopping leaves a
runtime.json whose prefix the next `ketch up` or `ketch down` uses to clean up.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import signal
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import yaml

from ketch.runtime import netexec, netplan
from ketch.runtime.cleanup import cleanup_stale, clear_logs, pid_alive
from ketch.runtime.forward import publish
from ketch.runtime.manifest import (
    Manifest, PodSpec, ServiceSpec, instance_ports, parse, pod_name, pods_for, read_documents,
)
from ketch.runtime.pod import LaunchConfig, Pod, Proc
from ketch.runtime.registration import RegistryClient
from ketch.runtime.state import RuntimeRecord, ServiceRecord, StateDir

GATEWAY_LABELS = {"istio": "ingressgateway", "app": "istio-ingressgateway"}


class UpError(RuntimeError):
    pass


@dataclass(frozen=True)
class UpOptions:
    paths: tuple[str, ...]
    state_dir: Path
    xds_port: int = 15010
    http_port: int = 15014
    publish_host: str = "127.0.0.1"
    gateway: bool = True
    ready_timeout: float = 60.0
    concurrency: int = 1


def service_vip(hostname: str) -> str:
    # The control plane's allocation, so /etc/hosts and its listeners agree.
    from ketch.controlplane.translate.service import service_vip as vip

    return vip(hostname)


def gateway_ports(docs: list[dict]) -> list[int]:
    """Server ports of Gateways that select the ingress gateway's labels."""
    ports: set[int] = set()
    for doc in docs:
        if doc.get("kind") != "Gateway":
            continue
        selector = (doc.get("spec") or {}).get("selector") or {}
        if not all(GATEWAY_LABELS.get(k) == v for k, v in selector.items()):
            continue
        for server in (doc.get("spec") or {}).get("servers") or ():
            number = (server.get("port") or {}).get("number")
            if isinstance(number, int):
                ports.add(number)
    return sorted(ports)


class Runtime:
    def __init__(self, options: UpOptions) -> None:
        self.options = options
        self.state = StateDir(options.state_dir)
        self.rest_url = f"http://127.0.0.1:{options.http_port}"
        self.registry = RegistryClient(self.rest_url)
        self.record: RuntimeRecord | None = None
        self.control_plane: Proc | None = None
        self.net: netplan.MeshNetwork | None = None
        self.pods: dict[str, Pod] = {}
        self.servers: list[asyncio.Server] = []
        self.published: dict[int, asyncio.Server | None] = {}
        self.gateway: Pod | None = None
        self._watcher: asyncio.Task | None = None

    def _set(self, **changes) -> None:
        assert self.record is not None
        self.record = replace(self.record, **changes)
        self.state.write_runtime(self.record)

    # -- start ----------------------------------------------------------------------------
    async def start(self) -> None:
        ok, reason = netexec.pod_mode_available()
        if not ok:
            raise UpError(f"pod mode unavailable ({reason}); run `ketch up` as root on Linux")
        self.state.ensure()
        previous = self.state.read_runtime()
        if previous and previous.supervisor_pid != os.getpid() and \
                pid_alive(previous.supervisor_pid):
            raise UpError(f"a runtime is already up (supervisor pid "
                          f"{previous.supervisor_pid}); run `ketch down` first")
        cleanup_stale(self.state)
        clear_logs(self.state)
        self.state.ensure()
        docs = read_documents(self.options.paths)
        manifest = parse(docs)
        prefix = "k" + secrets.token_hex(3)[:5]
        self.record = RuntimeRecord(prefix=prefix, supervisor_pid=os.getpid(), mode="pod",
                                    control_plane=self.rest_url)
        self.state.write_runtime(self.record)
        await self._ensure_control_plane()
        await self._apply(docs)
        self.net = await asyncio.to_thread(netexec.claim_subnet, prefix)
        if not await netexec.tcp_open(None, self.net.gateway, self.options.xds_port):
            # a reused control plane listening on loopback only: relay xDS from the bridge
            self.servers.append(await publish(self.net.gateway, self.options.xds_port,
                                              ("127.0.0.1", self.options.xds_port)))
        self._set(subnet=str(self.net.subnet), xds=f"{self.net.gateway}:{self.options.xds_port}")
        self._write_services(manifest)
        launch = LaunchConfig(xds_address=f"{self.net.gateway}:{self.options.xds_port}",
                              concurrency=self.options.concurrency)
        specs: list[tuple[PodSpec, str]] = [(p, "sidecar") for d in manifest.deployments
                                            for p in pods_for(d, prefix)]
        published = gateway_ports(docs) if self.options.gateway else []
        if self.options.gateway:
            specs.append((PodSpec(name=pod_name("istio-ingressgateway", 0, prefix),
                                  namespace="istio-system", deployment="istio-ingressgateway",
                                  labels=dict(GATEWAY_LABELS),
                                  service_account="istio-ingressgateway-service-account",
                                  containers=()), "router"))
        for index, (spec, mode) in enumerate(specs):
            pnet = netplan.plan_pod(self.net, spec.name, index)
            hosts = netplan.hosts_file(pnet, spec.namespace, manifest.services, service_vip)
            rules = netplan.capture_rules() if mode == "sidecar" else None
            await asyncio.to_thread(netexec.setup_pod, self.net, pnet, hosts, rules)
            self.pods[spec.name] = Pod(spec, pnet, instance_ports(spec, manifest.services),
                                       self.state, self.registry, launch, proxy_mode=mode)
        await asyncio.gather(*(pod.start() for pod in self.pods.values()))
        self.gateway = next((p for p in self.pods.values() if p.proxy_mode == "router"), None)
        await self._publish(published)
        await self._wait_ready()
        await self._wait_synced()
        self.servers.append(await asyncio.start_unix_server(self._control,
                                                            path=str(self.state.socket)))
        self._set(phase="Ready")
        if self.gateway is not None:
            self._watcher = asyncio.create_task(self._watch_gateways())

    async def _publish(self, ports: list[int]) -> None:
        """Relay host ports to the gateway pod (ports already published are kept)."""
        if self.gateway is None:
            return
        for port in ports:
            if port in self.published:
                continue
            try:
                self.published[port] = await publish(self.options.publish_host, port,
                                                     (self.gateway.net.ip, port))
            except OSError as exc:
                print(f"cannot publish gateway port {port}: {exc}", file=sys.stderr,
                      flush=True)
                self.published[port] = None
        self._set(published=tuple(f"{self.options.publish_host}:{p}"
                                  for p, server in sorted(self.published.items()) if server))

    async def _watch_gateways(self, interval: float = 2.0) -> None:
        """Gateways applied after `ketch up` (`ketch apply`) get their ports published too."""
        while True:
            await asyncio.sleep(interval)
            items = await self.registry.config("Gateway")
            if items:
                ports = gateway_ports([dict(i, kind="Gateway") for i in items])
                if set(ports) - set(self.published):
                    await self._publish(ports)

    async def _ensure_control_plane(self) -> None:
        if await self.registry.healthy():
            return  # reuse the one already listening on the default address
        cp = Proc("control-plane",
                  [sys.executable, "-m", "ketch", "control-plane", "--xds-port",
                   str(self.options.xds_port), "--http-port", str(self.options.http_port),
                   "--registry-ttl", "15"],
                  dict(os.environ), self.state.root / "logs" / "control-plane.log",
                  self.state.root)
        await cp.start()
        self.control_plane = cp
        self._set(control_plane_pid=cp.pid)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if cp.process and cp.process.returncode is not None:
                raise UpError("the control plane exited; see "
                              f"{self.state.root / 'logs' / 'control-plane.log'}")
            if await self.registry.healthy():
                return
            await asyncio.sleep(0.1)
        raise UpError("the control plane did not become healthy in 30 s")

    async def _apply(self, docs: list[dict]) -> None:
        if not docs:
            return
        status, body = await self.registry.apply(yaml.safe_dump_all(docs, sort_keys=False))
        if status != 200:
            errors = body.get("errors") if isinstance(body, dict) else None
            detail = "\n".join(str(e.get("message") or e) for e in errors or ()) or str(body)
            raise UpError(f"applying the config failed ({status}):\n{detail}")

    def _write_services(self, manifest: Manifest) -> None:
        records = [ServiceRecord(s.name, s.namespace, s.cluster_ip or service_vip(s.hostname),
                                 tuple(f"{p.name}:{p.port}->{p.target_port}" for p in s.ports))
                   for s in manifest.services]
        self.state.write_services(records)

    async def _wait_ready(self) -> None:
        waits = [asyncio.create_task(p.ready_event.wait()) for p in self.pods.values()]
        if not waits:
            return
        done, pending = await asyncio.wait(waits, timeout=self.options.ready_timeout)
        for task in pending:
            task.cancel()
        if pending:
            late = [p for p in self.pods.values() if not p.ready_event.is_set()]
            lines = [f"pods not ready after {self.options.ready_timeout:g} s:"]
            for pod in late:
                log = self.state.log_dir(pod.spec.name) / "sidecar.log"
                tail = log.read_text(errors="replace").splitlines()[-3:] if log.exists() else []
                lines.append(f"  {pod.spec.name}: {pod.record.message or pod.record.phase}"
                             + "".join(f"\n    sidecar: {t}" for t in tail))
            raise UpError("\n".join(lines))

    async def _wait_synced(self, timeout: float = 15.0) -> None:
        """Ready means routable: every pod's proxy connected and acknowledging the same
        snapshot, which includes the last registration (seen twice, 0.3 s apart, so a
        debounced push in flight is not missed)."""
        ids = {p.net.ip for p in self.pods.values()}
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            items = await self.registry.proxies() or []
            mine = [p for p in items if str(p.get("id", "")).split("~")[1:2] and
                    str(p["id"]).split("~")[1] in ids]
            versions = {p.get("version") for p in mine}
            synced = all(t.get("status") == "SYNCED" for p in mine
                         for t in (p.get("types") or {}).values())
            state = (len(mine), tuple(sorted(map(str, versions))))
            if len({p["id"].split("~")[1] for p in mine}) >= len(ids) and synced \
                    and len(versions) == 1 and state == last:
                return
            last = state if synced else None
            await asyncio.sleep(0.3)

    # -- control socket -------------------------------------------------------------------
    async def _control(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = json.loads(await reader.readline() or b"{}")
            op = request.get("op")
            if op == "restart":
                pods = [p for p in self.pods.values()
                        if p.spec.deployment == request.get("deployment")
                        or p.spec.name == request.get("deployment")]
                if not pods:
                    reply = {"error": f"no deployment {request.get('deployment')!r}"}
                else:
                    await asyncio.gather(*(p.restart() for p in pods))
                    # answer once the pods serve again, as `kubectl rollout status` would
                    waits = [asyncio.create_task(p.ready_event.wait()) for p in pods]
                    _, pending = await asyncio.wait(waits, timeout=self.options.ready_timeout)
                    for task in pending:
                        task.cancel()
                    reply = {"restarted": [p.spec.name for p in pods],
                             "ready": not pending}
            elif op == "stop":
                reply = {"stopping": True}
                self.stop_event.set()
            else:
                reply = {"phase": self.record.phase if self.record else "", "pods": len(self.pods)}
        except (ValueError, OSError) as exc:
            reply = {"error": str(exc)}
        writer.write(json.dumps(reply).encode() + b"\n")
        await writer.drain()
        writer.close()

    # -- stop -----------------------------------------------------------------------------
    async def stop(self) -> None:
        if self.record is not None:
            self._set(phase="Stopping")
        if self._watcher is not None:
            self._watcher.cancel()
        for server in [*self.servers, *self.published.values()]:
            if server is not None:
                server.close()
        self.servers = []
        self.published = {}
        await asyncio.gather(*(p.stop() for p in self.pods.values()), return_exceptions=True)
        await self.registry.close()
        if self.control_plane is not None:
            await self.control_plane.stop(5.0)
        if self.record is not None:
            await asyncio.to_thread(netexec.cleanup_prefix, self.record.prefix)
        self.state.clear_records()
        self.state.socket.unlink(missing_ok=True)
        self.state.runtime_file.unlink(missing_ok=True)

    async def run(self) -> int:
        self.stop_event = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop_event.set)
        starting = asyncio.create_task(self.start())
        stopper = asyncio.create_task(self.stop_event.wait())
        code = 0
        try:
            await asyncio.wait({starting, stopper}, return_when=asyncio.FIRST_COMPLETED)
            if starting.done() and starting.exception() is None:
                await stopper
            elif starting.done():
                exc = starting.exception()
                print(f"ketch up: {exc}", file=sys.stderr, flush=True)
                if self.record is not None:
                    self._set(phase="Failed", message=str(exc))
                code = 1
            else:
                starting.cancel()
                await asyncio.gather(starting, return_exceptions=True)
        finally:
            stopper.cancel()
            message = self.record.message if self.record else ""
            await self.stop()
            if code:
                # leave a trace of why for the waiting `ketch up`
                (self.state.root / "failed.txt").write_text(message)
        return code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ketch-supervisor")
    parser.add_argument("-f", dest="paths", action="append", required=True)
    parser.add_argument("--state-dir", required=True)
    parser.add_argument("--xds-port", type=int, default=15010)
    parser.add_argument("--http-port", type=int, default=15014)
    parser.add_argument("--publish-host", default="127.0.0.1")
    parser.add_argument("--no-gateway", action="store_true")
    parser.add_argument("--ready-timeout", type=float, default=60.0)
    parser.add_argument("--concurrency", type=int, default=1)
    args = parser.parse_args(argv)
    options = UpOptions(paths=tuple(args.paths), state_dir=Path(args.state_dir),
                        xds_port=args.xds_port, http_port=args.http_port,
                        publish_host=args.publish_host, gateway=not args.no_gateway,
                        ready_timeout=args.ready_timeout, concurrency=args.concurrency)
    return asyncio.run(Runtime(options).run())


if __name__ == "__main__":
    sys.exit(main())
