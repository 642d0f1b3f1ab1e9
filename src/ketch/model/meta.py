"""Object metadata, resource identity, where a resource came from, and the Issue type."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

from ketch.model.base import Spec


class ObjectMeta(Spec):
    name: str
    namespace: str | None = None
    labels: dict[str, str] = {}
    annotations: dict[str, str] = {}
    resource_version: str | None = None
    generation: int | None = None
    creation_timestamp: str | None = None
    uid: str | None = None
    generate_name: str | None = None
    self_link: str | None = None
    deletion_timestamp: str | None = None
    deletion_grace_period_seconds: int | None = None
    owner_references: tuple[dict[str, Any], ...] = ()
    finalizers: tuple[str, ...] = ()
    managed_fields: tuple[dict[str, Any], ...] = ()


class ResourceKey(NamedTuple):
    """Identity of a resource in the store. `kind` is the KINDS key (see kinds.kind_id)."""

    kind: str
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}" if self.namespace else f"{self.kind} {self.name}"


@dataclass(frozen=True, slots=True)
class Origin:
    file: str
    line: int
    document: int = 0

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


Level = Literal["Error", "Warning", "Info"]


@dataclass(frozen=True, slots=True)
class Issue:
    """One problem found in a document: `FILE:LINE: Kind ns/name: FIELD.PATH: reason`."""

    file: str
    line: int
    kind: str
    namespace: str
    name: str
    path: str
    reason: str
    level: Level = "Error"

    def __str__(self) -> str:
        parts = [f"{self.file}:{self.line}"]
        if self.kind:
            ident = f"{self.namespace}/{self.name}" if self.namespace else self.name
            parts.append(f"{self.kind} {ident}".rstrip())
        if self.path:
            parts.append(self.path)
        parts.append(self.reason)
        return ": ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "line": self.line,
            "kind": self.kind,
            "namespace": self.namespace,
            "name": self.name,
            "path": self.path,
            "reason": self.reason,
            "level": self.level,
            "message": str(self),
        }
