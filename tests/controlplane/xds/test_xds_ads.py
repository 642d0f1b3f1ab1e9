"""The ADS protocol over a real grpc.aio channel, with a fake generator and node parser.

Negative assertions ("nothing was sent") are made by sending a request that must be
answered and checking that its answer is the next message on the stream: the server
handles a stream's events in order, so no sleep is needed.
"""

from __future__ import annotations

import asyncio
import contextlib

import grpc
import pytest
from envoy.config.cluster.v3.cluster_pb2 import Cluster
from envoy.config.endpoint.v3.endpoint_pb2 import ClusterLoadAssignment
from envoy.service.discovery.v3 import ads_pb2_grpc
from envoy.service.discovery.v3.discovery_pb2 import DiscoveryRequest, DiscoveryResponse

from ketch.controlplane.xds import XdsServer
from ketch.controlplane.xds.types import CLUSTER, ENDPOINT, LISTENER, ROUTE

from xds_fakes import FakeGenerator, parse_node, world

TIMEOUT = 10.0


class Client:
    """A minimal Envoy: one ADS stream, explicit requests and reads."""

    def __init__(self, channel: grpc.aio.Channel, node_id: str, group: str = "a") -> None:
        self.call = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel).StreamAggregatedResources()
        self.node_id, self.group = node_id, group
        self.first = True

    async def send(self, type_url: str, names=(), nonce: str = "", version: str = "",
                   error: str | None = None) -> None:
        req = DiscoveryRequest(type_url=type_url, resource_names=list(names),
                               response_nonce=nonce, version_info=version)
        if self.first:
            req.node.id = self.node_id
            req.node.metadata.fields["GROUP"].string_value = self.group
            self.first = False
        if error is not None:
            req.error_detail.code, req.error_detail.message = 3, error
        await self.call.write(req)

    async def read(self) -> DiscoveryResponse:
        msg = await asyncio.wait_for(self.call.read(), TIMEOUT)
        assert msg is not grpc.aio.EOF
        return msg

    async def ack(self, resp: DiscoveryResponse, names=()) -> None:
        await self.send(resp.type_url, names, nonce=resp.nonce, version=resp.version_info)


def names_of(resp: DiscoveryResponse) -> list[str]:
    out = []
    for any_ in resp.resources:
        if any_.type_url == CLUSTER:
            m = Cluster(); any_.Unpack(m); out.append(m.name)
        elif any_.type_url == ENDPOINT:
            m = ClusterLoadAssignment(); any_.Unpack(m); out.append(m.cluster_name)
        else:
            out.append(any_.type_url)
    return out


@contextlib.asynccontextmanager
async def serving(gen, partial: bool = False):
    xds = XdsServer(gen, parse_node, partial=partial)
    server = grpc.aio.server()
    xds.add_to(server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield xds, channel
    finally:
        await channel.close()
        await server.stop(None)


@pytest.fixture
async def served():
    gen = FakeGenerator()
    async with serving(gen) as (xds, channel):
        yield xds, gen, channel


@pytest.fixture
async def served_partial():
    """RDS/EDS responses carry only the changed resources (Envoy's SotW allows it)."""
    gen = FakeGenerator()
    async with serving(gen, partial=True) as (xds, channel):
        yield xds, gen, channel


async def subscribe_all(c: Client, eds_names) -> dict[str, DiscoveryResponse]:
    """Envoy's start-up: CDS, then EDS for the clusters, LDS, then RDS; ACK each."""
    got = {}
    await c.send(CLUSTER)
    got[CLUSTER] = await c.read()
    await c.ack(got[CLUSTER])
    await c.send(ENDPOINT, eds_names)
    got[ENDPOINT] = await c.read()
    await c.ack(got[ENDPOINT], eds_names)
    await c.send(LISTENER)
    got[LISTENER] = await c.read()
    await c.ack(got[LISTENER])
    await c.send(ROUTE, ["80"])
    got[ROUTE] = await c.read()
    await c.ack(got[ROUTE], ["80"])
    return got


EDS = ["outbound|80||a", "outbound|80||b"]


async def test_initial_subscription_then_synced(served_partial) -> None:
    xds, _, channel = served_partial
    xds.set_snapshot(world({"a": ["10.0.0.1"], "b": ["10.0.0.2"], "c": []}), "v1")
    c = Client(channel, "sidecar~10.0.0.9~p.default~default.svc.cluster.local")
    got = await subscribe_all(c, EDS)
    assert names_of(got[CLUSTER]) == ["outbound|80||a", "outbound|80||b", "outbound|80||c"]
    assert names_of(got[ENDPOINT]) == EDS  # only the names asked for, not c
    assert got[CLUSTER].version_info == "v1" and got[CLUSTER].nonce
    assert len({r.nonce for r in got.values()}) == 4
    await c.send(ENDPOINT, EDS + ["outbound|80||c"], nonce=got[ENDPOINT].nonce)  # new name
    more = await c.read()
    assert names_of(more) == ["outbound|80||c"]  # what it lacked, not all again
    await c.ack(more, EDS + ["outbound|80||c"])
    await c.send(ROUTE, ["80"], nonce="stale-nonce")  # ignored
    await c.send(LISTENER, [], nonce="")  # a fresh request is answered: the next read
    assert (await c.read()).type_url == LISTENER
    [proxy] = xds.proxies()
    assert proxy["id"] == c.node_id
    assert {t["type"]: t["status"] for t in proxy["types"].values()} == {
        "CDS": "SYNCED", "EDS": "SYNCED", "LDS": "STALE", "RDS": "SYNCED"}
    assert "pilot_xds 1" in xds.metrics_text()


async def test_endpoint_change_pushes_only_the_changed_eds(served_partial) -> None:
    xds, _, channel = served_partial
    xds.set_snapshot(world({"a": ["10.0.0.1"], "b": ["10.0.0.2"]}), "v1")
    c = Client(channel, "sidecar~10.0.0.9~p.default~default.svc.cluster.local")
    await subscribe_all(c, EDS)
    xds.set_snapshot(world({"a": ["10.0.0.1", "10.0.0.3"], "b": ["10.0.0.2"]}), "v2", change=0.0)
    resp = await c.read()
    assert (resp.type_url, resp.version_info, names_of(resp)) == (ENDPOINT, "v2", ["outbound|80||a"])
    await c.ack(resp, EDS)
    await c.send(LISTENER)  # the next message answers this: no CDS/LDS/RDS push came
    assert (await c.read()).type_url == LISTENER
    text = xds.metrics_text()
    assert 'ketch_xds_pushes_skipped{type="cds"} 1' in text
    assert 'pilot_proxy_convergence_time_count{type="EDS"} 1' in text


async def test_config_change_pushes_in_warming_order(served) -> None:
    xds, _, channel = served
    xds.set_snapshot(world({"a": ["10.0.0.1"], "b": ["10.0.0.2"]}), "v1")
    c = Client(channel, "sidecar~10.0.0.9~p.default~default.svc.cluster.local")
    await subscribe_all(c, EDS)
    # a new service: clusters, endpoints of existing ones unchanged, routes change
    xds.set_snapshot(world({"a": ["10.0.0.1"], "b": ["10.0.0.2"], "new": ["10.0.0.5"]},
                           route_weight=2), "v2")
    cds = await c.read()
    rds = await c.read()
    assert (cds.type_url, rds.type_url) == (CLUSTER, ROUTE)
    assert len(cds.resources) == 3  # state of the world: the full set
    # the same change twice is no change at all
    xds.set_snapshot(world({"a": ["10.0.0.1"], "b": ["10.0.0.2"], "new": ["10.0.0.5"]},
                           route_weight=2), "v3")
    await c.send(LISTENER)
    assert (await c.read()).type_url == LISTENER


async def test_push_order_cds_eds_lds_rds(served) -> None:
    xds, _, channel = served
    xds.set_snapshot(world({"a": ["10.0.0.1"], "b": ["10.0.0.2"]}), "v1")
    c = Client(channel, "sidecar~10.0.0.9~p.default~default.svc.cluster.local")
    await subscribe_all(c, EDS)
    snap = world({"a": ["10.0.0.7"], "b": ["10.0.0.2"]}, route_weight=3, lb=1)
    snap[LISTENER]["0.0.0.0_81"] = snap[LISTENER]["0.0.0.0_80"].__class__(name="0.0.0.0_81")
    xds.set_snapshot(snap, "v2")
    order = [(await c.read()).type_url for _ in range(4)]
    assert order == [CLUSTER, ENDPOINT, LISTENER, ROUTE]


async def test_nack_is_kept_and_shown_and_not_answered(served) -> None:
    xds, _, channel = served
    xds.set_snapshot(world({"a": ["10.0.0.1"]}), "v1")
    c = Client(channel, "sidecar~10.0.0.9~p.default~default.svc.cluster.local")
    await c.send(CLUSTER)
    cds = await c.read()
    await c.send(CLUSTER, nonce=cds.nonce, error="cluster a: unsupported lb_policy")
    await c.send(LISTENER)
    assert (await c.read()).type_url == LISTENER  # the NACK got no response
    [proxy] = xds.proxies()
    status = proxy["types"][CLUSTER]
    assert status["status"] == "NACK"
    assert status["error"] == "cluster a: unsupported lb_policy"
    assert status["versionAcked"] == "" and status["versionSent"] == "v1"
    text = xds.metrics_text()
    assert 'pilot_total_xds_rejects{type="cds"} 1' in text
    assert 'pilot_xds_cds_reject{err="cluster a: unsupported lb_policy"' in text
    # a fixed config is pushed and ACKed: the NACK clears
    xds.set_snapshot(world({"a": ["10.0.0.1"]}, lb=1), "v2")
    fixed = await c.read()
    await c.ack(fixed)
    await c.send(ROUTE, ["80"])
    await c.read()
    assert xds.proxies()[0]["types"][CLUSTER]["status"] == "SYNCED"
    assert "pilot_xds_cds_reject{" not in xds.metrics_text()


async def test_equal_scope_shares_generation(served) -> None:
    xds, gen, channel = served
    xds.set_snapshot(world({"a": ["10.0.0.1"]}), "v1")
    clients = [Client(channel, f"sidecar~10.0.0.{i}~p{i}.default~x", group="g") for i in range(3)]
    clients.append(Client(channel, "sidecar~10.0.1.1~q.default~x", group="other"))
    for c in clients:
        await c.send(CLUSTER)
        assert len((await c.read()).resources) == 1
    assert sorted(gen.calls) == [("g", CLUSTER), ("other", CLUSTER)]


async def test_request_before_first_snapshot_is_answered_by_it(served) -> None:
    xds, _, channel = served
    c = Client(channel, "sidecar~10.0.0.9~p.default~x")
    await c.send(CLUSTER)
    await asyncio.sleep(0.05)  # let the request land before the snapshot; order is not required
    xds.set_snapshot(world({"a": ["10.0.0.1"]}), "v1")
    resp = await c.read()
    assert resp.type_url == CLUSTER and resp.version_info == "v1"


async def test_bad_node_is_refused(served) -> None:
    xds, _, channel = served
    c = Client(channel, "bad~node")
    await c.send(CLUSTER)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await c.read()
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert xds.proxies() == []


async def test_disconnect_forgets_the_proxy_and_dump_shows_what_was_sent(served) -> None:
    xds, _, channel = served
    xds.set_snapshot(world({"a": ["10.0.0.1"], "b": ["10.0.0.2"]}), "v1")
    c = Client(channel, "sidecar~10.0.0.9~p.default~x")
    await subscribe_all(c, EDS)
    dump = xds.config_dump(c.node_id)
    kinds = [cfg["@type"].rsplit(".", 1)[-1] for cfg in dump["configs"]]
    assert kinds == ["ListenersConfigDump", "ClustersConfigDump", "RoutesConfigDump",
                     "EndpointsConfigDump"]
    clusters = dump["configs"][1]["dynamicActiveClusters"]
    assert [x["cluster"]["name"] for x in clusters] == ["outbound|80||a", "outbound|80||b"]
    assert clusters[0]["versionInfo"] == "v1"
    listeners = dump["configs"][0]["dynamicListeners"]
    assert listeners[0]["activeState"]["listener"]["name"] == "0.0.0.0_80"
    assert xds.config_dump("nobody") is None
    await c.call.done_writing()
    for _ in range(200):  # the server notices the half-close; bounded wait
        if not xds.proxies():
            break
        await asyncio.sleep(0.01)
    assert xds.proxies() == []
    assert "pilot_xds 0" in xds.metrics_text()


async def test_listeners_asked_for_by_name_are_generated_under_those_names() -> None:
    """Proxyless gRPC names its listeners (host:port); the generator is told the names."""
    from envoy.config.listener.v3.listener_pb2 import Listener

    seen: list[tuple | None] = []

    def generate(snapshot, proxy, type_url, names=None):
        seen.append(names)
        return {n: Listener(name=n) for n in names or ("0.0.0.0_80",)}

    async with serving(generate) as (xds, channel):
        xds.set_snapshot({}, "v1")
        c = Client(channel, "sidecar~10.0.0.9~p.default~x")
        await c.send(LISTENER, ["echo.test:7070"])
        lds = await c.read()
        assert [a.type_url for a in lds.resources] == [LISTENER]
        assert seen == [("echo.test:7070",)]
        await c.send(LISTENER, ["echo.test:7070", "b.test:80"], nonce=lds.nonce)
        lds = await c.read()
        assert len(lds.resources) == 2  # state of the world: both, under the names asked for
        assert seen[-1] == ("b.test:80", "echo.test:7070")


async def test_endpoints_only_push_sends_eds_first(served_partial) -> None:
    """A registry change goes out as EDS before anything else is regenerated and compared."""
    xds, _, channel = served_partial
    xds.set_snapshot(world({"a": ["10.0.0.1"], "b": ["10.0.0.2"]}), "v1")
    c = Client(channel, "sidecar~10.0.0.9~p.default~x")
    await subscribe_all(c, EDS)
    xds.set_snapshot(world({"a": ["10.0.0.4"], "b": ["10.0.0.2"]}, lb=1), "v2",
                     endpoints_only=True)
    first, second = await c.read(), await c.read()
    assert (first.type_url, names_of(first)) == (ENDPOINT, ["outbound|80||a"])
    assert second.type_url == CLUSTER  # the full comparison still follows


async def test_endpoints_only_push_holds_the_full_comparison_until_every_eds_is_out(
        served_partial) -> None:
    """No stream's EDS waits behind other streams regenerating clusters and listeners."""
    xds, _, channel = served_partial
    xds.set_snapshot(world({"a": ["10.0.0.1"], "b": ["10.0.0.2"]}), "v1")
    clients = [Client(channel, f"sidecar~10.0.0.{i}~p{i}.default~x") for i in (8, 9)]
    for c in clients:
        await subscribe_all(c, EDS)
    fired: list[int] = []
    xds.set_snapshot(world({"a": ["10.0.0.4"], "b": ["10.0.0.2"]}, lb=1), "v2",
                     endpoints_only=True)
    xds.when_eds_out(lambda: fired.append(xds._eds_in_flight))
    assert fired == []  # both EDS responses are still queued
    for c in clients:
        first, second = await c.read(), await c.read()
        assert (first.type_url, names_of(first)) == (ENDPOINT, ["outbound|80||a"])
        assert second.type_url == CLUSTER
    assert fired == [0]
    xds.when_eds_out(lambda: fired.append(-1))  # nothing queued: called at once
    assert fired == [0, -1]


def test_response_bytes_are_a_discovery_response() -> None:
    from ketch.controlplane.xds.cache import Encoded, ResourceSet
    from ketch.controlplane.xds.connection import Response

    clusters = [Cluster(name=f"c{i}", connect_timeout={"seconds": i}) for i in range(3)]
    encoded = tuple(Encoded.of(c.name, CLUSTER, c) for c in clusters)
    resp = Response("v7", CLUSTER, "nonce-1", encoded).to_proto()
    expected = DiscoveryResponse(version_info="v7", type_url=CLUSTER, nonce="nonce-1")
    for c in clusters:
        expected.resources.add().Pack(c)
    assert resp == expected
    whole = ResourceSet({e.name: e for e in reversed(encoded)})  # ordered by name again
    assert Response("v7", CLUSTER, "nonce-1", whole.ordered(), whole).to_proto() == expected
    assert whole.select(frozenset({"c1", "zz"})).ordered() == (encoded[1],)


async def test_full_sets_for_eds_and_rds_without_partial_updates(served) -> None:
    """Without partial updates an EDS push carries every subscribed resource."""
    xds, _, channel = served
    xds.set_snapshot(world({"a": ["10.0.0.1"], "b": ["10.0.0.2"]}), "v1")
    c = Client(channel, "sidecar~10.0.0.9~p.default~x")
    got = await subscribe_all(c, EDS)
    await c.send(ENDPOINT, EDS + ["outbound|80||c"], nonce=got[ENDPOINT].nonce)
    assert names_of(await c.read()) == EDS  # c does not exist: the same set again
    xds.set_snapshot(world({"a": ["10.0.0.1", "10.0.0.3"], "b": ["10.0.0.2"]}), "v2")
    resp = await c.read()
    assert (resp.type_url, names_of(resp)) == (ENDPOINT, EDS)
    await c.ack(resp, EDS + ["outbound|80||c"])
    await c.send(LISTENER)  # nothing else changed: this answer is the next message
    assert (await c.read()).type_url == LISTENER
