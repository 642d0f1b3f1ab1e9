"""VirtualService `HTTPMatchRequest` → Envoy `RouteMatch`, and the per-proxy filtering of
match conditions that Envoy cannot see (port, sourceLabels, sourceNamespace, gateways)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.type.matcher.v3 import regex_pb2, string_pb2

from ketch.controlplane.translate.util import attr, labels_match, seq


@dataclass(frozen=True)
class MatchContext:
    """What per-proxy match filtering needs to know about the proxy and listener."""

    port: int
    namespace: str
    labels: Mapping[str, str]
    gateways: frozenset[str]  # "mesh" for sidecars, "ns/name" of the router's Gateways

    def key(self) -> tuple:
        return (self.port, self.namespace, tuple(sorted(self.labels.items())), self.gateways)


def gateway_names(vs: Any) -> frozenset[str]:
    """A VirtualService's gateways as `ns/name` (or `mesh`); none given means mesh."""
    ns = vs.metadata.namespace or "default"
    names = seq(attr(vs.spec, "gateways")) or ("mesh",)
    return frozenset(_qualify(str(g), ns) for g in names)


def _qualify(gw: str, ns: str) -> str:
    return gw if gw == "mesh" or "/" in gw else f"{ns}/{gw}"


def applies(match: Any, ctx: MatchContext, vs_namespace: str) -> bool:
    """Whether a match entry can apply on this proxy and listener at all."""
    port = attr(match, "port")
    if port and int(port) != ctx.port:
        return False
    src = attr(match, "source_labels")
    if src and not labels_match(src, ctx.labels):
        return False
    src_ns = attr(match, "source_namespace")
    if src_ns and src_ns != ctx.namespace:
        return False
    gws = seq(attr(match, "gateways"))
    if gws and not any(_qualify(str(g), vs_namespace) in ctx.gateways for g in gws):
        return False
    return True


def string_matcher(sm: Any) -> string_pb2.StringMatcher | None:
    if attr(sm, "exact") is not None:
        return string_pb2.StringMatcher(exact=sm.exact)
    if attr(sm, "prefix") is not None:
        return string_pb2.StringMatcher(prefix=sm.prefix)
    if attr(sm, "regex") is not None:
        return string_pb2.StringMatcher(safe_regex=regex(sm.regex))
    return None


def regex(pattern: str) -> regex_pb2.RegexMatcher:
    return regex_pb2.RegexMatcher(regex=pattern)


def header_matcher(name: str, sm: Any, invert: bool = False) -> rc.HeaderMatcher:
    m = string_matcher(sm)
    hm = rc.HeaderMatcher(name=name, invert_match=invert)
    if m is None or (attr(sm, "regex") == "*"):
        hm.present_match = True  # an empty match, as Istio reads it, asks for presence
    else:
        hm.string_match.CopyFrom(m)
    return hm


def route_match(match: Any | None) -> rc.RouteMatch:
    out = rc.RouteMatch()
    uri = attr(match, "uri")
    if attr(uri, "exact") is not None:
        out.path = uri.exact
    elif attr(uri, "prefix") is not None:
        out.prefix = uri.prefix
    elif attr(uri, "regex") is not None:
        out.safe_regex.CopyFrom(regex(uri.regex))
    else:
        out.prefix = "/"
    if attr(match, "ignore_uri_case"):
        out.case_sensitive.value = False
    for name, sm in sorted((attr(match, "headers") or {}).items()):
        out.headers.append(header_matcher(str(name).lower(), sm))
    for name, sm in sorted((attr(match, "without_headers") or {}).items()):
        out.headers.append(header_matcher(str(name).lower(), sm, invert=True))
    for pseudo, field in ((":authority", "authority"), (":method", "method"),
                          (":scheme", "scheme")):
        sm = attr(match, field)
        if sm is not None and string_matcher(sm) is not None:
            out.headers.append(header_matcher(pseudo, sm))
    for name, sm in sorted((attr(match, "query_params") or {}).items()):
        qm = rc.QueryParameterMatcher(name=str(name))
        m = string_matcher(sm)
        if m is None or (attr(sm, "exact") == ""):
            qm.present_match = True
        else:
            qm.string_match.CopyFrom(m)
        out.query_parameters.append(qm)
    return out


def merge_delegate(root: Any | None, child: Any | None) -> Any | None:
    """Delegate rules match only within the root rule's match: the child's conditions
    are added to the root's (the child's uri must narrow the root's, as Istio requires)."""
    if root is None:
        return child
    if child is None:
        return root
    merged: dict[str, Any] = {}
    for field in ("uri", "scheme", "method", "authority", "port", "source_namespace",
                  "ignore_uri_case", "name"):
        merged[field] = attr(child, field) if attr(child, field) is not None else attr(root, field)
    for field in ("headers", "without_headers", "query_params", "source_labels"):
        merged[field] = {**(attr(root, field) or {}), **(attr(child, field) or {})}
    merged["gateways"] = seq(attr(child, "gateways")) or seq(attr(root, "gateways"))
    return merged
