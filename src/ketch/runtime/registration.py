"""Registration of pods with the control plane's registry (contracts §3), in the manner of
Istio's WorkloadGroup auto-registration: register, heartbeat with health, unregister."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Mapping

import aiohttp


@dataclass(frozen=True)
class Registration:
    name: str
    namespace: str
    labels: Mapping[str, str]
    service_account: str
    address: str
    ports: Mapping[str, int]

    def body(self, healthy: bool) -> dict[str, object]:
        return {"name": self.name, "namespace": self.namespace, "labels": dict(self.labels),
                "serviceAccount": self.service_account, "address": self.address,
                "ports": dict(self.ports), "healthy": healthy, "weight": 1, "locality": ""}


class RegistryClient:
    """A small client for the registry endpoints; every call returns False on failure
    rather than raising, since the supervisor simply tries again on its next tick."""

    def __init__(self, base_url: str, timeout: float = 2.0) -> None:
        self.base = base_url.rstrip("/")
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    def _s(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            # trust_env False: never send the control plane's traffic to an HTTP proxy
            self._session = aiohttp.ClientSession(timeout=self.timeout, trust_env=False)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def register(self, reg: Registration, healthy: bool) -> float | None:
        """The TTL the control plane grants, or None when registration failed."""
        try:
            async with self._s().post(f"{self.base}/api/v1/registry/instances",
                                      json=reg.body(healthy)) as resp:
                if resp.status != 200:
                    return None
                body = await resp.json(content_type=None)
                return float(body.get("ttlSeconds") or 30.0)
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError):
            return None

    async def heartbeat(self, reg: Registration, healthy: bool) -> int:
        """HTTP status of the heartbeat (404: the registry forgot us), 0 when unreachable."""
        url = f"{self.base}/api/v1/registry/instances/{reg.namespace}/{reg.name}/heartbeat"
        try:
            async with self._s().put(url, json={"healthy": healthy}) as resp:
                return resp.status
        except (aiohttp.ClientError, asyncio.TimeoutError):
            return 0

    async def unregister(self, reg: Registration) -> bool:
        url = f"{self.base}/api/v1/registry/instances/{reg.namespace}/{reg.name}"
        try:
            async with self._s().delete(url) as resp:
                return resp.status in (200, 204, 404)
        except (aiohttp.ClientError, asyncio.TimeoutError):
            return False

    async def proxies(self) -> list[dict] | None:
        try:
            async with self._s().get(f"{self.base}/api/v1/proxies") as resp:
                if resp.status != 200:
                    return None
                body = await resp.json(content_type=None)
                return list(body.get("items") or [])
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError):
            return None

    async def config(self, kind: str) -> list[dict] | None:
        try:
            async with self._s().get(f"{self.base}/api/v1/config",
                                     params={"kind": kind}) as resp:
                if resp.status != 200:
                    return None
                body = await resp.json(content_type=None)
                return list(body.get("items") or [])
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError):
            return None

    async def healthy(self) -> bool:
        try:
            async with self._s().get(f"{self.base}/healthz") as resp:
                return resp.status == 200
        except (aiohttp.ClientError, asyncio.TimeoutError):
            return False

    async def apply(self, text: str) -> tuple[int, object]:
        try:
            async with self._s().post(f"{self.base}/api/v1/config", data=text.encode(),
                                      headers={"Content-Type": "application/yaml"},
                                      timeout=aiohttp.ClientTimeout(total=30)) as resp:
                return resp.status, await resp.json(content_type=None)
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
            return 0, str(exc)
