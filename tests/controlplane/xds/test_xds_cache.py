"""GenerationCache: encodings of message objects handed over from one snapshot version to the next."""

from __future__ import annotations

from types import SimpleNamespace

from envoy.config.endpoint.v3 import endpoint_pb2

from ketch.controlplane.xds.cache import Encoded, GenerationCache, ResourceSet
from ketch.controlplane.xds.types import ENDPOINT


def test_unchanged_message_objects_are_not_encoded_again_in_the_next_version() -> None:
    a = endpoint_pb2.ClusterLoadAssignment(cluster_name="a")
    b1 = endpoint_pb2.ClusterLoadAssignment(cluster_name="b")
    b2 = endpoint_pb2.ClusterLoadAssignment(cluster_name="b")
    b2.policy.overprovisioning_factor.value = 140
    outputs = {"1": {"a": a, "b": b1}, "2": {"a": a, "b": b2}, "3": {"b": b2}, "4": {"a": a, "b": b2}}
    cache = GenerationCache(lambda snapshot, proxy, type_url, names: outputs[snapshot])
    proxy = SimpleNamespace(scope_key=lambda: "k")
    one = cache.resources("1", "1", proxy, ENDPOINT)
    two = cache.resources("2", "2", proxy, ENDPOINT)
    assert two["a"] is one["a"], "the same object keeps its encoding across versions"
    assert two["b"] is not one["b"] and two["b"].digest != one["b"].digest
    three = cache.resources("3", "3", proxy, ENDPOINT)
    assert three["b"] is two["b"]
    four = cache.resources("4", "4", proxy, ENDPOINT)  # a skipped a version: encoded afresh
    assert four["a"] is not one["a"] and four["a"].digest == one["a"].digest


def test_changes_since_is_computed_once_per_pair_of_sets() -> None:
    def enc(name: str, port: int) -> Encoded:
        cla = endpoint_pb2.ClusterLoadAssignment(cluster_name=name)
        cla.endpoints.add().lb_endpoints.add().endpoint.address.socket_address.port_value = port
        return Encoded.of(name, ENDPOINT, cla)

    old = ResourceSet({"a": enc("a", 1), "b": enc("b", 2), "gone": enc("gone", 3)})
    new = ResourceSet({"a": old["a"], "b": enc("b", 9), "c": enc("c", 4)})
    changed, gone = new.changes_since(old)
    assert [r.name for r in changed] == ["b", "c"] and gone == {"gone"}
    again = new.changes_since(old)
    assert again[0] is changed, "a second proxy sent the same set shares the comparison"
    same = ResourceSet({"a": enc("a", 1), "b": enc("b", 9), "c": enc("c", 4)})  # equal bytes
    assert same.changes_since(new) == ((), frozenset())
