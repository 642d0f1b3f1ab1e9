"""Incremental (delta) ADS: `DeltaAggregatedResources`, on the same state as state of the world.

Differences from SotW, per Envoy's xDS protocol:
- Subscriptions change by difference (`resource_names_subscribe` / `_unsubscribe`); an LDS or
  CDS stream whose first request names nothing, or that subscribes "*", is a wildcard.
- Each resource has its own version (here: the hex of its digest); the client tells what it
  already holds on (re)connect with `initial_resource_versions`, and gets only what differs.
- Responses carry only changed resources and name deleted ones in `removed_resources`.
- A request whose nonce is the latest sent ACKs it (or NACKs it, with `error_detail`); any
  request may also change the subscription, and newly subscribed names are answered.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from envoy.service.discovery.v3.discovery_pb2 import (
    DeltaDiscoveryRequest,
    DeltaDiscoveryResponse,
    Resource,
)
from google.protobuf.any_pb2 import Any as AnyProto

from ketch.controlplane.xds.cache import Encoded, ResourceSet
from ketch.controlplane.xds.connection import Connection, Resources, log, next_nonce
from ketch.controlplane.xds.types import FULL_STATE_TYPES, push_rank, short_name
from ketch.controlplane.xds.watch import Watch


def resource_version(resource: Encoded) -> str:
    return resource.digest.hex()


@dataclass(eq=False)
class DeltaConnection(Connection):
    # type_url -> name -> version the client holds (as far as we know)
    holds: dict[str, dict[str, str]] = field(default_factory=dict)

    def on_request(self, request: DeltaDiscoveryRequest,  # type: ignore[override]
                   resources: Resources) -> list[DeltaDiscoveryResponse]:
        type_url = request.type_url
        subscribe = list(request.resource_names_subscribe)
        unsubscribe = set(request.resource_names_unsubscribe)
        watch = self.watches.get(type_url)
        first = watch is None
        if watch is None:
            watch = self.watches[type_url] = Watch(type_url)
            watch.wildcard = type_url in FULL_STATE_TYPES and (not subscribe or "*" in subscribe)
            watch.names = frozenset(subscribe) - {"*"}
            self.holds[type_url] = dict(request.initial_resource_versions)
        else:
            if "*" in subscribe:
                watch.wildcard = True
            if "*" in unsubscribe:
                watch.wildcard = False
            watch.names = (watch.names | set(subscribe)) - unsubscribe - {"*"}
            holds = self.holds[type_url]
            for name in unsubscribe:
                holds.pop(name, None)
        added = not first and bool(set(subscribe) - {"*"})
        nonce = request.response_nonce
        if nonce and nonce == watch.nonce_sent:
            if request.HasField("error_detail"):
                self._nack(watch, request.error_detail.message)
            else:
                self._ack(watch, nonce)
        if not (first or added or "*" in subscribe):
            return []
        current = resources(self.proxy, watch)
        if current is None:
            return []
        response = self._delta(watch, current, change=None)
        return [response] if response is not None else []

    def on_push(self, resources: Resources, change: float | None,  # type: ignore[override]
                types: tuple[str, ...] | None = None) -> list[DeltaDiscoveryResponse]:
        out: list[DeltaDiscoveryResponse] = []
        for type_url in sorted(self.watches, key=push_rank):
            if types is not None and type_url not in types:
                continue
            current = resources(self.proxy, self.watches[type_url])
            if current is None:
                continue
            response = self._delta(self.watches[type_url], current, change)
            if response is None:
                self.metrics.skipped.inc({"type": short_name(type_url).lower()})
            else:
                out.append(response)
        return out

    def _delta(self, watch: Watch, current: ResourceSet,
               change: float | None) -> DeltaDiscoveryResponse | None:
        wanted = current if watch.wildcard else current.select(watch.names)
        holds = self.holds[watch.type_url]
        changed = [r for r in wanted.ordered() if holds.get(r.name) != resource_version(r)]
        removed = sorted(n for n in holds if n not in wanted)
        if not changed and not removed and watch.nonce_sent:
            return None
        nonce = next_nonce()
        response = DeltaDiscoveryResponse(
            system_version_info=self.version, type_url=watch.type_url, nonce=nonce,
            removed_resources=removed,
            resources=[Resource(name=r.name, version=resource_version(r),
                                resource=AnyProto(type_url=r.type_url, value=r.body))
                       for r in changed])
        for name in removed:
            del holds[name]
        holds.update((r.name, resource_version(r)) for r in changed)
        sent: dict[str, Any] = {n: r for n, r in watch.sent.items() if n in holds}
        sent.update((r.name, r) for r in changed)
        watch.sent, watch.sent_fingerprint = sent, b""
        watch.nonce_sent, watch.version_sent = nonce, self.version
        watch.sent_at = self.wall()
        watch.responses += 1
        if change is not None:
            watch.pending_change = (change if watch.pending_change is None
                                    else min(change, watch.pending_change))
        self.metrics.pushes.inc({"type": short_name(watch.type_url).lower()})
        return response

    def _ack(self, watch: Watch, nonce: str) -> None:
        if watch.pending_change is not None:
            self.metrics.convergence.observe(max(0.0, self.clock() - watch.pending_change),
                                             {"type": short_name(watch.type_url)})
            watch.pending_change = None
        if watch.error:
            self._clear_reject(watch.type_url)
        watch.nonce_acked, watch.version_acked, watch.error = nonce, watch.version_sent, ""

    def _nack(self, watch: Watch, error: str) -> None:
        short = short_name(watch.type_url).lower()
        self.metrics.rejects.inc({"type": short})
        if short in self.metrics.type_rejects:
            self.metrics.type_rejects[short].set({"node": self.node_id, "err": error}, 1)
        watch.error = error or "rejected"
        log.warning("%s NACKed %s (delta) version %s: %s", self.node_id, short_name(watch.type_url),
                    watch.version_sent, error)
