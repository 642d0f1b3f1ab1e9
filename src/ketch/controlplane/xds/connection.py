"""One ADS stream's state and the responses it needs; no gRPC in here.

A `Connection` answers a DiscoveryRequest (`on_request`) or a push (`on_push`) with the
DiscoveryResponses to send, given the current resources for its proxy. It skips types whose
resources did not change, sends LDS/CDS as full sets (state of the world deletes what is left
out) and only the changed RDS/EDS resources (which SotW allows), in Envoy's warming order.
"""

from __future__ import annotations

import itertools
import logging
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

from envoy.service.discovery.v3.discovery_pb2 import DiscoveryRequest, DiscoveryResponse

from ketch.controlplane.xds.cache import Encoded, ResourceSet, length_delimited, same
from ketch.controlplane.xds.metrics import XdsMetrics
from ketch.controlplane.xds.types import FULL_STATE_TYPES, push_rank, short_name
from ketch.controlplane.xds.watch import Verdict, Watch, apply_verdict, should_respond

log = logging.getLogger(__name__)

# (proxy, watch) -> every resource of the watch's type for the proxy, or None before the
# first snapshot. Supplied by the server, which owns the snapshot and the generation cache.
Resources = Callable[[Any, Watch], "ResourceSet | None"]

_nonce_prefix = os.urandom(4).hex()  # nonces of an earlier control-plane process never match
_nonces = itertools.count(1)


def next_nonce() -> str:
    return f"{_nonce_prefix}-{next(_nonces)}"


def plan(watch: Watch, current: ResourceSet, *, resend: bool, partial: bool = False
         ) -> tuple[Sequence[Encoded], Mapping[str, Encoded]] | None:
    """What to send for one type and what the proxy then holds, or None when it already has
    everything (pure).

    `partial`: send only the changed RDS/EDS resources, as Envoy's SotW allows and Istio's
    incremental EDS does (Envoy, gRPC's xDS client and Ketch's proxy treat RDS/EDS per
    resource). The server turns it on by default; a new subscription is answered in full."""
    wanted = current if watch.wildcard else current.select(watch.names)
    if (partial and watch.type_url not in FULL_STATE_TYPES and not resend
            and watch.nonce_sent):
        sent = watch.sent
        if isinstance(sent, ResourceSet):  # shared by every proxy sent the same set
            changed, gone = wanted.changes_since(sent)
        else:
            changed = tuple(r for r in wanted.ordered() if not same(sent.get(r.name), r))
            gone = frozenset(n for n in sent if n not in wanted)
        if not changed:
            return None
        if not any(watch.wants(n) for n in gone):
            return changed, wanted  # it now holds exactly `wanted` (shared from here on)
        holds = {n: r for n, r in sent.items() if watch.wants(n)}
        holds.update((r.name, r) for r in changed)
        return changed, holds
    if not resend and watch.nonce_sent and watch.sent_fingerprint == wanted.fingerprint():
        return None
    return wanted.ordered(), wanted


@dataclass(frozen=True)
class Response:
    """A DiscoveryResponse, kept as the encoded resources it carries until it is sent."""

    version_info: str
    type_url: str
    nonce: str
    resources: Sequence[Encoded]  # a ResourceSet's own ordered tuple reuses its wire bytes
    whole: ResourceSet | None = None  # set when `resources` is all of this set

    def to_bytes(self) -> bytes:
        body = (self.whole.wire() if self.whole is not None
                else b"".join(r.entry for r in self.resources))
        return b"".join((length_delimited(1, self.version_info.encode()), body,
                         length_delimited(4, self.type_url.encode()),
                         length_delimited(5, self.nonce.encode())))

    def to_proto(self) -> DiscoveryResponse:
        return DiscoveryResponse.FromString(self.to_bytes())


@dataclass
class Connection:
    id: str
    proxy: Any
    node_id: str
    connected_at: float  # wall time
    metrics: XdsMetrics
    clock: Callable[[], float]
    wall: Callable[[], float]
    watches: dict[str, Watch] = field(default_factory=dict)
    version: str = ""  # the snapshot version of the current resources
    partial: bool = False  # send only changed RDS/EDS resources (see plan())

    def __repr__(self) -> str:
        types = ", ".join(f"{short_name(t)}:{w.status.value}" for t, w in self.watches.items())
        return f"<Connection {self.id} [{types}]>"

    def on_request(self, request: DiscoveryRequest, resources: Resources) -> list[Response]:
        type_url = request.type_url
        names = tuple(request.resource_names)
        error = request.error_detail.message if request.HasField("error_detail") else None
        watch = self.watches.get(type_url)
        verdict = should_respond(watch, type_url, names, request.response_nonce, error)
        if watch is None:
            watch = self.watches[type_url] = Watch(type_url)
        if verdict is Verdict.ACK and watch.pending_change is not None:
            self.metrics.convergence.observe(max(0.0, self.clock() - watch.pending_change),
                                             {"type": short_name(type_url)})
            watch.pending_change = None
        if verdict is Verdict.NACK:
            short = short_name(type_url).lower()
            self.metrics.rejects.inc({"type": short})
            if short in self.metrics.type_rejects:
                self.metrics.type_rejects[short].set({"node": self.node_id, "err": error or ""}, 1)
            log.warning("%s NACKed %s version %s: %s", self.node_id, short_name(type_url),
                        watch.version_sent, error)
        elif verdict is Verdict.ACK and watch.error:
            self._clear_reject(type_url)
        apply_verdict(watch, verdict, names, request.response_nonce, error)
        if not verdict.respond:
            return []
        current = resources(self.proxy, watch)
        if current is None:  # no snapshot yet: the first push answers
            return []
        # A new subscription is answered in full (as Istio does), even if nothing it names
        # exists yet; in partial mode a change of names gets only what the proxy lacks.
        resend = verdict is Verdict.INITIAL or not self.partial
        response = self._respond(watch, current, resend=resend, change=None)
        return [response] if response is not None else []

    def on_push(self, resources: Resources, change: float | None,
                types: tuple[str, ...] | None = None) -> list[Response]:
        """Responses for every watched type (or only `types`) whose resources changed."""
        out: list[Response] = []
        for type_url in sorted(self.watches, key=push_rank):
            if types is not None and type_url not in types:
                continue
            watch = self.watches[type_url]
            current = resources(self.proxy, watch)
            if current is None:
                continue
            response = self._respond(watch, current, resend=False, change=change)
            if response is None:
                self.metrics.skipped.inc({"type": short_name(type_url).lower()})
            else:
                out.append(response)
        return out

    def _respond(self, watch: Watch, current: ResourceSet, *, resend: bool,
                 change: float | None) -> Response | None:
        planned = plan(watch, current, resend=resend, partial=self.partial)
        if planned is None:
            return None
        chosen, holds = planned
        nonce = next_nonce()
        whole = holds if isinstance(holds, ResourceSet) and chosen is holds.ordered() else None
        response = Response(self.version, watch.type_url, nonce, tuple(chosen), whole)
        watch.sent = holds
        watch.sent_fingerprint = holds.fingerprint() if isinstance(holds, ResourceSet) else b""
        watch.nonce_sent = nonce
        watch.version_sent = self.version
        watch.sent_at = self.wall()
        watch.responses += 1
        if change is not None:
            watch.pending_change = (change if watch.pending_change is None
                                    else min(change, watch.pending_change))
        self.metrics.pushes.inc({"type": short_name(watch.type_url).lower()})
        return response

    def _clear_reject(self, type_url: str) -> None:
        gauge = self.metrics.type_rejects.get(short_name(type_url).lower())
        if gauge is not None:
            for labels in [k for k in gauge.values if ("node", self.node_id) in k]:
                del gauge.values[labels]

    def close(self) -> None:
        for type_url in self.watches:
            self._clear_reject(type_url)
