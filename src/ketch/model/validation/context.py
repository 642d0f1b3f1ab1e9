"""Collects the Issues of one resource, with small helpers for common checks."""

from __future__ import annotations

from collections.abc import Mapping

from ketch.model.meta import Issue, Level
from ketch.model.resource import Resource
from ketch.model.validation import checks
from ketch.model.validation.paths import Path


class Ctx:
    def __init__(self, resource: Resource) -> None:
        self.resource = resource
        self.issues: list[Issue] = []
        origin = resource.origin
        self._file = origin.file if origin else ""
        self._line = origin.line if origin else 0

    @property
    def namespace(self) -> str:
        return self.resource.namespace

    def error(self, path: Path | str, reason: str) -> None:
        self.add(path, reason, "Error")

    def warn(self, path: Path | str, reason: str) -> None:
        self.add(path, reason, "Warning")

    def add(self, path: Path | str, reason: str, level: Level) -> None:
        r = self.resource
        self.issues.append(Issue(self._file, self._line, r.kind, r.namespace, r.name, str(path), reason, level))

    def check(self, path: Path | str, reason: str | None) -> None:
        """Record `reason` as an error at `path`, when there is one."""
        if reason:
            self.error(path, reason)

    def labels(self, path: Path, labels: Mapping[str, str]) -> None:
        for key, value in labels.items():
            self.check(path.key(key), checks.label_key(key))
            self.check(path.key(key), checks.label_value(value))

    def duration(self, path: Path, value: str | None) -> None:
        if value is not None:
            self.check(path, checks.duration(value))

    def port(self, path: Path, number: int | None) -> None:
        self.check(path, checks.port(number))
