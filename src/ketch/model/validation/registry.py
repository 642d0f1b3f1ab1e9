"""Dispatch of validation rules by kind."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

from ketch.model.meta import Issue
from ketch.model.resource import Resource
from ketch.model.validation.context import Ctx

Rule = Callable[[Resource, Ctx], None]


@cache
def _rules() -> dict[str, list[Rule]]:
    from ketch.model.validation import (
        common_rules,
        destinationrule,
        kube,
        networking,
        security,
        telemetry,
        virtualservice,
    )

    table: dict[str, list[Rule]] = {}
    for module in (common_rules, virtualservice, destinationrule, networking, security, telemetry, kube):
        for kind, rules in module.RULES.items():
            table.setdefault(kind, []).extend(rules)
    return table


def run(resource: Resource) -> list[Issue]:
    table = _rules()  # built on first use, not at import
    ctx = Ctx(resource)
    for rule in table.get("*", []) + table.get(resource.kind_id, []):
        rule(resource, ctx)
    return ctx.issues
