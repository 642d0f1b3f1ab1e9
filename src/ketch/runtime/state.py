"""The runtime's state directory: what is running, readable by other commands.

    <state>/runtime.json         prefix, supervisor pid, subnet, control plane, mode
    <state>/pods/<pod>.json      one record per pod (phase, ip, restarts, pids)
    <state>/services.json        the services the runtime resolves, with their VIPs
    <state>/logs/<pod>/<container>.log, sidecar.log
    <state>/supervisor.sock      control socket of a running `ketch up` (restart, stop)

`list_pods(state_dir)` and `list_services(state_dir)` are what `ketch get pods|services`
shows. Records are written atomically (write + rename) so readers never see half a file.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


def default_state_dir() -> Path:
    env = os.environ.get("KETCH_RUNTIME_DIR")
    if env:
        return Path(env)
    return Path.home() / ".ketch" / "runtime"


@dataclass(frozen=True)
class RuntimeRecord:
    prefix: str
    supervisor_pid: int
    mode: str  # "pod" or "process"
    subnet: str = ""
    control_plane: str = ""  # REST URL
    control_plane_pid: int = 0  # 0 when an existing control plane was reused
    xds: str = ""
    phase: str = "Starting"  # Starting, Ready, Stopping, Failed
    message: str = ""
    published: tuple[str, ...] = ()  # host addresses of published gateway ports


@dataclass(frozen=True)
class PodRecord:
    name: str
    namespace: str
    deployment: str
    ip: str
    netns: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    service_account: str = "default"
    phase: str = "Pending"  # Pending, Running, Restarting, Terminating, Failed
    ready: bool = False
    restarts: int = 0
    pids: dict[str, int] = field(default_factory=dict)
    started_at: float = 0.0
    message: str = ""


@dataclass(frozen=True)
class ServiceRecord:
    name: str
    namespace: str
    vip: str
    ports: tuple[str, ...]  # "name:port->target"


class StateDir:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    @property
    def runtime_file(self) -> Path:
        return self.root / "runtime.json"

    @property
    def pods_dir(self) -> Path:
        return self.root / "pods"

    @property
    def socket(self) -> Path:
        return self.root / "supervisor.sock"

    def log_dir(self, pod: str) -> Path:
        return self.root / "logs" / pod

    def ensure(self) -> None:
        self.pods_dir.mkdir(parents=True, exist_ok=True)
        (self.root / "logs").mkdir(parents=True, exist_ok=True)

    # -- runtime record -------------------------------------------------------------------
    def read_runtime(self) -> RuntimeRecord | None:
        data = _read_json(self.runtime_file)
        if not isinstance(data, dict):
            return None
        data["published"] = tuple(data.get("published") or ())
        try:
            return RuntimeRecord(**data)
        except TypeError:
            return None

    def write_runtime(self, record: RuntimeRecord) -> None:
        _write_json(self.runtime_file, asdict(record))

    # -- pods -----------------------------------------------------------------------------
    def write_pod(self, record: PodRecord) -> None:
        _write_json(self.pods_dir / f"{record.name}.json", asdict(record))

    def remove_pod(self, name: str) -> None:
        (self.pods_dir / f"{name}.json").unlink(missing_ok=True)

    def pods(self) -> list[PodRecord]:
        out = []
        if self.pods_dir.is_dir():
            for path in sorted(self.pods_dir.glob("*.json")):
                data = _read_json(path)
                if isinstance(data, dict):
                    try:
                        out.append(PodRecord(**data))
                    except TypeError:
                        continue
        return out

    # -- services -------------------------------------------------------------------------
    def write_services(self, services: list[ServiceRecord]) -> None:
        _write_json(self.root / "services.json", [asdict(s) for s in services])

    def services(self) -> list[ServiceRecord]:
        data = _read_json(self.root / "services.json")
        if not isinstance(data, list):
            return []
        return [ServiceRecord(s["name"], s["namespace"], s["vip"], tuple(s["ports"]))
                for s in data if isinstance(s, dict)]

    def clear_records(self) -> None:
        for path in self.pods_dir.glob("*.json") if self.pods_dir.is_dir() else ():
            path.unlink(missing_ok=True)
        (self.root / "services.json").unlink(missing_ok=True)


def list_pods(state_dir: str | Path | None = None) -> list[dict[str, Any]]:
    """Pods of the local runtime as plain dicts (name, namespace, ip, phase, ready, restarts,
    labels, ...), for `ketch get pods`. Empty when nothing runs."""
    state = StateDir(state_dir or default_state_dir())
    return [asdict(p) for p in state.pods()]


def list_services(state_dir: str | Path | None = None) -> list[dict[str, Any]]:
    """Services the local runtime resolves (name, namespace, vip, ports), for `ketch get
    services`."""
    state = StateDir(state_dir or default_state_dir())
    return [asdict(s) for s in state.services()]


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
    os.replace(tmp, path)


def _rfc3339(epoch: float) -> str | None:
    if not epoch:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def pod_items(state_dir: str | Path | None = None, name: str | None = None,
              namespace: str | None = None) -> list[dict[str, Any]]:
    """The runtime's pods as Kubernetes Pod objects (metadata, spec, status with phase,
    podIP and containerStatuses), the shape `ketch get pods` tables read. `namespace`
    None means all namespaces."""
    state = StateDir(state_dir or default_state_dir())
    items = []
    for p in state.pods():
        if (name and p.name != name) or (namespace and p.namespace != namespace):
            continue
        containers = [c for c in p.pids if c != "sidecar"] + ["istio-proxy"]
        items.append({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": p.name, "namespace": p.namespace, "labels": dict(p.labels),
                         "creationTimestamp": _rfc3339(p.started_at),
                         "ownerReferences": [{"kind": "Deployment", "name": p.deployment}]},
            "spec": {"serviceAccountName": p.service_account,
                     "containers": [{"name": c} for c in containers]},
            "status": {
                # Kubernetes shows a crash-looping pod as Running with a reason; keep ours
                "phase": p.phase, "podIP": p.ip, "message": p.message,
                "startTime": p.started_at,
                # restarts are the app's: the supervisor restarts the app, never the sidecar
                "containerStatuses": [{"name": c, "ready": p.ready,
                                       "restartCount": 0 if c == "istio-proxy" else p.restarts}
                                      for c in containers],
            },
        })
    return items


def service_items(state_dir: str | Path | None = None, name: str | None = None,
                  namespace: str | None = None) -> list[dict[str, Any]]:
    """The runtime's services as Kubernetes Service objects with their VIP as clusterIP."""
    state = StateDir(state_dir or default_state_dir())
    items = []
    for s in state.services():
        if (name and s.name != name) or (namespace and s.namespace != namespace):
            continue
        ports = []
        for text in s.ports:
            pname, _, rest = text.partition(":")
            port, _, target = rest.partition("->")
            ports.append({"name": pname, "port": int(port),
                          "targetPort": int(target) if target.isdigit() else target})
        items.append({"apiVersion": "v1", "kind": "Service",
                      "metadata": {"name": s.name, "namespace": s.namespace},
                      "spec": {"clusterIP": s.vip, "ports": ports}})
    return items
