"""FileStore persistence: restart, torn journal writes, compaction, locking."""

from __future__ import annotations

import shutil

import pytest

from ketch.store import ChangeType, FileStore, StoreError, StoreLocked

from store_helpers import dr, vs


def snapshot_of(store):
    return [(r.key, r.metadata.resource_version, r.metadata.generation, r.spec) for r in store.list()]


def test_restart_sees_same_objects_versions_and_revision(tmp_path):
    with FileStore(tmp_path) as first:
        first.apply([vs("a"), dr("a"), vs("b", ns="prod")])
        first.apply([vs("a", w1=40)])
        first.delete("VirtualService", "prod", "b")
        before, revision = snapshot_of(first), first.revision
    with FileStore(tmp_path) as second:
        assert snapshot_of(second) == before
        assert second.revision == revision == 5
        assert second.get("VirtualService", "default", "a").spec.http[0].route[0].weight == 40
        assert [(c.revision, c.type) for c in second.changes_since(3)] == [
            (4, ChangeType.MODIFIED),
            (5, ChangeType.DELETED),
        ]
        # Revisions keep counting from where they were.
        (change,) = second.apply([vs("c")])
        assert change.revision == 6


def test_torn_last_record_is_dropped(tmp_path):
    with FileStore(tmp_path) as store:
        store.apply([vs("a")])
        store.apply([vs("b")])
    journal = tmp_path / "store" / "journal.log"
    data = journal.read_bytes()
    journal.write_bytes(data[:-7])  # crash in the middle of writing the second batch
    with FileStore(tmp_path) as store:
        assert [r.key.name for r in store.list()] == ["a"]
        assert store.revision == 1
        store.apply([vs("c")])
    with FileStore(tmp_path) as store:
        assert [r.key.name for r in store.list()] == ["a", "c"]


def test_corrupt_record_stops_replay(tmp_path):
    with FileStore(tmp_path) as store:
        store.apply([vs("a")])
        store.apply([vs("b")])
    journal = tmp_path / "store" / "journal.log"
    lines = journal.read_bytes().splitlines(keepends=True)
    journal.write_bytes(lines[0] + lines[1].replace(b'"b"', b'"x"'))  # CRC no longer matches
    with FileStore(tmp_path) as store:
        assert [r.key.name for r in store.list()] == ["a"]


def test_compaction_keeps_everything(tmp_path):
    with FileStore(tmp_path, compact_every=3) as store:
        for i in range(10):
            store.apply([vs(f"s{i}")])
        store.delete("VirtualService", "default", "s0")
        before = snapshot_of(store)
        assert (tmp_path / "store" / "snapshot.json").exists()
        assert len((tmp_path / "store" / "journal.log").read_bytes().splitlines()) < 3
    with FileStore(tmp_path) as store:
        assert snapshot_of(store) == before
        assert store.revision == 11


def test_crash_between_snapshot_and_journal_truncation(tmp_path):
    with FileStore(tmp_path) as store:
        store.apply([vs("a")])
        store.apply([vs("a", w1=30)])
        saved = tmp_path / "saved-journal"
        shutil.copy(tmp_path / "store" / "journal.log", saved)
        store.compact()
        before = snapshot_of(store)
    shutil.copy(saved, tmp_path / "store" / "journal.log")  # journal never got emptied
    with FileStore(tmp_path) as store:
        assert snapshot_of(store) == before
        assert store.revision == 2


def test_second_store_on_same_directory_is_refused(tmp_path):
    with FileStore(tmp_path):
        with pytest.raises(StoreLocked):
            FileStore(tmp_path)
    FileStore(tmp_path).close()  # free again after close


def test_closed_store_refuses_writes_and_shows_nothing(tmp_path):
    store = FileStore(tmp_path)
    store.close()
    with pytest.raises(StoreError):
        store.apply([vs("a")])
    assert store.list() == [] and store.revision == 0


def test_failed_journal_write_leaves_nothing_behind(tmp_path, monkeypatch):
    import ketch.store.file as file_mod

    real_fsync = file_mod.os.fsync
    with FileStore(tmp_path) as store:
        store.apply([vs("a")])
        failures = iter([OSError("disk full")])

        def flaky_fsync(fd):
            err = next(failures, None)
            if err is not None:
                raise err
            real_fsync(fd)

        monkeypatch.setattr(file_mod.os, "fsync", flaky_fsync)
        with pytest.raises(OSError):
            store.apply([vs("b")])
        assert [r.key.name for r in store.list()] == ["a"] and store.revision == 1
        store.apply([vs("c")])
    with FileStore(tmp_path) as store:
        assert [r.key.name for r in store.list()] == ["a", "c"]
        assert store.revision == 2
