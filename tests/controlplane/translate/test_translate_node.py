from __future__ import annotations

import pytest
from envoy.config.core.v3 import base_pb2
from google.protobuf import struct_pb2

from ketch.controlplane.node import InterceptionMode, NodeError, ProxyNode, ProxyType


def _node(node_id: str, meta: dict) -> base_pb2.Node:
    s = struct_pb2.Struct()
    s.update(meta)
    return base_pb2.Node(id=node_id, cluster="reviews.default", metadata=s)


def test_sidecar_node_from_istio_agent_shape() -> None:
    node = _node("sidecar~10.1.0.5~reviews-v2-abc.default~default.svc.cluster.local", {
        "NAMESPACE": "default", "LABELS": {"app": "reviews", "version": "v2"},
        "SERVICE_ACCOUNT": "bookinfo-reviews", "WORKLOAD_NAME": "reviews-v2",
        "INSTANCE_IPS": "10.1.0.5,fd00::5", "INTERCEPTION_MODE": "REDIRECT",
        "CLUSTER_ID": "Kubernetes", "MESH_ID": "cluster.local"})
    p = ProxyNode.from_node(node)
    assert p.type is ProxyType.SIDECAR
    assert (p.ip, p.pod_name, p.namespace) == ("10.1.0.5", "reviews-v2-abc", "default")
    assert dict(p.labels) == {"app": "reviews", "version": "v2"}
    assert p.service_account == "bookinfo-reviews" and p.workload_name == "reviews-v2"
    assert p.instance_ips == ("10.1.0.5", "fd00::5")
    assert p.interception_mode is InterceptionMode.REDIRECT
    assert p.dns_domain == "default.svc.cluster.local"


@pytest.mark.parametrize("node_id,meta,kind,mode", [
    ("router~10.0.0.9~ingress-1.istio-system~istio-system.svc.cluster.local", {}, ProxyType.ROUTER,
     InterceptionMode.REDIRECT),
    ("sidecar~10.0.0.9~client.default~default.svc.cluster.local", {"GENERATOR": "grpc"},
     ProxyType.GRPC, InterceptionMode.REDIRECT),
    ("sidecar~127.0.0.1~app.default~default.svc.cluster.local", {"INTERCEPTION_MODE": "NONE"},
     ProxyType.SIDECAR, InterceptionMode.NONE),
    ("sidecar~127.0.0.1~app.default~default.svc.cluster.local", {"INTERCEPTION_MODE": "TPROXY"},
     ProxyType.SIDECAR, InterceptionMode.REDIRECT),
])
def test_proxy_types_and_modes(node_id: str, meta: dict, kind: ProxyType, mode: InterceptionMode) -> None:
    p = ProxyNode.from_id(node_id, meta)
    assert p.type is kind and p.interception_mode is mode


def test_namespace_from_id_when_metadata_lacks_it() -> None:
    p = ProxyNode.from_id("sidecar~10.0.0.1~pod-x.team-a~team-a.svc.cluster.local", {})
    assert p.namespace == "team-a" and p.pod_name == "pod-x"


@pytest.mark.parametrize("bad", ["sidecar~1.2.3.4", "gizmo~1.2.3.4~a.b~b.svc.cluster.local",
                                 "grpc~1.2.3.4~a.b~b.svc.cluster.local"])
def test_bad_ids_are_rejected(bad: str) -> None:
    with pytest.raises(NodeError):
        ProxyNode.from_id(bad, {})


def test_scope_key_covers_translation_inputs() -> None:
    base = "sidecar~10.0.0.1~a.default~default.svc.cluster.local"
    a = ProxyNode.from_id(base, {"LABELS": {"app": "x"}})
    assert a.scope_key() == ProxyNode.from_id(base, {"LABELS": {"app": "x"}}).scope_key()
    assert a.scope_key() != ProxyNode.from_id(base, {"LABELS": {"app": "y"}}).scope_key()
    assert a.scope_key() != ProxyNode.from_id(base, {"LABELS": {"app": "x"},
                                                     "NAMESPACE": "other"}).scope_key()
    assert a.scope_key() != ProxyNode.from_id(base, {"LABELS": {"app": "x"},
                                                     "INTERCEPTION_MODE": "NONE"}).scope_key()
    assert a.scope_key() != ProxyNode.from_id(base, {"LABELS": {"app": "x"},
                                                     "GENERATOR": "grpc"}).scope_key()
    hash(a)


def test_a_plain_grpc_bootstrap_id_is_served() -> None:
    p = ProxyNode.from_id("my-client", {"GENERATOR": "grpc", "NAMESPACE": "shop"})
    assert p.type is ProxyType.GRPC and p.namespace == "shop" and p.pod_name == "my-client"
    assert p.id == "my-client"
    plain = ProxyNode.from_id("another", {})
    assert plain.type is ProxyType.SIDECAR and plain.namespace == "default"
