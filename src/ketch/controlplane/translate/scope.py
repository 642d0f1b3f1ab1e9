"""What one proxy can see: its Sidecar resource, visible services, outbound policy,
the services it serves (inbound) and the Gateways it implements (routers)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ketch.controlplane.node import ProxyNode, ProxyType
from ketch.controlplane.snapshot import Snapshot
from ketch.controlplane.translate.route_match import MatchContext
from ketch.controlplane.translate.service import Protocol, Service, ServicePort, protocol_of
from ketch.controlplane.translate.util import attr, enum_name, labels_match, seq


@dataclass(frozen=True)
class ProxyScope:
    snapshot: Snapshot
    proxy: ProxyNode
    sidecar: Any | None
    services: tuple[Service, ...]
    allow_any: bool

    @classmethod
    def of(cls, snapshot: Snapshot, proxy: ProxyNode) -> ProxyScope:
        sidecar = None
        if proxy.type is not ProxyType.ROUTER:
            sidecar = snapshot.sidecar_for(proxy.namespace, proxy.labels)
        mode = enum_name(attr(sidecar, "spec", "outbound_traffic_policy", "mode")) \
            or snapshot.outbound_policy
        return cls(
            snapshot=snapshot, proxy=proxy, sidecar=sidecar,
            services=snapshot.visible_services(proxy.namespace, sidecar),
            allow_any=mode != "REGISTRY_ONLY",
        )

    def match_context(self, port: int, gateways: frozenset[str] | None = None) -> MatchContext:
        return MatchContext(
            port=port, namespace=self.proxy.namespace, labels=self.proxy.labels,
            gateways=gateways if gateways is not None else frozenset({"mesh"}),
        )

    def destination_rule(self, svc: Service) -> Any | None:
        return self.snapshot.destination_rule(svc.hostname, self.proxy.namespace, svc.namespace)

    # -- inbound ----------------------------------------------------------------------
    def inbound(self) -> list[InboundPort]:
        """The ports this proxy serves inbound: its Sidecar's `ingress` listeners if it has
        any, else every port of the services that select it (at the target port)."""
        if "_inbound" not in self.__dict__:
            self.__dict__["_inbound"] = self._compute_inbound()  # frozen: cache by hand
        return self.__dict__["_inbound"]

    def _compute_inbound(self) -> list[InboundPort]:
        if self.proxy.type is not ProxyType.SIDECAR:
            return []
        ingress = seq(attr(self.sidecar, "spec", "ingress"))
        if ingress:
            return _sidecar_ingress(ingress, self.proxy.ip)
        proxy = self.proxy
        me = self._own_instance()
        out: dict[int, InboundPort] = {}
        for svc in self.snapshot.services:
            if svc.namespace != proxy.namespace or not svc.selector:
                continue
            if not labels_match(svc.selector, proxy.labels):
                continue
            for port in svc.ports:
                target = _target(svc, port, me.ports if me is not None else {})
                if target is not None and target not in out:
                    out[target] = InboundPort(target, port.protocol, "127.0.0.1", target)
        return sorted(out.values(), key=lambda p: p.port)

    def _own_instance(self) -> Any | None:
        """The registered instance this proxy fronts: by workload name, else by address
        (in process mode every instance shares 127.0.0.1, so the name decides)."""
        ips = set(self.proxy.instance_ips) | {self.proxy.ip}
        mine = [i for i in self.snapshot.instances if i.namespace == self.proxy.namespace]
        for inst in mine:
            if inst.name == self.proxy.workload_name:
                return inst
        for inst in mine:
            if inst.address in ips and labels_match(inst.labels, self.proxy.labels):
                return inst
        return None

    # -- gateways ---------------------------------------------------------------------
    def gateways(self) -> list[Any]:
        """Gateways whose selector picks this router (any namespace, as Istio's default)."""
        out = []
        for gw in self.snapshot.gateways:
            sel = attr(gw.spec, "selector")
            if sel and labels_match(sel, self.proxy.labels):
                out.append(gw)
        return out


@dataclass(frozen=True)
class InboundPort:
    """One inbound port: chains match `port` (the original destination port) and the
    `inbound|port||` cluster sends to endpoint_ip:endpoint_port."""

    port: int
    protocol: Protocol
    endpoint_ip: str
    endpoint_port: int


def _sidecar_ingress(ingress: tuple, proxy_ip: str) -> list[InboundPort]:
    out = []
    for listener in ingress:
        number = attr(listener, "port", "number")
        endpoint = str(attr(listener, "default_endpoint") or "")
        ip, _, port_text = endpoint.rpartition(":")
        if not number or not port_text.isdigit() or endpoint.startswith("unix:"):
            continue  # unix-socket endpoints are not supported
        if ip in ("0.0.0.0", ""):
            ip = proxy_ip or "127.0.0.1"  # Istio: the instance IP
        protocol = protocol_of(attr(listener, "port", "name"),
                               enum_name(attr(listener, "port", "protocol")))
        out.append(InboundPort(int(number), protocol, ip, int(port_text)))
    return sorted(out, key=lambda p: p.port)


def gateway_key(gw: Any) -> str:
    return f"{gw.metadata.namespace or 'default'}/{gw.metadata.name}"


def servers_by_port(gateways: list[Any]) -> dict[int, list[tuple[Any, Any]]]:
    out: dict[int, list[tuple[Any, Any]]] = {}
    for gw in gateways:
        for server in seq(attr(gw.spec, "servers")):
            number = attr(server, "port", "number")
            if number:
                out.setdefault(int(number), []).append((gw, server))
    return out


def _target(svc: Service, port: ServicePort, named: Any) -> int | None:
    tp = port.target_port
    if isinstance(tp, int):
        return tp
    if isinstance(tp, str):
        return int(named[tp]) if tp in named else None
    if svc.kind == "ServiceEntry" and port.name in named:
        return int(named[port.name])
    if port.name in named and svc.kind == "Service":
        return int(named[port.name])
    return port.number
