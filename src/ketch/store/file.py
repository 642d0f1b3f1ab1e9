"""FileStore: the MemoryStore persisted under a state directory, crash-safely.

Layout under `STATE_DIR/store/`:
- `journal.log` — one line per committed batch: `CRC32HEX JSON\\n`, appended and fsynced
  before the batch becomes visible. A batch is one line, so it is all there or (torn write,
  bad CRC) not there at all: replay stops at the first bad line and cuts it off.
- `snapshot.json` — every object at one revision; written to a temp file, fsynced, renamed
  over the old one (and the directory fsynced), then the journal is emptied the same way.
  A crash between the two steps is harmless: replay skips journal lines at or below the
  snapshot's revision.
- `lock` — flock'd while a FileStore is open, so two control planes cannot share a state
  directory by accident.

After a restart, `changes_since` reaches back to the last snapshot (older revisions raise
RevisionCompacted, as etcd does after compaction: watchers then re-list).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import time
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from ketch.store.base import Change, ChangeType, StoreError, StoreLocked
from ketch.store.memory import MemoryStore, stamp

if TYPE_CHECKING:
    from ketch.model import Issue, Resource

log = logging.getLogger(__name__)


class FileStore(MemoryStore):
    def __init__(
        self,
        state_dir: str | os.PathLike[str],
        *,
        clock: Callable[[], float] = time.time,
        history: int = 10_000,
        compact_every: int = 1000,
        validator: "Callable[[Resource], list[Issue]] | None" = None,
    ) -> None:
        super().__init__(clock=clock, history=history, validator=validator)
        self.dir = Path(state_dir) / "store"
        self.dir.mkdir(parents=True, exist_ok=True)
        self._compact_every = compact_every
        self._lock_file = open(self.dir / "lock", "a+")
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock_file.close()
            raise StoreLocked(f"{self.dir} is in use by another Ketch control plane") from None
        self._journal_path = self.dir / "journal.log"
        self._snapshot_path = self.dir / "snapshot.json"
        self._journal_lines = 0
        self._compact_pending = False
        self._recover()
        self._journal = open(self._journal_path, "ab")

    def close(self) -> None:
        with self._lock:
            if self._journal.closed:
                return
            self._journal.close()
            fcntl.flock(self._lock_file, fcntl.LOCK_UN)
            self._lock_file.close()

    def __enter__(self) -> "FileStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def compact(self) -> None:
        """Write a snapshot of every object and empty the journal."""
        with self._lock:
            snapshot = {
                "revision": self._revision,
                "objects": [_encode(r) for r in self._objects.values()],
            }
            _atomic_write(self._snapshot_path, json.dumps(snapshot, sort_keys=True).encode())
            self._journal.close()
            try:
                _atomic_write(self._journal_path, b"")
                self._journal_lines = 0
            finally:  # emptied or not, keep appending to whatever journal is there
                self._journal = open(self._journal_path, "ab")

    # -- persistence hook ------------------------------------------------------------------

    def _persist(self, changes: list[Change]) -> None:
        if self._journal.closed:
            raise StoreError("the store is closed")
        record = {
            "revision": changes[-1].revision,
            "changes": [
                {"revision": c.revision, "type": c.type.value, "object": _encode(c.resource)}
                for c in changes
            ],
        }
        payload = json.dumps(record, sort_keys=True, separators=(",", ":")).encode()
        line = b"%08x %s\n" % (zlib.crc32(payload), payload)
        offset = self._journal.tell()
        try:
            self._journal.write(line)
            self._journal.flush()
            os.fsync(self._journal.fileno())
        except OSError:
            # Leave no half-written line behind: a later batch appended after it would be
            # cut off with it at recovery. If even that fails, refuse further writes.
            try:
                self._journal.truncate(offset)
                self._journal.seek(offset)
                os.fsync(self._journal.fileno())
            except OSError:
                self._journal.close()
            raise
        self._journal_lines += 1
        if self._journal_lines >= self._compact_every:
            # The batch is durable in the journal; compacting now (before it is visible in
            # memory) would miss it, so ask for a compaction right after the commit.
            self._compact_pending = True

    def _commit(self, changes: list[Change]) -> None:
        self._compact_pending = False
        super()._commit(changes)
        if self._compact_pending:
            try:
                self.compact()
            except OSError:  # the batch is durable in the journal; compaction can wait
                log.exception("store compaction failed; will retry after the next batch")

    # -- recovery --------------------------------------------------------------------------

    def _recover(self) -> None:
        if self._snapshot_path.exists():
            snapshot = json.loads(self._snapshot_path.read_text())
            self._revision = int(snapshot["revision"])
            for resource in _decode_many(snapshot["objects"], str(self._snapshot_path)):
                self._objects[resource.key] = resource
        if not self._journal_path.exists():
            return
        good_bytes = 0
        with open(self._journal_path, "rb") as f:
            for raw in f:
                record = _parse_line(raw)
                if record is None:
                    log.warning("store journal: torn record after byte %d dropped", good_bytes)
                    break
                good_bytes += len(raw)
                self._journal_lines += 1
                if record["revision"] <= self._revision:
                    continue  # already in the snapshot
                self._replay(record)
        if good_bytes != self._journal_path.stat().st_size:
            with open(self._journal_path, "r+b") as f:
                f.truncate(good_bytes)
                os.fsync(f.fileno())

    def _replay(self, record: dict[str, Any]) -> None:
        for entry in record["changes"]:
            (resource,) = _decode_many([entry["object"]], str(self._journal_path)) or (None,)
            if resource is None:
                continue
            change = Change(int(entry["revision"]), ChangeType(entry["type"]), resource)
            if change.type is ChangeType.DELETED:
                self._objects.pop(change.key, None)
            else:
                self._objects[change.key] = resource
            self._revision = change.revision
            self._history.append(change)
        self._revision = max(self._revision, int(record["revision"]))


def _encode(resource: "Resource") -> dict[str, Any]:
    m = resource.metadata
    return {
        "object": resource.to_dict(),
        "meta": {
            "resourceVersion": m.resource_version,
            "generation": m.generation,
            "creationTimestamp": m.creation_timestamp,
        },
    }


def _decode_many(entries: list[dict[str, Any]], file: str) -> list["Resource"]:
    """Load stored objects back into Resources. They were validated when applied; not
    validating again keeps them even if a newer Ketch is stricter (analyze will say so)."""
    from ketch.model import load_documents

    result = load_documents([e["object"] for e in entries], file, validate=False)
    for issue in result.errors:
        if str(getattr(issue, "level", "Error")) == "Error":
            log.error("stored object no longer loads, dropped: %s", issue)
    meta = {_entry_key(e): e["meta"] for e in entries}
    out = []
    for resource in result.resources:
        m = meta.get((resource.key.kind, resource.key.namespace or "", resource.key.name))
        if m is not None:
            resource = stamp(
                resource,
                version=m["resourceVersion"],
                generation=m["generation"],
                created=m["creationTimestamp"],
            )
        out.append(resource)
    return out


def _entry_key(entry: dict[str, Any]) -> tuple[str, str, str]:
    obj = entry["object"]
    meta = obj.get("metadata") or {}
    return (obj.get("kind", ""), meta.get("namespace") or "", meta.get("name", ""))


def _parse_line(raw: bytes) -> dict[str, Any] | None:
    if not raw.endswith(b"\n"):
        return None
    crc, _, payload = raw.rstrip(b"\n").partition(b" ")
    try:
        if int(crc, 16) != zlib.crc32(payload):
            return None
        return json.loads(payload)
    except ValueError:
        return None


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
