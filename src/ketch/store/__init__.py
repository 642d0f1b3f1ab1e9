"""Ketch's config store: validated, versioned, watchable Istio and Kubernetes-shaped config.

`MemoryStore()` keeps it in memory; `FileStore(state_dir)` persists it crash-safely under a
state directory. Both implement `ConfigStore`; see README.md beside this file."""

from ketch.store.base import (
    ApplyError,
    Change,
    ChangeCallback,
    ChangeType,
    ConfigStore,
    RevisionCompacted,
    StoreError,
    StoreLocked,
    VersionConflict,
)
from ketch.store.file import FileStore
from ketch.store.memory import MemoryStore

__all__ = [
    "ApplyError",
    "Change",
    "ChangeCallback",
    "ChangeType",
    "ConfigStore",
    "FileStore",
    "MemoryStore",
    "RevisionCompacted",
    "StoreError",
    "StoreLocked",
    "VersionConflict",
]
