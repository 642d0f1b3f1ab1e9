"""Kubernetes Gateway API kinds (gateway.networking.k8s.io), modelled loosely.

Ketch does not translate them yet; they load so a directory holding them validates. The
references other config points through (parentRefs, backendRefs, listeners) are typed; the
rest is kept as written.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from ketch.model.base import OpenSpec


class ParentReference(OpenSpec):
    group: str | None = None
    kind: str | None = None
    namespace: str | None = None
    name: str | None = None
    section_name: str | None = None
    port: int | None = None


class BackendRef(OpenSpec):
    group: str | None = None
    kind: str | None = None
    namespace: str | None = None
    name: str | None = None
    port: int | None = None
    weight: int | None = None


class RouteRule(OpenSpec):
    name: str | None = None
    matches: tuple[dict[str, Any], ...] = ()
    filters: tuple[dict[str, Any], ...] = ()
    backend_refs: tuple[BackendRef, ...] = ()


class RouteSpec(OpenSpec):
    """HTTPRoute, GRPCRoute, TCPRoute, TLSRoute, UDPRoute."""

    parent_refs: tuple[ParentReference, ...] = ()
    hostnames: tuple[str, ...] = ()
    rules: tuple[RouteRule, ...] = ()


class Listener(OpenSpec):
    name: str | None = None
    hostname: str | None = None
    port: int | None = None
    protocol: str | None = None
    tls: dict[str, Any] | None = None
    allowed_routes: dict[str, Any] | None = None


class GatewaySpec(OpenSpec):
    gateway_class_name: str | None = None
    listeners: tuple[Listener, ...] = ()
    addresses: tuple[dict[str, Any], ...] = ()


class GatewayClassSpec(OpenSpec):
    controller_name: str | None = None


class ReferenceGrantSpec(OpenSpec):
    from_: tuple[dict[str, Any], ...] = Field(default=(), alias="from")
    to: tuple[dict[str, Any], ...] = ()
