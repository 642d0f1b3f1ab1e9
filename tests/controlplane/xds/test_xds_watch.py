"""ShouldRespond: initial, ACK, NACK, stale nonce, changed names, unsubscribe."""

from __future__ import annotations

import pytest

from ketch.controlplane.xds.types import CLUSTER, ENDPOINT
from ketch.controlplane.xds.watch import SyncStatus, Verdict, Watch, apply_verdict, should_respond


def sent(type_url: str, names=(), nonce: str = "n1") -> Watch:
    w = Watch(type_url)
    w.subscribe(names)
    w.nonce_sent, w.version_sent = nonce, "v1"
    return w


@pytest.mark.parametrize(
    "watch, names, nonce, error, verdict",
    [
        (None, (), "", None, Verdict.INITIAL),
        (None, ("a",), "old-nonce", None, Verdict.INITIAL),  # reconnect to a new server
        (sent(CLUSTER), (), "", None, Verdict.INITIAL),  # a fresh request on the stream
        (sent(CLUSTER), (), "n1", None, Verdict.ACK),
        (sent(CLUSTER), ("*",), "n1", None, Verdict.ACK),  # "*" is the same wildcard
        (sent(CLUSTER), (), "n0", None, Verdict.STALE),
        (sent(CLUSTER), (), "n0", "bad", Verdict.STALE),  # a NACK of a superseded response
        (sent(CLUSTER), (), "n1", "bad cluster", Verdict.NACK),
        (sent(ENDPOINT, ("a",)), ("a",), "n1", None, Verdict.ACK),
        (sent(ENDPOINT, ("a",)), ("a", "b"), "n1", None, Verdict.NAMES_CHANGED),
        (sent(ENDPOINT, ("a", "b")), ("b", "a"), "n1", None, Verdict.ACK),  # order is not a change
        (sent(ENDPOINT, ("a",)), (), "n1", None, Verdict.UNSUBSCRIBE),
        (sent(CLUSTER), ("x",), "n1", None, Verdict.NAMES_CHANGED),  # wildcard -> named
    ],
)
def test_should_respond(watch, names, nonce, error, verdict) -> None:
    type_url = watch.type_url if watch else CLUSTER
    got = should_respond(watch, type_url, names, nonce, error)
    assert got is verdict
    assert got.respond == (verdict in (Verdict.INITIAL, Verdict.NAMES_CHANGED))


def test_status_follows_ack_and_nack() -> None:
    w = sent(CLUSTER)
    assert w.status is SyncStatus.STALE
    apply_verdict(w, Verdict.NACK, (), "n1", "unknown field")
    assert w.status is SyncStatus.NACK and w.error == "unknown field"
    assert w.version_acked == ""
    # the next response is sent: still NACKed from the proxy's side until it ACKs
    w.nonce_sent, w.version_sent = "n2", "v2"
    apply_verdict(w, Verdict.ACK, (), "n2", None)
    assert w.status is SyncStatus.SYNCED
    assert (w.version_acked, w.error) == ("v2", "")


def test_wildcard_only_for_full_state_types() -> None:
    cds, eds = Watch(CLUSTER), Watch(ENDPOINT)
    cds.subscribe(())
    eds.subscribe(())
    assert cds.wants("anything") and not eds.wants("anything")
