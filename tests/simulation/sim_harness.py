"""Simulation: send a described call through the generated xDS, using the proxy's own
compilers and matchers (`ketch.proxy.config`, `ketch.proxy.routing`), the way Istio's
pilot/pkg/simulation does with Envoy's semantics.

Every generated resource is compiled by the proxy first, so a resource the proxy would
NACK fails the simulation loudly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from ketch.controlplane.node import ProxyNode, ProxyType
from ketch.controlplane.snapshot import Snapshot
from ketch.controlplane.translate import generate
from ketch.controlplane.translate.generator import CLUSTER, LISTENER, ROUTE
from ketch.controlplane.translate.grpc import resolve_name
from ketch.proxy.config import compile_cluster, compile_listener, select_chain
from ketch.proxy.routing import DirectResponse, Redirect, compile_route_config


@dataclass(frozen=True)
class Call:
    host: str
    port: int = 80
    path: str = "/"
    method: str = "GET"
    headers: Mapping[str, str] = field(default_factory=dict)
    tcp: bool = False
    address: str | None = None  # destination IP; default: what the pod's DNS gives
    sni: str = ""  # a TLS call's server name (the proxy peeks at the ClientHello)


@dataclass(frozen=True)
class Result:
    listener: str = ""
    route: str = ""  # route name inside the virtual host
    virtual_host: str = ""
    cluster: str | None = None
    weighted: tuple[tuple[str, int], ...] = ()
    status: int | None = None  # direct response / redirect status
    error: str | None = None  # "no listener", "NR" (no route), "NC" (no cluster), ...
    route_obj: Any = None

    @property
    def target(self) -> str:
        """One string for tables: the cluster, `a=80,b=20`, `status:404`, or the error."""
        if self.error:
            return self.error
        if self.status is not None:
            return f"status:{self.status}"
        if self.weighted:
            return ",".join(f"{n}={w}" for n, w in self.weighted)
        return self.cluster or ""


class Simulation:
    def __init__(self, snapshot: Snapshot, proxy: ProxyNode):
        self.snapshot, self.proxy = snapshot, proxy
        self.listeners = {n: compile_listener(m) for n, m in generate(snapshot, proxy, LISTENER).items()}
        self.routes = {n: compile_route_config(m) for n, m in generate(snapshot, proxy, ROUTE).items()}
        self.clusters = {n: compile_cluster(m) for n, m in generate(snapshot, proxy, CLUSTER).items()}

    def resolve(self, host: str) -> str | None:
        """The pod's DNS: service names (short, name.ns, ...) to the service VIP."""
        svc = self.snapshot.service(resolve_name(host, self.proxy.namespace), self.proxy.namespace)
        return svc.vip if svc is not None else None

    def listener_for(self, ip: str, port: int):
        """The listener a connection to ip:port ends on: the proxy's hand-off from 15001
        (redirected, or in process mode the target of an absolute-form request/CONNECT)."""
        if self.proxy.type is ProxyType.ROUTER:
            return self.listeners.get(f"0.0.0.0_{port}")
        return (self.listeners.get(f"{ip}_{port}") or self.listeners.get(f"0.0.0.0_{port}")
                or self.listeners.get("virtualOutbound"))

    def run(self, call: Call) -> Result:
        ip = call.address or self.resolve(call.host) or "203.0.113.9"
        lis = self.listener_for(ip, call.port)
        if lis is None:
            return Result(error="no listener")
        if call.sni:
            chain = select_chain(lis, ip, call.port, self.proxy.ip, sni=call.sni, transport="tls")
        else:
            chain = select_chain(lis, ip, call.port, self.proxy.ip)
        if chain is None:
            return Result(listener=lis.name, error="no filter chain")
        if chain.tcp is not None:
            return self._check(Result(listener=lis.name, cluster=chain.tcp.cluster,
                                      weighted=tuple(chain.tcp.weighted)))
        if call.tcp:
            return Result(listener=lis.name, error="http listener for a tcp call")
        table = chain.http.route_table or self.routes.get(chain.http.rds_name or "")
        if table is None:
            return Result(listener=lis.name, error=f"no route config {chain.http.rds_name}")
        authority = call.host if call.port == 80 else f"{call.host}:{call.port}"
        headers = {k.lower(): v for k, v in call.headers.items()}
        vh = table.virtual_host(authority)
        route = table.match(authority, call.path, call.method, headers)
        if route is None:
            return Result(listener=lis.name, virtual_host=vh.name if vh else "", error="NR")
        base = dict(listener=lis.name, route=route.name, virtual_host=route.vhost, route_obj=route)
        action = route.action
        if isinstance(action, DirectResponse):
            return Result(**base, status=action.status)
        if isinstance(action, Redirect):
            return Result(**base, status=action.status)
        weighted = tuple((w.name, w.weight) for w in action.weighted_clusters)
        return self._check(Result(**base, cluster=action.cluster, weighted=weighted))

    def _check(self, result: Result) -> Result:
        names = [result.cluster] if result.cluster else [n for n, _ in result.weighted]
        missing = [n for n in names if n not in self.clusters]
        if missing:
            return Result(listener=result.listener, error=f"NC {missing[0]}")
        return result
