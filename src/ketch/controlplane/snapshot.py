"""An immutable, indexed view of the world that translation reads.

Built once per change from the stored config, the registry's instances and the mesh config;
translators never scan all config per route: they ask these indexes. Derived answers that
are the same for many proxies (visible services per scope, endpoints per service port) are
memoised on the snapshot; a new snapshot starts with an empty memo.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Callable, Hashable, Iterable, Mapping, TypeVar

from ketch.controlplane.instance import InstanceSource, WorkloadInstance
from ketch.controlplane.translate.service import (
    Endpoint,
    Resolution,
    Service,
    ServicePort,
    endpoints_for,
    instance_from_workload_entry,
    services_from_kubernetes,
    services_from_service_entry,
)
from ketch.controlplane.translate.util import (
    attr,
    enum_name,
    export_set,
    fqdn,
    host_matches,
    hosts_intersect,
    labels_match,
    seq,
    visible,
)

T = TypeVar("T")
log = logging.getLogger(__name__)
KINDS_READ = (
    "Service", "ServiceEntry", "WorkloadEntry", "VirtualService", "DestinationRule",
    "Gateway", "Sidecar",
)


def _order(resource: Any) -> tuple:
    """Istio's conflict order: oldest first, then namespace/name."""
    meta = resource.metadata
    return (str(attr(meta, "creation_timestamp") or ""), meta.namespace or "", meta.name)


@dataclass(frozen=True, eq=False)
class Snapshot:
    version: str
    mesh: Any
    services: tuple[Service, ...]
    instances: tuple[WorkloadInstance, ...]
    virtual_services: tuple[Any, ...]
    destination_rules: tuple[Any, ...]
    gateways: tuple[Any, ...]
    sidecars: tuple[Any, ...]
    services_by_host: Mapping[str, tuple[Service, ...]]
    _instances_by_label: Mapping[tuple[str, str, str], frozenset[int]]
    _instances_by_ns: Mapping[str, frozenset[int]]
    _vs_by_host: Mapping[str, tuple[Any, ...]]
    _vs_wildcard: tuple[Any, ...]
    _vs_by_name: Mapping[tuple[str, str], Any]
    _dr_by_host: Mapping[str, tuple[Any, ...]]
    _dr_wildcard: tuple[Any, ...]
    _configs: tuple[Any, ...] = field(default=(), repr=False)
    _config_instances: tuple[WorkloadInstance, ...] = field(default=(), repr=False)
    # id(resource) -> (resource, its services); the resource is kept so the id stays unique
    _converted: Mapping[int, tuple[Any, tuple[Service, ...]]] = field(default_factory=dict,
                                                                      repr=False)
    _memo: dict = field(default_factory=dict, repr=False)
    # key -> (inputs, value) of the previous snapshot's `memo_inputs` answers
    _carried: Mapping[Hashable, tuple[Any, Any]] = field(default_factory=dict, repr=False)

    @classmethod
    def build(
        cls,
        configs: Iterable[Any],
        instances: Iterable[WorkloadInstance] = (),
        mesh: Any = None,
        version: str = "0",
        previous: Snapshot | None = None,
    ) -> Snapshot:
        """`previous`: the last snapshot; when the config objects and mesh are the very same
        (a registry-only change), everything derived from config is reused and only the
        instance indexes (and the answers that read instances) are rebuilt. Otherwise the
        services of config objects the previous snapshot already converted are reused."""
        read = tuple(res for res in configs if res.kind in KINDS_READ)
        if previous is not None and previous.mesh is mesh and _same_objects(previous._configs, read):
            return previous._with_instances(instances, version)
        carried = previous._carry() if previous is not None else {}
        by_kind: dict[str, list[Any]] = defaultdict(list)
        for res in read:
            by_kind[res.kind].append(res)
        for items in by_kind.values():
            items.sort(key=_order)

        services: list[Service] = []
        # a config object seen by the previous snapshot converts to the same services
        converted: dict[int, tuple[Any, tuple[Service, ...]]] = {}
        reuse = previous._converted if previous is not None else {}
        for kind, convert in (("Service", services_from_kubernetes),
                              ("ServiceEntry", services_from_service_entry)):
            for res in by_kind[kind]:
                prior = reuse.get(id(res))
                try:
                    found = prior[1] if prior is not None and prior[0] is res else tuple(convert(res))
                    converted[id(res)] = (res, found)
                    services.extend(found)
                except (ValueError, TypeError, AttributeError):
                    # one malformed object must not take the whole mesh's config down
                    log.exception("skipping %s %s/%s", kind, res.metadata.namespace,
                                  res.metadata.name)
        hosts: dict[str, list[Service]] = defaultdict(list)
        for svc in services:
            hosts[svc.hostname].append(svc)

        config_instances = tuple(
            instance_from_workload_entry(res.spec, res.metadata.name,
                                         res.metadata.namespace or "default",
                                         InstanceSource.WORKLOAD_ENTRY)
            for res in by_kind["WorkloadEntry"])
        all_instances, by_label, by_ns = _index_instances(instances, config_instances)

        vs_by_host: dict[str, list[Any]] = defaultdict(list)
        vs_wild: list[Any] = []
        vs_by_name: dict[tuple[str, str], Any] = {}
        for vs in by_kind["VirtualService"]:
            ns = vs.metadata.namespace or "default"
            vs_by_name[(ns, vs.metadata.name)] = vs
            for h in seq(attr(vs.spec, "hosts")):
                host = fqdn(str(h), ns)
                (vs_wild if "*" in host else vs_by_host[host]).append(vs)
        dr_by_host: dict[str, list[Any]] = defaultdict(list)
        dr_wild: list[Any] = []
        for dr in by_kind["DestinationRule"]:
            host = fqdn(str(attr(dr.spec, "host") or ""), dr.metadata.namespace or "default")
            (dr_wild if "*" in host else dr_by_host[host]).append(dr)

        freeze = lambda d: MappingProxyType({k: tuple(v) for k, v in d.items()})  # noqa: E731
        return cls(
            version=version,
            mesh=mesh,
            services=tuple(sorted(services, key=lambda s: (s.hostname, s.namespace))),
            instances=all_instances,
            virtual_services=tuple(by_kind["VirtualService"]),
            destination_rules=tuple(by_kind["DestinationRule"]),
            gateways=tuple(by_kind["Gateway"]),
            sidecars=tuple(by_kind["Sidecar"]),
            services_by_host=freeze(hosts),
            _instances_by_label=by_label,
            _instances_by_ns=by_ns,
            _vs_by_host=freeze(vs_by_host),
            _vs_wildcard=tuple(vs_wild),
            _vs_by_name=MappingProxyType(vs_by_name),
            _dr_by_host=freeze(dr_by_host),
            _dr_wildcard=tuple(dr_wild),
            _configs=read,
            _config_instances=config_instances,
            _converted=converted,
            _carried=carried,
        )

    def _with_instances(self, instances: Iterable[WorkloadInstance], version: str) -> Snapshot:
        all_instances, by_label, by_ns = _index_instances(instances, self._config_instances)
        # tuple(): one C-level copy, so generation on another thread cannot break the loop
        memo = {k: v for k, v in tuple(self._memo.items()) if self._config_only(k)}
        return replace(self, version=version, instances=all_instances,
                       _instances_by_label=by_label, _instances_by_ns=by_ns, _memo=memo,
                       _carried=self._carry())

    def _carry(self) -> dict[Hashable, tuple[Any, Any]]:
        """The `memo_inputs` answers this snapshot computed, for the next one to reuse when
        their inputs are equal (only what was asked for here: bounded by the live set)."""
        return {k[1]: v for k, v in tuple(self._memo.items())
                if isinstance(k, tuple) and k and k[0] == "inputs"}

    def _config_only(self, key: Hashable) -> bool:
        """Whether a memoised answer reads config only (kept across registry changes)."""
        kind = key[0] if isinstance(key, tuple) and key else None
        if kind in ("vh-default", "vh", "uses-source", "visible", "dr"):
            return True
        if kind == "clusters":  # EDS clusters carry no endpoints; DNS ones embed them
            _, svc_kind, ns, host = key[:4]
            return all(s.endpoints is not None or s.resolution in _NO_INLINE_ENDPOINTS
                       for s in self.services_by_host.get(host, ()))
        if kind == "endpoints":  # inline endpoints (ServiceEntry) read no registry instances
            _, svc_kind, ns, host = key[:4]
            return all(s.endpoints is not None for s in self.services_by_host.get(host, ())
                       if s.kind == svc_kind and s.namespace == ns)
        if kind == "generate":  # LDS/RDS read no instances beyond the inbound ports in the key
            return key[1].endswith(("Listener", "RouteConfiguration"))
        return False

    # -- memo -------------------------------------------------------------------------
    def memo(self, key: Hashable, compute: Callable[[], T]) -> T:
        try:
            return self._memo[key]
        except KeyError:
            value = self._memo[key] = compute()
            return value

    def memo_inputs(self, key: Hashable, inputs: Any, compute: Callable[[], T]) -> T:
        """`memo`, and across snapshots: `compute` must read nothing but what `key` and
        `inputs` hold (compared with ==); the previous snapshot's value is reused when both
        are equal. So a registry change rebuilds only the load assignments whose endpoints
        changed (Istio's per-service endpoint shards), and the xDS cache, keyed by object
        identity, does not re-encode the others."""
        def fresh() -> tuple[Any, T]:
            prior = self._carried.get(key)
            if prior is not None and prior[0] == inputs:
                return prior
            return (inputs, compute())
        return self.memo(("inputs", key), fresh)[1]

    # -- mesh config ------------------------------------------------------------------
    @property
    def root_namespace(self) -> str:
        return attr(self.mesh, "root_namespace") or "istio-system"

    @property
    def outbound_policy(self) -> str:
        return enum_name(attr(self.mesh, "outbound_traffic_policy", "mode")) or "ALLOW_ANY"

    # -- services and endpoints -------------------------------------------------------
    def service(self, hostname: str, namespace: str | None = None) -> Service | None:
        """The service for a hostname, preferring the one in `namespace` (exportTo aside)."""
        found = self.services_by_host.get(hostname, ())
        if not found:
            return None
        if namespace is not None:
            for svc in found:
                if svc.namespace == namespace:
                    return svc
            for svc in found:
                if visible(svc.export_to, svc.namespace, namespace):
                    return svc
            return None
        return found[0]

    def selected_instances(self, namespace: str, selector: Mapping[str, str]) -> list[WorkloadInstance]:
        if not selector:
            return []
        sets = [self._instances_by_label.get((namespace, k, v), frozenset())
                for k, v in selector.items()]
        chosen = frozenset.intersection(*sets) if sets else frozenset()
        return [self.instances[i] for i in sorted(chosen)]

    def endpoints(self, service: Service, port: ServicePort) -> tuple[Endpoint, ...]:
        def compute() -> tuple[Endpoint, ...]:
            pool = () if service.endpoints is not None else self.selected_instances(
                service.namespace, service.selector or {})
            return endpoints_for(service, port, pool)
        return self.memo(("endpoints", service.kind, service.namespace, service.hostname,
                          port.number), compute)

    # -- routing config ---------------------------------------------------------------
    def virtual_services_for(self, hostname: str) -> tuple[Any, ...]:
        """VirtualServices naming this host, exact host first, then wildcards."""
        exact = self._vs_by_host.get(hostname, ())
        wild = tuple(v for v in self._vs_wildcard
                     if any(host_matches(fqdn(str(h), v.metadata.namespace or "default"), hostname)
                            for h in seq(attr(v.spec, "hosts"))))
        return exact + wild

    def virtual_service(self, namespace: str, name: str) -> Any | None:
        return self._vs_by_name.get((namespace, name))

    def destination_rule(self, hostname: str, proxy_namespace: str,
                         service_namespace: str | None = None) -> Any | None:
        """Istio's lookup: the proxy's namespace, then the service's, then the root
        namespace; exact host before wildcard; only rules exported to the proxy."""
        def compute() -> Any | None:
            cands = list(self._dr_by_host.get(hostname, ())) + [
                d for d in self._dr_wildcard
                if host_matches(fqdn(str(d.spec.host), d.metadata.namespace or "default"), hostname)]
            cands = [d for d in cands if visible(
                export_set(attr(d.spec, "export_to"), frozenset({"*"})),
                d.metadata.namespace or "default", proxy_namespace)]
            for ns in (proxy_namespace, service_namespace, self.root_namespace):
                for d in cands:
                    if (d.metadata.namespace or "default") == ns:
                        return d
            return cands[0] if cands else None
        return self.memo(("dr", hostname, proxy_namespace, service_namespace), compute)

    def sidecar_for(self, namespace: str, labels: Mapping[str, str]) -> Any | None:
        """The Sidecar resource scoping a workload: a selector match in its namespace,
        else its namespace's default, else the root namespace's default."""
        mine = [s for s in self.sidecars if (s.metadata.namespace or "default") == namespace]
        for s in mine:
            sel = attr(s.spec, "workload_selector", "labels")
            if sel and labels_match(sel, labels):
                return s
        for s in mine:
            if not attr(s.spec, "workload_selector", "labels"):
                return s
        for s in self.sidecars:
            if (s.metadata.namespace or "default") == self.root_namespace and not attr(
                    s.spec, "workload_selector", "labels"):
                return s
        return None

    def visible_services(self, namespace: str, sidecar: Any | None) -> tuple[Service, ...]:
        """Services a proxy in `namespace` may reach: exportTo, then Sidecar egress hosts."""
        def compute() -> tuple[Service, ...]:
            egress = _egress_hosts(sidecar, namespace)
            out: dict[str, Service] = {}
            for svc in self.services:
                if not visible(svc.export_to, svc.namespace, namespace):
                    continue
                if egress is not None and not any(
                        _egress_allows(ns, h, svc, namespace) for ns, h in egress):
                    continue
                prior = out.get(svc.hostname)
                if prior is None or (svc.namespace == namespace and prior.namespace != namespace):
                    out[svc.hostname] = svc
            return tuple(out.values())
        key = (sidecar.metadata.namespace, sidecar.metadata.name) if sidecar is not None else None
        return self.memo(("visible", namespace, key), compute)

    def vs_visible(self, vs: Any, namespace: str) -> bool:
        return visible(export_set(attr(vs.spec, "export_to"), frozenset({"*"})),
                       vs.metadata.namespace or "default", namespace)


_NO_INLINE_ENDPOINTS = (Resolution.CLIENT_SIDE_LB, Resolution.PASSTHROUGH)


def _same_objects(a: tuple[Any, ...], b: tuple[Any, ...]) -> bool:
    return len(a) == len(b) and all(x is y for x, y in zip(a, b))


def _index_instances(instances: Iterable[WorkloadInstance],
                     config_instances: tuple[WorkloadInstance, ...]) -> tuple:
    all_instances = sorted((*instances, *config_instances),
                           key=lambda i: (i.namespace, i.name, i.address))
    by_label: dict[tuple[str, str, str], set[int]] = defaultdict(set)
    by_ns: dict[str, set[int]] = defaultdict(set)
    for idx, inst in enumerate(all_instances):
        by_ns[inst.namespace].add(idx)
        for k, v in inst.labels.items():
            by_label[(inst.namespace, k, v)].add(idx)
    return (tuple(all_instances),
            MappingProxyType({k: frozenset(v) for k, v in by_label.items()}),
            MappingProxyType({k: frozenset(v) for k, v in by_ns.items()}))


def _egress_hosts(sidecar: Any | None, namespace: str) -> list[tuple[str, str]] | None:
    if sidecar is None:
        return None
    egress = seq(attr(sidecar.spec, "egress"))
    if not egress:
        return None
    pairs = []
    for listener in egress:
        for h in seq(attr(listener, "hosts")):
            ns, _, host = str(h).partition("/")
            pairs.append((ns, host) if host else ("*", ns))
    return pairs


def _egress_allows(ns: str, host: str, svc: Service, proxy_ns: str) -> bool:
    if ns == "~":
        return False
    if ns == "." and svc.namespace != proxy_ns:
        return False
    if ns not in ("*", ".") and svc.namespace != ns:
        return False
    return host == "*" or hosts_intersect(fqdn(host, svc.namespace) if "." not in host and host != "*"
                                          else host, svc.hostname)
