"""EnvoyFilter analyzer: patch operations Envoy ignores (IST0152-IST0154) and relative
operations without a priority (IST0151, IST0155 when a proxyVersion match is involved)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ketch.analyze.context import AnalysisContext, attr
from ketch.analyze.messages import Message

ROUTE_TARGETS = ("ROUTE_CONFIGURATION", "HTTP_ROUTE")
FILTER_TARGETS = ("NETWORK_FILTER", "HTTP_FILTER")
RELATIVE = ("INSERT_BEFORE", "INSERT_AFTER", "MERGE")


def _instance_name(patch: Any) -> str:
    """The filter a patch is about: its value's `name`, else the listener filter it matches."""
    value = attr(attr(patch, "patch"), "value")
    if not value:
        return ""
    if isinstance(value, dict) and value.get("name") is not None:
        return str(value["name"])
    listener = attr(attr(patch, "match"), "listener")
    return attr(attr(attr(listener, "filter_chain"), "filter"), "name", "")


def patches(ctx: AnalysisContext) -> Iterator[Message]:
    # Names of filters patched under a proxyVersion match, carried across EnvoyFilters in order,
    # as Istio does: a later relative patch of such a filter gets the upgrade warning.
    versioned: list[str] = []
    filters = sorted(ctx.of_kind("EnvoyFilter"), key=lambda r: (r.metadata.namespace, r.metadata.name))
    for ef in filters:
        priority = attr(ef.spec, "priority", 0)

        def relative(name: str, at: tuple, ef: Any = ef, priority: int = priority) -> Iterator[Message]:
            if priority == 0:
                yield ctx.message("IST0155" if name in versioned else "IST0151", ef, path=at)

        for index, cp in enumerate(attr(ef.spec, "config_patches", ())):
            at = ("spec", "configPatches", index)
            patch = attr(cp, "patch")
            if patch is None:
                break
            name = _instance_name(cp)
            op, apply_to = attr(patch, "operation", ""), attr(cp, "apply_to", "")
            if op == "ADD":
                if apply_to in ROUTE_TARGETS:
                    yield ctx.message("IST0153", ef, path=at)
            elif op == "REMOVE":
                if apply_to in ROUTE_TARGETS:
                    yield ctx.message("IST0154", ef, path=at)
                else:
                    yield from relative(name, at)
            elif op == "REPLACE":
                if apply_to not in FILTER_TARGETS:
                    yield ctx.message("IST0152", ef, path=at)
                else:
                    yield from relative(name, at)
            elif op in RELATIVE:
                yield from relative(name, at)
            if attr(attr(attr(cp, "match"), "proxy"), "proxy_version"):
                versioned.append(name)
