"""Config store behaviour shared by MemoryStore and FileStore."""

from __future__ import annotations

import threading

import pytest

from ketch.store import (
    ApplyError,
    ChangeType,
    FileStore,
    MemoryStore,
    RevisionCompacted,
    VersionConflict,
)

from store_helpers import dr, invalid_vs, validator, vs


@pytest.fixture(params=["memory", "file"])
def store(request, tmp_path):
    if request.param == "memory":
        yield MemoryStore(clock=lambda: 1_700_000_000.0, validator=validator)
    else:
        s = FileStore(tmp_path, clock=lambda: 1_700_000_000.0, validator=validator)
        yield s
        s.close()


def test_apply_adds_and_versions_increase(store):
    changes = store.apply([vs("a"), dr("a"), vs("b", ns="prod")])
    assert [(c.type, c.key.kind, c.key.name, c.revision) for c in changes] == [
        (ChangeType.ADDED, "VirtualService", "a", 1),
        (ChangeType.ADDED, "DestinationRule", "a", 2),
        (ChangeType.ADDED, "VirtualService", "b", 3),
    ]
    assert store.revision == 3
    got = store.get("VirtualService", "default", "a")
    assert got == changes[0].resource
    assert got.metadata.resource_version == "1"
    assert got.metadata.generation == 1
    assert got.metadata.creation_timestamp == "2023-11-14T22:13:20Z"
    assert [r.key.name for r in store.list("VirtualService")] == ["a", "b"]
    assert [r.key.kind for r in store.list(namespace="default")] == ["DestinationRule", "VirtualService"]
    assert store.get("VirtualService", "default", "missing") is None


def test_reapply_identical_changes_nothing(store):
    store.apply([vs("a"), dr("a")])
    assert store.apply([vs("a"), dr("a")]) == []
    assert store.revision == 2


def test_modify_bumps_version_and_generation(store):
    store.apply([vs("a", w1=100), dr("a")])
    (change,) = store.apply([vs("a", w1=80)])
    assert change.type is ChangeType.MODIFIED
    stored = store.get("VirtualService", "default", "a")
    assert stored.metadata.resource_version == "3"
    assert stored.metadata.generation == 2
    assert stored.spec.http[0].route[0].weight == 80
    # A label change is a change, but not of the spec: generation stays.
    store.apply([vs("a", w1=80).with_meta(labels={"team": "x"})])
    stored = store.get("VirtualService", "default", "a")
    assert (stored.metadata.resource_version, stored.metadata.generation) == ("4", 2)


def test_invalid_batch_is_rejected_whole_with_every_issue(store):
    events = []
    store.subscribe(events.append)
    store.apply([dr("keep")])
    with pytest.raises(ApplyError) as err:
        store.apply([vs("a"), invalid_vs("bad1"), dr("a"), invalid_vs("bad2")])
    names = {i.name for i in err.value.issues}
    assert names == {"bad1", "bad2"}
    assert all(i.kind == "VirtualService" and i.path.startswith("spec.hosts") for i in err.value.issues)
    assert store.revision == 1
    assert [r.key.name for r in store.list()] == ["keep"]
    assert len(events) == 1


def test_stale_expected_version_conflicts_and_stores_nothing(store):
    (added,) = store.apply([vs("a", w1=100)])
    store.apply([vs("a", w1=90)])  # someone else's update
    with pytest.raises(VersionConflict) as err:
        store.apply(
            [dr("a"), vs("a", w1=50)],
            expected_versions={added.key: added.resource.metadata.resource_version},
        )
    (issue,) = err.value.issues
    assert issue.path == "metadata.resourceVersion" and "conflict" in issue.reason
    assert store.get("DestinationRule", "default", "a") is None
    assert store.get("VirtualService", "default", "a").spec.http[0].route[0].weight == 90
    # With the current version it goes through.
    current = store.get("VirtualService", "default", "a").metadata.resource_version
    store.apply([vs("a", w1=50)], expected_versions={added.key: current})
    assert store.get("VirtualService", "default", "a").spec.http[0].route[0].weight == 50


def test_expected_absent_means_create_only(store):
    store.apply([vs("a")])
    with pytest.raises(VersionConflict):
        store.apply([vs("a", w1=10)], expected_versions={vs("a").key: None})
    store.apply([vs("b")], expected_versions={vs("b").key: None})
    assert store.get("VirtualService", "default", "b") is not None


def test_delete(store):
    store.apply([vs("a"), dr("a")])
    change = store.delete("VirtualService", "default", "a")
    assert change.type is ChangeType.DELETED and change.revision == 3
    assert change.resource.metadata.resource_version == "3"
    assert store.get("VirtualService", "default", "a") is None
    assert store.delete("VirtualService", "default", "a") is None
    assert store.revision == 3
    with pytest.raises(VersionConflict):
        store.delete("DestinationRule", "default", "a", expected_version="1")
    assert store.delete("DestinationRule", "default", "a", expected_version="2") is not None


def test_dry_run_stores_nothing(store):
    changes = store.apply([vs("a")], dry_run=True)
    assert [c.type for c in changes] == [ChangeType.ADDED]
    assert store.revision == 0 and store.list() == []


def test_watch_delivers_every_change_in_order(store):
    seen = []
    unsubscribe = store.subscribe(seen.append)
    store.apply([vs("a"), dr("a")])
    store.apply([vs("a", w1=70)])
    store.apply([vs("a", w1=70)])  # no-op
    store.delete("DestinationRule", "default", "a")
    unsubscribe()
    store.apply([vs("z")])
    assert [(c.revision, c.type.value, c.key.kind) for c in seen] == [
        (1, "ADDED", "VirtualService"),
        (2, "ADDED", "DestinationRule"),
        (3, "MODIFIED", "VirtualService"),
        (4, "DELETED", "DestinationRule"),
    ]
    assert [c.revision for c in store.changes_since(2)] == [3, 4, 5]
    assert store.changes_since(5) == []


def test_subscribe_since_replays_then_follows(store):
    store.apply([vs("a"), vs("b"), vs("c")])
    seen = []
    store.subscribe(lambda c: seen.append(c.revision), since=1)
    store.apply([vs("d")])
    assert seen == [2, 3, 4]


def test_same_key_twice_in_a_batch_ends_as_the_last():
    store = MemoryStore()
    changes = store.apply([vs("a", w1=10), vs("a", w1=20)])
    assert [c.type for c in changes] == [ChangeType.ADDED, ChangeType.MODIFIED]
    assert store.get("VirtualService", "default", "a").spec.http[0].route[0].weight == 20


def test_changes_since_beyond_history_is_compacted():
    store = MemoryStore(history=3)
    for i in range(6):
        store.apply([vs(f"s{i}")])
    assert [c.revision for c in store.changes_since(3)] == [4, 5, 6]
    with pytest.raises(RevisionCompacted):
        store.changes_since(2)


def test_concurrent_writers_lose_no_update(store):
    """Read-modify-write with expected versions from 4 threads: every increment lands."""
    store.apply([vs("counter").with_meta(labels={"count": "0"})])
    conflicts = []

    def increment(times: int) -> None:
        done = 0
        while done < times:
            current = store.get("VirtualService", "default", "counter")
            n = int(current.metadata.labels["count"])
            updated = vs("counter").with_meta(labels={"count": str(n + 1)})
            try:
                store.apply(
                    [updated],
                    expected_versions={current.key: current.metadata.resource_version},
                )
                done += 1
            except VersionConflict:
                conflicts.append(1)

    threads = [threading.Thread(target=increment, args=(15,)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    final = store.get("VirtualService", "default", "counter")
    assert final.metadata.labels["count"] == "60"
    assert store.revision == 61
    versions = [c.resource.metadata.resource_version for c in store.changes_since(0)]
    assert versions == [str(i) for i in range(1, 62)]


def test_last_writer_without_versions_still_serialised(store):
    def writer(n: int) -> None:
        for i in range(10):
            store.apply([vs(f"w{n}-{i}")])

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(store.list()) == 40
    assert [c.revision for c in store.changes_since(0)] == list(range(1, 41))
