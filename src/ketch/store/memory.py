"""MemoryStore: the store's logic — validation, optimistic concurrency, revisions, watches.

FileStore adds persistence through one hook, `_persist(changes)`, called under the lock
before a batch becomes visible; if it raises, the batch is not applied.

Revisions work as in etcd/Kubernetes: one counter for the whole store, bumped once per
stored change; an object's resource version is the revision of its last change, so
resource versions only ever increase. Re-applying an identical object stores nothing.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Callable, Iterable, Mapping

from ketch.store.base import (
    ApplyError,
    Change,
    ChangeCallback,
    ChangeType,
    RevisionCompacted,
    VersionConflict,
)

if TYPE_CHECKING:
    from ketch.model import Issue, Resource, ResourceKey

log = logging.getLogger(__name__)


def rfc3339(epoch_seconds: float) -> str:
    return datetime.fromtimestamp(int(epoch_seconds), tz=timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )


def stamp(resource: "Resource", *, version: str, generation: int, created: str) -> "Resource":
    """The resource with the store's metadata (resourceVersion, generation, creation time)."""
    return resource.with_meta(
        resource_version=version, generation=generation, creation_timestamp=created
    )


def _same_content(current: "Resource", incoming: "Resource") -> bool:
    m = current.metadata
    probe = stamp(
        incoming,
        version=m.resource_version,
        generation=m.generation,
        created=m.creation_timestamp,
    )
    return probe == current


class MemoryStore:
    """A ConfigStore held in memory; `history` bounds how far back `changes_since` reaches.

    `validator` defaults to the model's `validate` (Istio's webhook rules)."""

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.time,
        history: int = 10_000,
        validator: "Callable[[Resource], list[Issue]] | None" = None,
    ) -> None:
        self._clock = clock
        self._validator = validator
        self._lock = threading.RLock()
        self._objects: dict["ResourceKey", "Resource"] = {}
        self._revision = 0
        self._history: deque[Change] = deque(maxlen=history)
        self._subscribers: list[ChangeCallback] = []

    def __repr__(self) -> str:
        with self._lock:
            return (
                f"<{type(self).__name__} revision={self._revision} "
                f"objects={len(self._objects)} history={len(self._history)}>"
            )

    # -- reading ---------------------------------------------------------------------------

    @property
    def revision(self) -> int:
        with self._lock:
            return self._revision

    def get(self, kind: str, namespace: str, name: str) -> "Resource | None":
        with self._lock:
            return self._objects.get(_key(kind, namespace, name))

    def list(self, kind: str | None = None, namespace: str | None = None) -> list["Resource"]:
        with self._lock:
            items = [
                r
                for k, r in self._objects.items()
                if (kind is None or k.kind == kind) and (namespace is None or k.namespace == namespace)
            ]
        return sorted(items, key=lambda r: _sort_key(r.key))

    def changes_since(self, revision: int) -> list[Change]:
        """Every change after `revision`, oldest first."""
        with self._lock:
            if revision >= self._revision:
                return []
            oldest = self._history[0].revision - 1 if self._history else self._revision
            if revision < oldest:
                raise RevisionCompacted(revision, oldest)
            return [c for c in self._history if c.revision > revision]

    # -- writing ---------------------------------------------------------------------------

    def apply(
        self,
        resources: Iterable["Resource"],
        *,
        expected_versions: Mapping["ResourceKey", str | None] | None = None,
        dry_run: bool = False,
    ) -> list[Change]:
        """Store a batch atomically: all valid and current, or ApplyError and nothing stored.

        Documents apply in order, so a key appearing twice ends as its last version."""
        validate = self._validator
        if validate is None:
            from ketch.model import validate

        batch = list(resources)
        issues = [i for r in batch for i in validate(r) if _is_error(i)]
        if issues:
            raise ApplyError(issues)
        with self._lock:
            conflicts = self._conflicts(batch, expected_versions or {})
            if conflicts:
                raise VersionConflict(conflicts)
            changes = self._plan(batch)
            if not dry_run and changes:
                self._commit(changes)
            return changes

    def delete(
        self, kind: str, namespace: str, name: str, *, expected_version: str | None = None
    ) -> Change | None:
        key = _key(kind, namespace, name)
        with self._lock:
            current = self._objects.get(key)
            if current is None:
                return None
            if expected_version is not None and str(expected_version) != str(
                current.metadata.resource_version
            ):
                raise VersionConflict([_conflict_issue(current, expected_version, current)])
            revision = self._revision + 1
            gone = stamp(
                current,
                version=str(revision),
                generation=current.metadata.generation,
                created=current.metadata.creation_timestamp,
            )
            change = Change(revision, ChangeType.DELETED, gone)
            self._commit([change])
            return change

    def subscribe(
        self, callback: ChangeCallback, *, since: int | None = None
    ) -> Callable[[], None]:
        """Call `callback(change)` for every future change, in order, in the writer's thread.

        With `since`, first replay the changes after that revision (atomically with the
        subscription, so nothing is missed or seen twice)."""
        with self._lock:
            if since is not None:
                for change in self.changes_since(since):
                    callback(change)
            self._subscribers.append(callback)

        def unsubscribe() -> None:
            with self._lock:
                if callback in self._subscribers:
                    self._subscribers.remove(callback)

        return unsubscribe

    # -- internals -------------------------------------------------------------------------

    def _conflicts(
        self, batch: list["Resource"], expected: Mapping["ResourceKey", str | None]
    ) -> list["Issue"]:
        found = []
        by_key = {r.key: r for r in batch}
        for key, version in expected.items():
            current = self._objects.get(key)
            have = None if current is None else str(current.metadata.resource_version)
            if (None if version is None else str(version)) != have:
                found.append(_conflict_issue(by_key.get(key) or current, version, current, key))
        return found

    def _plan(self, batch: list["Resource"]) -> list[Change]:
        created = rfc3339(self._clock())
        revision = self._revision
        working: dict["ResourceKey", "Resource"] = {}
        changes: list[Change] = []
        for incoming in batch:
            key = incoming.key
            current = working.get(key) or self._objects.get(key)
            if current is None:
                revision += 1
                stored = stamp(incoming, version=str(revision), generation=1, created=created)
                changes.append(Change(revision, ChangeType.ADDED, stored))
            elif _same_content(current, incoming):
                continue
            else:
                revision += 1
                generation = current.metadata.generation or 1
                if incoming.spec != current.spec:
                    generation += 1  # as in Kubernetes: generation counts spec changes
                stored = stamp(
                    incoming,
                    version=str(revision),
                    generation=generation,
                    created=current.metadata.creation_timestamp,
                )
                changes.append(Change(revision, ChangeType.MODIFIED, stored))
            working[key] = stored
        return changes

    def _commit(self, changes: list[Change]) -> None:
        self._persist(changes)
        for change in changes:
            if change.type is ChangeType.DELETED:
                self._objects.pop(change.key, None)
            else:
                self._objects[change.key] = change.resource
            self._revision = change.revision
            self._history.append(change)
        for change in changes:
            for callback in list(self._subscribers):
                try:
                    callback(change)
                except Exception:  # a broken watcher must not break writers or others
                    log.exception("config store subscriber failed")

    def _persist(self, changes: list[Change]) -> None:
        """Make `changes` durable before they become visible (FileStore)."""


def _key(kind: str, namespace: str, name: str) -> "ResourceKey":
    from ketch.model import ResourceKey

    return ResourceKey(kind, namespace, name)


def _sort_key(key: "ResourceKey") -> tuple[str, str, str]:
    return (key.kind, key.namespace or "", key.name)


def _is_error(issue: "Issue") -> bool:
    return str(getattr(issue, "level", "Error")) == "Error"


def _conflict_issue(
    resource: "Resource | None",
    expected: str | None,
    current: "Resource | None",
    key: "ResourceKey | None" = None,
) -> "Issue":
    from ketch.model import Issue

    key = key or resource.key  # type: ignore[union-attr]
    origin = getattr(resource, "origin", None)
    have = "absent" if current is None else f"at {current.metadata.resource_version}"
    want = "absent" if expected is None else f"at {expected}"
    return Issue(
        file=getattr(origin, "file", "") or "",
        line=getattr(origin, "line", 0) or 0,
        kind=key.kind,
        namespace=key.namespace or "",
        name=key.name,
        path="metadata.resourceVersion",
        reason=f"conflict: the object has been modified (expected {want}, store has it {have})",
    )
