"""State-of-the-world xDS as Envoy reads it: LDS/CDS responses are complete sets, RDS/EDS
resources are independent (a response updates only what it carries)."""

from __future__ import annotations

import asyncio

import pytest
from google.protobuf import json_format

from proxy_harness import http_listener, route, vhost
from ketch.proxy.protoutil import Unsupported
from ketch.proxy.server import ProxyState
from ketch.proxy.xds import CDS, EDS, LDS, RDS, TYPES, ConfigManager


def msg(type_url: str, d: dict):
    return json_format.ParseDict(d, TYPES[type_url]())


def eds_cluster(name: str):
    return msg(CDS, {"name": name, "type": "EDS", "connectTimeout": "1s",
                     "edsClusterConfig": {"edsConfig": {"ads": {}}}})


def cla(name: str, *ports: int, healthy: bool = True):
    return msg(EDS, {"clusterName": name, "endpoints": [{"lbEndpoints": [
        {"endpoint": {"address": {"socketAddress": {"address": "127.0.0.1", "portValue": p}}},
         "healthStatus": "HEALTHY" if healthy else "UNHEALTHY"} for p in ports]}]})


def rds_listener(port: int, route_name: str):
    d = http_listener(port, name=f"0.0.0.0_{port}")
    d["bindToPort"] = False
    hcm = d["filterChains"][0]["filters"][0]["typedConfig"]
    del hcm["routeConfig"]
    hcm["rds"] = {"routeConfigName": route_name, "configSource": {"ads": {}}}
    return msg(LDS, d)


def route_config(name: str, cluster: str):
    return msg(RDS, {"name": name, "virtualHosts": [vhost(route(cluster))]})


def hosts(state: ProxyState, cluster: str) -> list[int]:
    rt = state.snapshot.clusters[cluster]
    return sorted(h.metadata[1] for h in rt.hosts.values())


@pytest.fixture
async def manager():
    state = ProxyState(asyncio.get_running_loop())
    cm = ConfigManager(state)
    await cm.update(CDS, [eds_cluster("a"), eds_cluster("b")], "1")
    await cm.update(EDS, [cla("a", 1001), cla("b", 2001)], "1")
    return cm


async def test_eds_response_updates_only_the_assignments_it_carries(manager) -> None:
    st = manager.state
    assert hosts(st, "a") == [1001] and hosts(st, "b") == [2001]
    await manager.update(EDS, [cla("a", 1001, 1002)], "2")
    assert hosts(st, "a") == [1001, 1002]
    assert hosts(st, "b") == [2001], "an assignment left out of an EDS response stays"
    assert set(manager.raw[EDS]) == {"a", "b"}
    assert manager.versions[EDS] == "2"
    # an empty EDS response changes nothing (it is not "no endpoints anywhere")
    await manager.update(EDS, [], "3")
    assert hosts(st, "a") == [1001, 1002] and hosts(st, "b") == [2001]
    # an assignment with no endpoints empties its cluster
    await manager.update(EDS, [msg(EDS, {"clusterName": "b"})], "4")
    assert hosts(st, "b") == [] and hosts(st, "a") == [1001, 1002]


async def test_eds_response_is_atomic(manager) -> None:
    st = manager.state
    bad = msg(EDS, {"clusterName": "b", "endpoints": [{"lbEndpoints": [
        {"endpoint": {"address": {"pipe": {"path": "/tmp/x"}}}}]}]})
    with pytest.raises(Unsupported):
        await manager.update(EDS, [cla("a", 1009), bad], "2")
    assert hosts(st, "a") == [1001] and hosts(st, "b") == [2001]
    assert manager.versions[EDS] == "1"


async def test_assignment_goes_away_with_its_cluster(manager) -> None:
    st = manager.state
    await manager.update(CDS, [eds_cluster("a")], "2")  # CDS is the complete set: b is gone
    assert set(st.snapshot.clusters) == {"a"}
    assert hosts(st, "a") == [1001], "a kept cluster keeps its endpoints"
    assert set(manager.raw[EDS]) == {"a"} and set(st.endpoints) == {"a"}
    # b comes back: it has no endpoints until an EDS response carries them again
    await manager.update(CDS, [eds_cluster("a"), eds_cluster("b")], "3")
    assert hosts(st, "b") == []
    await manager.update(EDS, [cla("b", 2002)], "3")
    assert hosts(st, "b") == [2002] and hosts(st, "a") == [1001]


async def test_rds_per_resource_and_forgotten_when_no_listener_references_it() -> None:
    state = ProxyState(asyncio.get_running_loop())
    cm = ConfigManager(state)
    await cm.update(LDS, [rds_listener(18080, "80"), rds_listener(18081, "81")], "1")
    assert cm.wanted_routes == ["80", "81"]
    await cm.update(RDS, [route_config("80", "a"), route_config("81", "b")], "1")
    first_81 = state.snapshot.routes["81"]
    await cm.update(RDS, [route_config("80", "c")], "2")
    assert set(state.snapshot.routes) == {"80", "81"}
    assert state.snapshot.routes["81"] is first_81, "a route config left out of a response stays"
    assert state.snapshot.routes["80"] is not first_81
    await cm.update(LDS, [rds_listener(18080, "80")], "2")
    assert set(state.snapshot.routes) == {"80"} and set(cm.raw[RDS]) == {"80"}
