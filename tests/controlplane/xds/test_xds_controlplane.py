"""The control-plane wiring: store and registry changes become debounced pushes.

Real MemoryStore, Registry, REST app and gRPC; a fake snapshot builder and generator keep
translation out of it (one cluster per stored resource, one endpoint per instance).
"""

from __future__ import annotations

import asyncio

import aiohttp
import grpc
import pytest
from envoy.config.cluster.v3.cluster_pb2 import Cluster
from envoy.config.endpoint.v3.endpoint_pb2 import ClusterLoadAssignment

from ketch.controlplane.instance import WorkloadInstance
from ketch.controlplane.registry import Registry
from ketch.controlplane.server import ControlPlane, ControlPlaneOptions
from ketch.controlplane.xds.types import CLUSTER, ENDPOINT

from test_xds_ads import Client, names_of
from xds_fakes import parse_node

store_mod = pytest.importorskip("ketch.store")
model = pytest.importorskip("ketch.model")

SE = """apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: NAME, namespace: default}
spec:
  hosts: [NAME.example]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
"""


def build(configs, instances, mesh, version, previous=None):
    return {"configs": tuple(r.metadata.name for r in configs), "instances": instances}


def generate(snapshot, proxy, type_url, names=None):
    if type_url == CLUSTER:
        return {n: Cluster(name=n) for n in snapshot["configs"]}
    if type_url == ENDPOINT:
        out = {}
        for n in snapshot["configs"]:
            cla = ClusterLoadAssignment(cluster_name=n)
            for inst in snapshot["instances"]:
                if inst.labels.get("app") == n:
                    sa = cla.endpoints.add().lb_endpoints.add().endpoint.address.socket_address
                    sa.address, sa.port_value = inst.address, 80
            out[n] = cla
        return out
    return {}


@pytest.fixture
async def control_plane():
    from ketch.controlplane.rest import make_app

    options = ControlPlaneOptions(host="127.0.0.1", xds_port=0, http_port=0,
                                  debounce_quiet=0.02, debounce_max=1.0, grace=0.5)
    cp = ControlPlane(options, store=store_mod.MemoryStore(), registry=Registry(ttl=30),
                      mesh=None, generate=generate, parse_node=parse_node,
                      build_snapshot=build, make_app=make_app)
    await cp.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{cp.xds_port}")
    yield cp, channel
    await channel.close()
    await cp.stop()


def apply(cp: ControlPlane, *names: str) -> None:
    result = model.load_text("---\n".join(SE.replace("NAME", n) for n in names))
    assert not result.errors
    cp.store.apply(list(result.resources))


async def test_config_and_registry_changes_reach_the_proxy(control_plane) -> None:
    cp, channel = control_plane
    apply(cp, "a")
    c = Client(channel, "sidecar~10.0.0.9~p.default~x")
    await c.send(CLUSTER)
    cds = await c.read()
    if names_of(cds) == []:  # the initial snapshot raced the apply: the push follows
        await c.ack(cds)
        cds = await c.read()
    assert names_of(cds) == ["a"]
    await c.ack(cds)
    await c.send(ENDPOINT, ["a"])
    await c.ack(await c.read(), ["a"])

    # a burst of config changes becomes one push with all of them
    apply(cp, "b")
    apply(cp, "c")
    cds = await c.read()
    assert cds.type_url == CLUSTER and names_of(cds) == ["a", "b", "c"]
    await c.ack(cds)

    # a registry change: only EDS moves
    cp.registry.register(WorkloadInstance("a-1", "default", "10.1.0.1", labels={"app": "a"}))
    eds = await c.read()
    assert eds.type_url == ENDPOINT and names_of(eds) == ["a"]
    cla = ClusterLoadAssignment()
    eds.resources[0].Unpack(cla)
    assert cla.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.address == "10.1.0.1"
    await c.ack(eds, ["a"])
    assert eds.version_info == cp.xds.version == f"{cp.store.revision}.{cp.registry.revision}"

    # the REST app sees the proxy, synced, and the xDS metrics
    async with aiohttp.ClientSession() as http:
        base = f"http://127.0.0.1:{cp.http_port}"
        for _ in range(100):
            async with http.get(f"{base}/api/v1/proxies") as resp:
                body = await resp.json()
            listed = body if isinstance(body, list) else body.get("proxies", body.get("items"))
            statuses = [t["status"] for t in listed[0]["types"].values()]
            if statuses == ["SYNCED", "SYNCED"]:
                break
            await asyncio.sleep(0.02)
        assert statuses == ["SYNCED", "SYNCED"]
        async with http.get(f"{base}/metrics") as resp:
            text = await resp.text()
        assert 'pilot_xds_pushes{type="eds"}' in text and "pilot_xds 1" in text


async def test_stop_ends_streams_promptly() -> None:
    from ketch.controlplane.rest import make_app

    options = ControlPlaneOptions(host="127.0.0.1", xds_port=0, http_port=0, grace=30.0)
    cp = ControlPlane(options, store=store_mod.MemoryStore(), registry=Registry(ttl=30),
                      mesh=None, generate=generate, parse_node=parse_node,
                      build_snapshot=build, make_app=make_app)
    await cp.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{cp.xds_port}")
    c = Client(channel, "sidecar~10.0.0.9~p.default~x")
    await c.send(CLUSTER)
    await c.read()
    started = asyncio.get_running_loop().time()
    await cp.stop()
    # the stream ended cleanly, well before the 30 s grace
    assert await asyncio.wait_for(c.call.read(), 10) is grpc.aio.EOF
    assert asyncio.get_running_loop().time() - started < 15
    await channel.close()
