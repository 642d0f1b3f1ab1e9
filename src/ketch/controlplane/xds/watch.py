"""What one proxy subscribed to per type, and whether a request needs an answer.

`should_respond` follows Istio's `ShouldRespond()` (pilot/pkg/xds/ads.go): a request is an
initial subscription, a NACK, an ACK, a stale request (its nonce is not the last one sent,
so a newer response is already on its way) or an ACK that also changes the subscribed
names. Only the initial request and a change of names need a response.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Mapping

from ketch.controlplane.xds.types import FULL_STATE_TYPES


class Verdict(str, Enum):
    INITIAL = "initial"  # first request for this type on this stream (or after reconnect)
    ACK = "ack"
    NACK = "nack"
    STALE = "stale"  # nonce is not the latest we sent: ignore
    NAMES_CHANGED = "names-changed"  # an ACK that subscribes to other names
    UNSUBSCRIBE = "unsubscribe"  # an empty request for a non-wildcard type

    @property
    def respond(self) -> bool:
        return self in (Verdict.INITIAL, Verdict.NAMES_CHANGED)


class SyncStatus(str, Enum):
    SYNCED = "SYNCED"  # the proxy ACKed the last response we sent
    STALE = "STALE"  # sent, not yet ACKed (or nothing sent yet)
    NACK = "NACK"  # the proxy rejected the last response we sent


@dataclass
class Watch:
    """One type's subscription on one stream, and what went back and forth on it."""

    type_url: str
    names: frozenset[str] = frozenset()
    wildcard: bool = True
    version_sent: str = ""
    nonce_sent: str = ""
    version_acked: str = ""
    nonce_acked: str = ""
    error: str = ""  # the error detail of a NACK of nonce_sent; "" once ACKed
    # name -> the Encoded resource the proxy was last sent (our view of what it holds)
    sent: Mapping[str, Any] = field(default_factory=dict)
    sent_fingerprint: bytes = b""  # of `sent` when it is a ResourceSet, else b""
    sent_at: float = 0.0  # wall time of the last response
    # When the earliest change not yet ACKed happened (for pilot_proxy_convergence_time).
    pending_change: float | None = None
    responses: int = 0

    @property
    def status(self) -> SyncStatus:
        if self.error and self.nonce_sent and self.nonce_acked != self.nonce_sent:
            return SyncStatus.NACK
        if self.nonce_sent and self.nonce_acked == self.nonce_sent:
            return SyncStatus.SYNCED
        return SyncStatus.STALE

    def subscribe(self, names: tuple[str, ...] | list[str]) -> None:
        wanted = frozenset(names)
        if "*" in wanted:
            wanted = wanted - {"*"}
        self.wildcard = self.type_url in FULL_STATE_TYPES and (not names or "*" in names)
        self.names = _intern(wanted)

    def wants(self, name: str) -> bool:
        return self.wildcard or name in self.names


_interned: dict[frozenset[str], frozenset[str]] = {}


def _intern(names: frozenset[str]) -> frozenset[str]:
    """One object per distinct name set, so lookups keyed by it (a ResourceSet's
    selections) are identity hits rather than element-by-element comparisons."""
    found = _interned.get(names)
    if found is None:
        if len(_interned) > 4096:  # bounded: forget, the sets are only a speed-up
            _interned.clear()
        found = _interned[names] = names
    return found


def should_respond(watch: Watch | None, type_url: str, names: tuple[str, ...],
                   nonce: str, error: str | None) -> Verdict:
    """Classify a DiscoveryRequest against the stream's watch for its type (pure)."""
    if watch is None or not nonce:
        return Verdict.INITIAL
    if nonce != watch.nonce_sent:
        return Verdict.STALE
    if error is not None:
        return Verdict.NACK
    if not names and type_url not in FULL_STATE_TYPES:
        return Verdict.UNSUBSCRIBE
    previous_wildcard, previous = watch.wildcard, watch.names
    probe = Watch(type_url)
    probe.subscribe(names)
    if probe.wildcard == previous_wildcard and probe.names == previous:
        return Verdict.ACK
    return Verdict.NAMES_CHANGED


def apply_verdict(watch: Watch, verdict: Verdict, names: tuple[str, ...], nonce: str,
                  error: str | None) -> None:
    """Update the watch for a classified request (the bookkeeping half of ShouldRespond)."""
    if verdict is Verdict.INITIAL:
        watch.subscribe(names)
        # A reconnecting proxy names the last nonce it saw from a previous stream; what it
        # holds is unknown to us, so everything is resent.
        watch.sent, watch.sent_fingerprint = {}, b""
    elif verdict is Verdict.NACK:
        watch.error = error or "rejected"
    elif verdict in (Verdict.ACK, Verdict.NAMES_CHANGED):
        watch.nonce_acked = nonce
        watch.version_acked = watch.version_sent
        watch.error = ""
        watch.subscribe(names)
    elif verdict is Verdict.UNSUBSCRIBE:
        watch.nonce_acked = nonce
        watch.version_acked = watch.version_sent
        watch.subscribe(())
