"""Incremental (delta) ADS over a real grpc.aio channel, with the fake generator."""

from __future__ import annotations

import asyncio

import grpc
from envoy.config.cluster.v3.cluster_pb2 import Cluster
from envoy.service.discovery.v3 import ads_pb2_grpc
from envoy.service.discovery.v3.discovery_pb2 import DeltaDiscoveryRequest, DeltaDiscoveryResponse

from ketch.controlplane.xds.types import CLUSTER, ENDPOINT, LISTENER

from test_xds_ads import served  # noqa: F401  (fixture)
from xds_fakes import world

TIMEOUT = 10.0


class DeltaClient:
    def __init__(self, channel: grpc.aio.Channel, node_id: str) -> None:
        self.call = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel).DeltaAggregatedResources()
        self.node_id = node_id
        self.first = True

    async def send(self, type_url: str, subscribe=(), unsubscribe=(), nonce: str = "",
                   error: str | None = None, initial: dict[str, str] | None = None) -> None:
        req = DeltaDiscoveryRequest(type_url=type_url, resource_names_subscribe=list(subscribe),
                                    resource_names_unsubscribe=list(unsubscribe),
                                    response_nonce=nonce)
        req.initial_resource_versions.update(initial or {})
        if self.first:
            req.node.id = self.node_id
            self.first = False
        if error is not None:
            req.error_detail.code, req.error_detail.message = 3, error
        await self.call.write(req)

    async def read(self) -> DeltaDiscoveryResponse:
        msg = await asyncio.wait_for(self.call.read(), TIMEOUT)
        assert msg is not grpc.aio.EOF
        return msg


def names(resp: DeltaDiscoveryResponse) -> list[str]:
    return [r.name for r in resp.resources]


async def test_delta_sends_only_differences_and_removals(served) -> None:
    xds, _, channel = served
    xds.set_snapshot(world({"a": ["10.0.0.1"], "b": ["10.0.0.2"]}), "v1")
    c = DeltaClient(channel, "sidecar~10.0.0.9~p.default~x")
    await c.send(CLUSTER)  # wildcard
    cds = await c.read()
    assert names(cds) == ["outbound|80||a", "outbound|80||b"] and not cds.removed_resources
    cluster = Cluster()
    cds.resources[0].resource.Unpack(cluster)
    assert cluster.name == "outbound|80||a" and cds.resources[0].version
    await c.send(CLUSTER, nonce=cds.nonce)  # ACK
    await c.send(ENDPOINT, subscribe=["outbound|80||a"])
    eds = await c.read()
    assert names(eds) == ["outbound|80||a"]
    await c.send(ENDPOINT, nonce=eds.nonce)

    # b goes away, c arrives, a's cluster is unchanged: only the difference travels
    xds.set_snapshot(world({"a": ["10.0.0.1"], "c": ["10.0.0.3"]}), "v2", change=0.0)
    cds = await c.read()
    assert names(cds) == ["outbound|80||c"]
    assert list(cds.removed_resources) == ["outbound|80||b"]
    assert cds.system_version_info == "v2"
    await c.send(CLUSTER, nonce=cds.nonce)
    await c.send(LISTENER)  # EDS for a did not change, so this answer comes next
    assert (await c.read()).type_url == LISTENER
    [proxy] = xds.proxies()
    assert proxy["types"][CLUSTER]["status"] == "SYNCED"
    assert proxy["types"][CLUSTER]["resources"] == 2
    assert proxy["types"][LISTENER]["status"] == "STALE"


async def test_delta_reconnect_with_versions_and_nack(served) -> None:
    xds, _, channel = served
    xds.set_snapshot(world({"a": ["10.0.0.1"], "b": ["10.0.0.2"]}), "v1")
    first = DeltaClient(channel, "sidecar~10.0.0.9~p.default~x")
    await first.send(CLUSTER)
    cds = await first.read()
    held = {r.name: r.version for r in cds.resources}
    await first.call.done_writing()

    again = DeltaClient(channel, "sidecar~10.0.0.9~p.default~x")
    held["outbound|80||b"] = "stale-version"
    await again.send(CLUSTER, initial=held)
    cds = await again.read()
    assert names(cds) == ["outbound|80||b"]  # a was already current
    await again.send(CLUSTER, nonce=cds.nonce, error="cluster b: bad")
    await again.send(LISTENER)
    assert (await again.read()).type_url == LISTENER
    statuses = [p["types"][CLUSTER] for p in xds.proxies() if CLUSTER in p["types"]]
    assert {"status": "NACK", "error": "cluster b: bad"}.items() <= statuses[-1].items()
    assert 'pilot_total_xds_rejects{type="cds"} 1' in xds.metrics_text()
