"""Rules for every kind: metadata, and kinds Ketch does not enforce yet."""

from __future__ import annotations

from ketch.model.resource import Resource
from ketch.model.validation.context import Ctx


def not_enforced(resource: Resource, ctx: Ctx) -> None:
    if not resource.info.enforced:
        ctx.warn("", f"{resource.kind} ({resource.api_version}) is accepted and stored, but Ketch does not enforce it yet")


RULES = {"*": [not_enforced]}
