"""xDS resources → proxy state: decode, validate (compile), apply atomically, remember for dumps.

`ConfigManager.update(type_url, resources)` compiles every resource of one response first
and applies nothing if any fails (the ADS client then NACKs with the `Unsupported` reason
and the last good config keeps serving). Static resources from the bootstrap are merged
with dynamic ones, as Envoy does.

State of the world, as Envoy reads it: an LDS or CDS response is the complete set (what it
leaves out is removed), but RDS and EDS resources are independent: a response updates the
route configurations / load assignments it carries and leaves the others as they are. A
load assignment goes away when no cluster wants it any more (its cluster left CDS), a route
configuration when no listener references it.
"""

from __future__ import annotations

import time

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_pb2
from google.protobuf import any_pb2, json_format
from google.protobuf.message import DecodeError, Message

from ketch.proxy.config import compile_cluster, compile_endpoints, compile_listener
from ketch.proxy.protoutil import Unsupported
from ketch.proxy.routing import compile_route_config

LDS = "type.googleapis.com/envoy.config.listener.v3.Listener"
RDS = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
CDS = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
EDS = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
TYPES = {LDS: listener_pb2.Listener, RDS: route_pb2.RouteConfiguration, CDS: cluster_pb2.Cluster,
         EDS: endpoint_pb2.ClusterLoadAssignment}


def decode(type_url: str, resources: list[any_pb2.Any]) -> list[Message]:
    cls = TYPES.get(type_url)
    if cls is None:
        raise Unsupported(f"resource type {type_url} is not supported")
    out = []
    for any_msg in resources:
        if any_msg.type_url == "type.googleapis.com/envoy.service.discovery.v3.Resource":
            raise Unsupported("wrapped Resource messages are not supported (state of the world only)")
        if any_msg.type_url != type_url:
            raise Unsupported(f"resource of type {any_msg.type_url} in a {type_url} response")
        msg = cls()
        try:
            msg.ParseFromString(any_msg.value)
        except DecodeError as exc:
            raise Unsupported(f"cannot decode {type_url}: {exc}") from None
        out.append(msg)
    return out


class ConfigManager:
    def __init__(self, state, static_listeners=(), static_clusters=()) -> None:
        self.state = state
        self.static_listeners = {l.name: l for l in static_listeners}
        self.static_clusters = {c.name: c for c in static_clusters}
        self.raw: dict[str, dict[str, Message]] = {LDS: {}, RDS: {}, CDS: {}, EDS: {}}
        self.versions: dict[str, str] = {}
        self.updated: dict[str, float] = {}
        self.wanted_routes: list[str] = []
        self.wanted_endpoints: list[str] = []

    async def apply_static(self) -> None:
        await self.update(CDS, [], "static")
        await self.update(LDS, [], "static")
        self.versions.clear()  # nothing accepted from a control plane yet

    async def update(self, type_url: str, resources: list[Message], version: str) -> None:
        """Compile all, then apply; raises Unsupported (nothing applied) on the first problem."""
        names = [getattr(r, "name", "") or getattr(r, "cluster_name", "") for r in resources]
        if len(set(names)) != len(names):
            raise Unsupported(f"duplicate resource names in {type_url.rsplit('.', 1)[-1]} response")
        st = self.state
        if type_url == CDS:
            merged = {**{c.name: c for c in resources}, **self.static_clusters}
            compiled = {n: compile_cluster(c) for n, c in merged.items()}
            self.wanted_endpoints = st.set_clusters(compiled)
        elif type_url == EDS:
            compiled_eps = {r.cluster_name: compile_endpoints(r, f"ClusterLoadAssignment {r.cluster_name}")
                            for r in resources}
            st.set_endpoints(compiled_eps, full=False)
        elif type_url == LDS:
            merged_l = {**{l.name: l for l in resources}, **self.static_listeners}
            compiled_l = {n: compile_listener(l) for n, l in merged_l.items()}
            try:
                self.wanted_routes = await st.set_listeners(compiled_l)
            except OSError as exc:
                raise Unsupported(f"cannot bind listener: {exc}") from None
        elif type_url == RDS:
            tables = {r.name: compile_route_config(r, st.rng.random) for r in resources}
            st.set_routes(tables, full=False)
        else:
            raise Unsupported(f"resource type {type_url} is not supported")
        if type_url in (EDS, RDS):  # per resource: merge into what we hold
            self.raw[type_url] = {**self.raw[type_url], **dict(zip(names, resources))}
        else:
            self.raw[type_url] = {n: r for n, r in zip(names, resources)}
        if type_url == CDS:  # load assignments of clusters that left CDS go with them
            wanted = set(self.wanted_endpoints)
            self.raw[EDS] = {n: r for n, r in self.raw[EDS].items() if n in wanted}
            st.keep_endpoints(wanted)
        elif type_url == LDS:  # route configurations no listener references any more
            wanted = set(self.wanted_routes)
            if not set(self.raw[RDS]) <= wanted or not set(st.snapshot.routes) <= wanted:
                self.raw[RDS] = {n: r for n, r in self.raw[RDS].items() if n in wanted}
                st.set_routes({n: t for n, t in st.snapshot.routes.items() if n in wanted}, full=True)
        self.versions[type_url] = version
        self.updated[type_url] = time.time()

    # -- admin /config_dump in Envoy's shape
    def config_dump(self) -> dict:
        def ts(t: str) -> str:
            return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.updated.get(t, time.time())))

        def as_any(msg: Message) -> dict:
            d = json_format.MessageToDict(msg)
            return {"@type": f"type.googleapis.com/{msg.DESCRIPTOR.full_name}", **d}

        v = self.versions
        return {"configs": [
            {"@type": "type.googleapis.com/envoy.admin.v3.ListenersConfigDump",
             "version_info": v.get(LDS, ""),
             "static_listeners": [{"listener": as_any(l), "last_updated": ts(LDS)}
                                  for l in self.static_listeners.values()],
             "dynamic_listeners": [{"name": n, "active_state": {"version_info": v.get(LDS, ""),
                                                                "listener": as_any(l), "last_updated": ts(LDS)}}
                                   for n, l in self.raw[LDS].items() if n not in self.static_listeners]},
            {"@type": "type.googleapis.com/envoy.admin.v3.ClustersConfigDump",
             "version_info": v.get(CDS, ""),
             "static_clusters": [{"cluster": as_any(c), "last_updated": ts(CDS)} for c in self.static_clusters.values()],
             "dynamic_active_clusters": [{"version_info": v.get(CDS, ""), "cluster": as_any(c),
                                          "last_updated": ts(CDS)}
                                         for n, c in self.raw[CDS].items() if n not in self.static_clusters]},
            {"@type": "type.googleapis.com/envoy.admin.v3.RoutesConfigDump",
             "dynamic_route_configs": [{"version_info": v.get(RDS, ""), "route_config": as_any(r),
                                        "last_updated": ts(RDS)} for r in self.raw[RDS].values()]},
            {"@type": "type.googleapis.com/envoy.admin.v3.EndpointsConfigDump",
             "dynamic_endpoint_configs": [{"version_info": v.get(EDS, ""), "endpoint_config": as_any(e),
                                           "last_updated": ts(EDS)} for e in self.raw[EDS].values()]},
        ]}
