"""Collects the Issues of one resource."""

from __future__ import annotations

from ketch.model.meta import Issue, Level
from ketch.model.resource import Resource
from ketch.model.validation.paths import Path


class Ctx:
    def __init__(self, resource: Resource) -> None:
        self.resource = resource
        self.issues: list[Issue] = []
        origin = resource.origin
        self._file = origin.file if origin else ""
        self._line = origin.line if origin else 0

    def error(self, path: Path | str, reason: str) -> None:
        self.add(path, reason, "Error")

    def warn(self, path: Path | str, reason: str) -> None:
        self.add(path, reason, "Warning")

    def add(self, path: Path | str, reason: str, level: Level) -> None:
        r = self.resource
        self.issues.append(Issue(self._file, self._line, r.kind, r.namespace, r.name, str(path), reason, level))
