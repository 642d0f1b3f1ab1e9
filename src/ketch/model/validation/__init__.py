"""Istio's validation rules (what istiod's validating webhook rejects), per kind.

`validate(resource)` returns Error Issues; `warnings(resource)` returns Warning Issues that
never block (e.g. kinds Ketch stores but does not enforce yet). The Issues carry the field
path; the loader adds file and line.
"""

from __future__ import annotations

from ketch.model.meta import Issue
from ketch.model.resource import Resource


def validate(resource: Resource) -> list[Issue]:
    """Errors Istio's webhook would reject `resource` for."""
    from ketch.model.validation.registry import run

    return [i for i in run(resource) if i.level == "Error"]


def warnings(resource: Resource) -> list[Issue]:
    """Warnings: accepted, but something the user should know (level "Warning")."""
    from ketch.model.validation.registry import run

    return [i for i in run(resource) if i.level != "Error"]


def validate_all(resource: Resource) -> list[Issue]:
    from ketch.model.validation.registry import run

    return run(resource)


__all__ = ["validate", "warnings", "validate_all"]
