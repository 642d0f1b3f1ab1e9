"""ADS client (state of the world, gRPC over the proxy's own HTTP/2): subscribe, validate, apply, ACK or NACK, reconnect.

Order as Envoy: CDS and LDS wildcard subscriptions first; after clusters apply, EDS for the
EDS clusters' service names; after listeners apply, RDS for the names their HTTP connection
managers use. A response whose resources do not all compile is NACKed with the reason (the
previous version stays in force). If the stream breaks, the proxy keeps serving its last good
config and reconnects with exponential backoff and full jitter, re-sending its subscriptions
with the last accepted versions.
"""

from __future__ import annotations

import asyncio
import logging
import random

from envoy.config.core.v3 import base_pb2
from envoy.service.discovery.v3 import discovery_pb2
from google.rpc import status_pb2

from ketch.proxy.grpc_stream import GrpcError, GrpcStream

from ketch.proxy.protoutil import Unsupported
from ketch.proxy.xds import CDS, EDS, LDS, RDS, ConfigManager, decode

log = logging.getLogger("ketch.proxy.ads")
ADS_PATH = "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources"


class AdsClient:
    def __init__(self, target: str, node: base_pb2.Node, config: ConfigManager, *,
                 on_ready=None, rng: random.Random | None = None,
                 base_backoff: float = 0.5, max_backoff: float = 30.0) -> None:
        self.target = target
        self.node = node
        self.config = config
        self.on_ready = on_ready
        self.rng = rng or random.Random()
        self.base_backoff = base_backoff
        self.max_backoff = max_backoff
        self.nonces: dict[str, str] = {}
        self.names: dict[str, list[str]] = {CDS: [], LDS: [], EDS: [], RDS: []}
        self.subscribed: set[str] = set()
        self.connected = False
        self.acks = 0
        self.nacks: list[str] = []
        self.last_error = ""
        self._ready = False
        self._stopping = False

    def _request(self, type_url: str, nonce: str = "", error: str | None = None) -> discovery_pb2.DiscoveryRequest:
        req = discovery_pb2.DiscoveryRequest(
            type_url=type_url, version_info=self.config.versions.get(type_url, ""),
            resource_names=self.names[type_url], response_nonce=nonce)
        req.node.CopyFrom(self.node)
        if error is not None:
            req.error_detail.CopyFrom(status_pb2.Status(code=3, message=error))
        return req

    async def run(self) -> None:
        attempt = 0
        while not self._stopping:
            try:
                await self._stream()
                attempt = 0
            except asyncio.CancelledError:
                raise
            except (GrpcError, OSError) as exc:
                self.last_error = str(exc)
                log.warning("ADS stream to %s failed: %s", self.target, self.last_error)
            self.connected = False
            if self._stopping:
                return
            attempt = min(attempt + 1, 16)
            delay = self.rng.uniform(0, min(self.max_backoff, self.base_backoff * 2 ** attempt))
            await asyncio.sleep(delay)

    def stop(self) -> None:
        self._stopping = True

    async def _stream(self) -> None:
        host, _, port = self.target.rpartition(":")
        call = await GrpcStream.open(host.strip("[]"), int(port), ADS_PATH)
        try:
            self.nonces.clear()
            self.subscribed = {CDS, LDS}
            call.write(self._request(CDS))
            call.write(self._request(LDS))
            if self.names[EDS]:
                self.subscribed.add(EDS)
                call.write(self._request(EDS))
            if self.names[RDS]:
                self.subscribed.add(RDS)
                call.write(self._request(RDS))
            self.connected = True
            while True:
                raw = await call.read()
                if raw is None:
                    return
                resp = discovery_pb2.DiscoveryResponse()
                resp.ParseFromString(raw)
                await self._handle(call, resp)
        finally:
            call.close()

    async def _handle(self, call, resp: discovery_pb2.DiscoveryResponse) -> None:
        t = resp.type_url
        self.nonces[t] = resp.nonce
        if t not in self.names:
            call.write(discovery_pb2.DiscoveryRequest(
                type_url=t, response_nonce=resp.nonce, node=self.node,
                error_detail=status_pb2.Status(code=12, message=f"type {t} is not supported")))
            return
        try:
            resources = decode(t, list(resp.resources))
            await self.config.update(t, resources, resp.version_info)
        except Exception as exc:  # noqa: BLE001 - Unsupported, or a bug: either way NACK, keep the stream
            reason = str(exc) if isinstance(exc, Unsupported) else f"internal error: {type(exc).__name__}: {exc}"
            if not isinstance(exc, Unsupported):
                log.exception("applying %s failed", t)
            self.nacks.append(reason)
            log.warning("NACK %s version %s: %s", t.rsplit(".", 1)[-1], resp.version_info, reason)
            call.write(self._request(t, resp.nonce, reason))
            return
        self.acks += 1
        call.write(self._request(t, resp.nonce))
        # follow-on subscriptions: clusters → endpoints, listeners → routes
        if t == CDS:
            await self._resubscribe(call, EDS, self.config.wanted_endpoints)
        elif t == LDS:
            await self._resubscribe(call, RDS, self.config.wanted_routes)
        self._check_ready()

    async def _resubscribe(self, call, t: str, names: list[str]) -> None:
        if names == self.names[t] and (t in self.subscribed or not names):
            return
        self.names[t] = list(names)
        self.subscribed.add(t)
        call.write(self._request(t, self.nonces.get(t, "")))

    def _check_ready(self) -> None:
        if self._ready:
            return
        v = self.config.versions
        if CDS not in v or LDS not in v:
            return
        have = set(self.config.raw[RDS])
        if not set(self.config.wanted_routes) <= have:
            return
        self._ready = True
        if self.on_ready is not None:
            self.on_ready()
