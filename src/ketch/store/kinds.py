"""Kind names as users type them: `virtualservice`, `virtualservices`, `vs`,
`virtualservices.networking.istio.io`, and the kubectl-style display name
`virtualservice.networking.istio.io`. Shared by the REST API and the CLI."""

from __future__ import annotations

from typing import TYPE_CHECKING, Mapping

if TYPE_CHECKING:
    from ketch.model.kinds import KindInfo

# kubectl / istioctl short names
SHORT_NAMES: dict[str, str] = {
    "vs": "VirtualService",
    "dr": "DestinationRule",
    "gw": "Gateway",
    "se": "ServiceEntry",
    "we": "WorkloadEntry",
    "wg": "WorkloadGroup",
    "pa": "PeerAuthentication",
    "ra": "RequestAuthentication",
    "ap": "AuthorizationPolicy",
    "ef": "EnvoyFilter",
    "wp": "WasmPlugin",
    "pc": "ProxyConfig",
    "svc": "Service",
    "sa": "ServiceAccount",
    "ns": "Namespace",
    "deploy": "Deployment",
    "po": "Pod",
}


def plural(kind: str) -> str:
    low = kind.lower()
    if low.endswith("y") and low[-2:-1] not in ("a", "e", "i", "o", "u"):
        return low[:-1] + "ies"
    if low.endswith(("s", "x", "ch", "sh")):
        return low + "es"
    return low + "s"


def resolve_kind(name: str, kinds: "Mapping[str, KindInfo] | None" = None) -> str | None:
    """The KINDS key a user means by `name`, or None when there is no such kind.

    `gateway` is Istio's Gateway; `gateways.gateway.networking.k8s.io` the Gateway API's."""
    if kinds is None:
        from ketch.model.kinds import KINDS

        kinds = KINDS
    if name in kinds:
        return name
    resource, _, group = name.lower().partition(".")
    resource = SHORT_NAMES.get(resource, resource).lower()
    candidates = [
        key
        for key, info in kinds.items()
        if resource in (info.kind.lower(), plural(info.kind))
        and (not group or info.group == group)
    ]
    # Without a group, the unqualified key (Istio's, Kubernetes') wins over a qualified one.
    candidates.sort(key=lambda key: "." in key)
    return candidates[0] if candidates else None


def display_name(kind: str, kinds: "Mapping[str, KindInfo] | None" = None) -> str:
    """`virtualservice.networking.istio.io`, `service`, `deployment.apps` (kubectl's style)."""
    if kinds is None:
        from ketch.model.kinds import KINDS

        kinds = KINDS
    info = kinds.get(kind)
    if info is None:
        return kind.lower()
    return f"{info.kind.lower()}.{info.group}" if info.group else info.kind.lower()


def plural_name(kind: str, kinds: "Mapping[str, KindInfo] | None" = None) -> str:
    """`virtualservices.networking.istio.io`, `services` (kubectl's NotFound wording)."""
    display = display_name(kind, kinds)
    _, _, group = display.partition(".")
    info_kind = display.split(".", 1)[0]
    return f"{plural(info_kind)}.{group}" if group else plural(info_kind)
