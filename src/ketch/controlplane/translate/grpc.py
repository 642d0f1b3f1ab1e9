"""Proxyless gRPC (`GENERATOR: grpc`): what a stock gRPC xDS client asks for and accepts.

A client dialling `xds:///echo:7070` asks LDS for `echo:7070` and expects a listener of
exactly that name whose `api_listener` is an HTTP connection manager with RDS over ADS and
the router as last filter. As Istio's grpcgen, the route configuration is named after the
default cluster (`outbound|7070||echo.ns.svc.cluster.local`) and carries the
VirtualService rules; clusters are EDS over ADS.
"""

from __future__ import annotations

from typing import Collection

from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_pb2

from ketch.controlplane.translate import listener as lds
from ketch.controlplane.translate import route as rds
from ketch.controlplane.translate.scope import ProxyScope
from ketch.controlplane.translate.service import Service, ServicePort
from ketch.controlplane.translate.util import DOMAIN_SUFFIX, cluster_name


def resolve_name(host: str, namespace: str) -> str:
    """`echo` / `echo.ns` / `echo.ns.svc` → the FQDN, as Istio's tryFindFQDN does."""
    if "." not in host:
        return f"{host}.{namespace}.svc.{DOMAIN_SUFFIX}"
    parts = host.split(".")
    if len(parts) == 2:
        return f"{host}.svc.{DOMAIN_SUFFIX}"
    if len(parts) == 3 and parts[2] == "svc":
        return f"{host}.{DOMAIN_SUFFIX}"
    return host


def _aliases(svc: Service, namespace: str) -> list[str]:
    names = [svc.hostname]
    suffix = f".{svc.namespace}.svc.{DOMAIN_SUFFIX}"
    if svc.hostname.endswith(suffix):
        short = svc.hostname[: -len(suffix)]
        names += [f"{short}.{svc.namespace}.svc", f"{short}.{svc.namespace}"]
        if svc.namespace == namespace:
            names.append(short)
    return names


def _http_ports(svc: Service) -> list[ServicePort]:
    return [p for p in svc.ports if p.protocol.is_http]


def listeners(scope: ProxyScope, names: Collection[str] | None = None
              ) -> dict[str, listener_pb2.Listener]:
    by_host = {s.hostname: s for s in scope.services}
    wanted: list[tuple[str, Service, ServicePort]] = []
    if names is None:
        for svc in scope.services:
            for port in _http_ports(svc):
                for alias in _aliases(svc, scope.proxy.namespace):
                    wanted.append((f"{alias}:{port.number}", svc, port))
    else:
        for name in names:
            host, sep, port_text = name.rpartition(":")
            if not sep or not port_text.isdigit():
                continue
            svc = by_host.get(resolve_name(host, scope.proxy.namespace)) or by_host.get(host)
            port = svc.port(int(port_text)) if svc is not None else None
            if port is not None:
                wanted.append((name, svc, port))
    out: dict[str, listener_pb2.Listener] = {}
    for name, svc, port in wanted:
        route_name = cluster_name("outbound", port.number, None, svc.hostname)
        out[name] = lds.api_listener(name, svc.vip, port.number, route_name)
    return out


def routes(scope: ProxyScope) -> dict[str, route_pb2.RouteConfiguration]:
    out: dict[str, route_pb2.RouteConfiguration] = {}
    for svc in scope.services:
        for port in _http_ports(svc):
            name = cluster_name("outbound", port.number, None, svc.hostname)
            ctx = rds.RouteContext(scope.snapshot, scope.match_context(port.number), grpc=True)
            # one route configuration per service port, so every authority matches
            vhost = rds.service_virtual_host(svc, port, ctx, domains=["*"])
            out[name] = route_pb2.RouteConfiguration(name=name, virtual_hosts=[vhost])
    return out
