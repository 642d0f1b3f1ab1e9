"""Service analyzer: port names that do not tell Istio the protocol (IST0118)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ketch.analyze.context import AnalysisContext, attr
from ketch.analyze.messages import Message

# protocol.Parse in Istio (case-insensitive); anything else is "Unsupported".
KNOWN_PROTOCOLS = frozenset({
    "tcp", "udp", "sctp", "grpc", "grpc-web", "http", "http_proxy", "http2", "https", "tls",
    "mongo", "redis", "mysql",
})
APP_PROTOCOL_ALIASES = {"kubernetes.io/h2c": "http2", "kubernetes.io/ws": "http", "kubernetes.io/wss": "https"}


def port_protocol(name: str, protocol: str, app_protocol: str) -> str | None:
    """Istio's ConvertProtocol: the protocol a Service port means, or None when it is unknown."""
    if protocol.upper() in ("UDP", "SCTP"):
        return protocol.lower()
    if app_protocol:
        name = app_protocol
        if name in APP_PROTOCOL_ALIASES:
            return APP_PROTOCOL_ALIASES[name]
    if name.lower().startswith("grpc-web"):
        return "grpc-web"
    prefix = name.split("-", 1)[0].lower()
    return prefix if prefix in KNOWN_PROTOCOLS else None


def _is_control_plane(service: Any) -> bool:
    labels = attr(service.metadata, "labels", {}) or {}
    return "istio" in labels or labels.get("release") == "istio"


def port_names(ctx: AnalysisContext) -> Iterator[Message]:
    for svc in ctx.of_kind("Service"):
        # ExternalName services get IST0150 in Istio instead; gateway/istiod Services are Istio's own.
        if _is_control_plane(svc) or attr(svc.spec, "type") == "ExternalName":
            continue
        for i, p in enumerate(attr(svc.spec, "ports", ())):
            name = attr(p, "name", "")
            if port_protocol(name, attr(p, "protocol", ""), attr(p, "app_protocol", "")) is None:
                number = attr(p, "port", 0)
                target = attr(p, "target_port")
                yield ctx.message("IST0118", svc, name, number, str(target if target is not None else number),
                                  path=("spec", "ports", i))
