"""The instance registry: workloads that registered themselves at runtime.

This is Istio's WorkloadGroup auto-registration: an instance registers (name, namespace,
labels, service account, address, ports), sends heartbeats carrying its health, and
unregisters. One whose heartbeats stop for `ttl` seconds is dropped by `expire()`; one that
reports itself unhealthy is kept but marked unhealthy, so translation can still list it as an
unhealthy endpoint (Envoy then sends it no traffic).

Time comes from an injected monotonic clock so tests need no sleeps. All methods are
thread-safe; subscribers are called under the registry's lock, in order, in the thread that
made the change — keep callbacks short (schedule work, don't do it).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from dataclasses import dataclass, replace
from enum import Enum
from typing import Callable

from ketch.controlplane.instance import WorkloadInstance

log = logging.getLogger(__name__)

Clock = Callable[[], float]


class RegistryEventType(str, Enum):
    ADDED = "ADDED"
    MODIFIED = "MODIFIED"
    DELETED = "DELETED"


@dataclass(frozen=True)
class RegistryChange:
    """One change of the registry: the revision it produced and the instance concerned
    (for DELETED, the instance as it was)."""

    revision: int
    type: RegistryEventType
    instance: WorkloadInstance


RegistryCallback = Callable[[RegistryChange], None]


class Registry:
    """Instances registered at runtime, keyed by (namespace, name)."""

    def __init__(self, clock: Clock = time.monotonic, ttl: float = 30.0) -> None:
        if ttl <= 0:
            raise ValueError("ttl must be positive")
        self._clock = clock
        self.ttl = ttl
        self._lock = threading.RLock()
        self._instances: dict[tuple[str, str], WorkloadInstance] = {}
        self._last_seen: dict[tuple[str, str], float] = {}
        self._revision = 0
        self._subscribers: list[RegistryCallback] = []

    def __repr__(self) -> str:
        with self._lock:
            unhealthy = sum(1 for i in self._instances.values() if not i.healthy)
            return (
                f"<Registry revision={self._revision} instances={len(self._instances)} "
                f"unhealthy={unhealthy} ttl={self.ttl}>"
            )

    @property
    def revision(self) -> int:
        with self._lock:
            return self._revision

    def register(self, instance: WorkloadInstance) -> RegistryChange | None:
        """Add or replace an instance; counts as a heartbeat. Returns the change, or None
        when the instance was already registered exactly so (no revision bump)."""
        with self._lock:
            key = instance.key
            self._last_seen[key] = self._clock()
            old = self._instances.get(key)
            if old == instance:  # dataclass eq: every field, mappings by content
                return None
            self._instances[key] = instance
            kind = RegistryEventType.ADDED if old is None else RegistryEventType.MODIFIED
            return self._emit(kind, instance)

    def heartbeat(self, namespace: str, name: str, healthy: bool = True) -> bool:
        """Refresh an instance's lease and record its health. False when unknown (the
        caller should register again, as after a control-plane restart)."""
        with self._lock:
            key = (namespace, name)
            current = self._instances.get(key)
            if current is None:
                return False
            self._last_seen[key] = self._clock()
            if current.healthy != healthy:
                updated = replace(current, healthy=healthy)
                self._instances[key] = updated
                self._emit(RegistryEventType.MODIFIED, updated)
            return True

    def unregister(self, namespace: str, name: str) -> bool:
        with self._lock:
            key = (namespace, name)
            current = self._instances.pop(key, None)
            if current is None:
                return False
            self._last_seen.pop(key, None)
            self._emit(RegistryEventType.DELETED, current)
            return True

    def expire(self) -> list[WorkloadInstance]:
        """Drop every instance whose last heartbeat is `ttl` or more seconds old."""
        with self._lock:
            now = self._clock()
            stale = [k for k, seen in self._last_seen.items() if now - seen >= self.ttl]
            dropped = []
            for key in sorted(stale):
                instance = self._instances.pop(key)
                del self._last_seen[key]
                dropped.append(instance)
                log.info("registry: %s/%s expired (no heartbeat for %.0fs)", *key, self.ttl)
                self._emit(RegistryEventType.DELETED, instance)
            return dropped

    def get(self, namespace: str, name: str) -> WorkloadInstance | None:
        with self._lock:
            return self._instances.get((namespace, name))

    def instances(self) -> tuple[WorkloadInstance, ...]:
        with self._lock:
            return tuple(self._instances[k] for k in sorted(self._instances))

    def last_seen(self, namespace: str, name: str) -> float | None:
        """Clock reading of the instance's last registration or heartbeat."""
        with self._lock:
            return self._last_seen.get((namespace, name))

    def subscribe(self, callback: RegistryCallback) -> Callable[[], None]:
        """Call `callback(RegistryChange)` after every change; returns an unsubscribe."""
        with self._lock:
            self._subscribers.append(callback)

        def unsubscribe() -> None:
            with self._lock:
                if callback in self._subscribers:
                    self._subscribers.remove(callback)

        return unsubscribe

    def _emit(self, kind: RegistryEventType, instance: WorkloadInstance) -> RegistryChange:
        self._revision += 1
        change = RegistryChange(self._revision, kind, instance)
        for callback in list(self._subscribers):
            try:
                callback(change)
            except Exception:  # one broken subscriber must not stop the others
                log.exception("registry subscriber failed")
        return change


async def run_expiry(registry: Registry, interval: float = 5.0) -> None:
    """Expire stale instances every `interval` seconds until cancelled.

    Start it on the control plane's loop: `asyncio.create_task(run_expiry(registry))`."""
    while True:
        await asyncio.sleep(interval)
        try:
            registry.expire()
        except Exception:
            log.exception("registry expiry failed")
