"""The config store's vocabulary: changes, errors and the `ConfigStore` protocol."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Callable, Iterable, Mapping, Protocol, Sequence

if TYPE_CHECKING:  # the model is imported lazily so `ketch.store` stays cheap to import
    from ketch.model import Issue, Resource, ResourceKey


class ChangeType(str, Enum):
    ADDED = "ADDED"
    MODIFIED = "MODIFIED"
    DELETED = "DELETED"


@dataclass(frozen=True)
class Change:
    """One stored change. `resource` carries the resource version of this change (for
    DELETED: the object as it was, stamped with the deletion's revision)."""

    revision: int
    type: ChangeType
    resource: "Resource"

    @property
    def key(self) -> "ResourceKey":
        return self.resource.key


ChangeCallback = Callable[[Change], None]


class StoreError(Exception):
    """Base of the store's errors."""


class ApplyError(StoreError):
    """A batch was rejected; nothing was stored. `issues` lists every problem found."""

    def __init__(self, issues: Sequence["Issue"]) -> None:
        self.issues = tuple(issues)
        super().__init__("\n".join(str(i) for i in self.issues) or "apply rejected")


class VersionConflict(ApplyError):
    """Every document was valid, but an expected resource version was stale (HTTP 409)."""


class RevisionCompacted(StoreError):
    """`changes_since` asked for history the store no longer keeps; re-list instead."""

    def __init__(self, requested: int, oldest: int) -> None:
        self.requested = requested
        self.oldest = oldest
        super().__init__(
            f"revision {requested} is compacted; history starts after revision {oldest}"
        )


class StoreLocked(StoreError):
    """Another process holds the state directory."""


class ConfigStore(Protocol):
    """What the control plane serves from. Implementations: MemoryStore, FileStore.

    `expected_versions` maps a ResourceKey to the resource version the writer last read
    (None: the object must not exist yet); any mismatch rejects the whole batch."""

    @property
    def revision(self) -> int: ...

    def get(self, kind: str, namespace: str, name: str) -> "Resource | None": ...

    def list(self, kind: str | None = None, namespace: str | None = None) -> list["Resource"]: ...

    def apply(
        self,
        resources: Iterable["Resource"],
        *,
        expected_versions: Mapping["ResourceKey", str | None] | None = None,
        dry_run: bool = False,
    ) -> list[Change]: ...

    def delete(
        self, kind: str, namespace: str, name: str, *, expected_version: str | None = None
    ) -> Change | None: ...

    def changes_since(self, revision: int) -> list[Change]: ...

    def subscribe(
        self, callback: ChangeCallback, *, since: int | None = None
    ) -> Callable[[], None]: ...
