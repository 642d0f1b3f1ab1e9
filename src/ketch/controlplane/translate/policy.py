"""DestinationRule traffic policy: pick the settings for a port and subset.

Istio's precedence: a subset's policy overrides the rule's top-level policy, and inside each
a `portLevelSettings` entry for the port overrides the policy it sits in. Each field group
(connectionPool, loadBalancer, outlierDetection, tls) is replaced whole.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ketch.controlplane.translate.util import attr, seq

GROUPS = ("connection_pool", "load_balancer", "outlier_detection", "tls")


@dataclass(frozen=True)
class Policy:
    connection_pool: Any = None
    load_balancer: Any = None
    outlier_detection: Any = None
    tls: Any = None


def _layer(policy: Any, port: int, base: dict[str, Any]) -> dict[str, Any]:
    if policy is None:
        return base
    out = dict(base)
    for group in GROUPS:
        value = attr(policy, group)
        if value is not None:
            out[group] = value
    for pls in seq(attr(policy, "port_level_settings")):
        if attr(pls, "port", "number") == port:
            for group in GROUPS:
                value = attr(pls, group)
                if value is not None:
                    out[group] = value
    return out


def subset_of(dr: Any, name: str | None) -> Any | None:
    if dr is None or not name:
        return None
    for s in seq(attr(dr.spec, "subsets")):
        if s.name == name:
            return s
    return None


def policy_for(dr: Any, port: int, subset: str | None = None) -> Policy:
    if dr is None:
        return Policy()
    merged = _layer(attr(dr.spec, "traffic_policy"), port, {})
    sub = subset_of(dr, subset)
    if sub is not None:
        merged = _layer(attr(sub, "traffic_policy"), port, merged)
    return Policy(**merged)


def subset_names(dr: Any) -> tuple[str, ...]:
    if dr is None:
        return ()
    return tuple(s.name for s in seq(attr(dr.spec, "subsets")))


def subset_labels(dr: Any, name: str | None) -> dict[str, str]:
    sub = subset_of(dr, name)
    return dict(attr(sub, "labels") or {}) if sub is not None else {}
