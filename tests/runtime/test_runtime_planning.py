"""Pure planning: manifests, names and addresses, hosts files, capture rules, backoff."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from ketch.runtime import manifest, netplan
from ketch.runtime.backoff import Backoff
from ketch.runtime.state import PodRecord, RuntimeRecord, ServiceRecord, StateDir, list_pods, \
    list_services

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_bookinfo_manifest_parses_into_pods():
    m = manifest.parse(manifest.read_documents([EXAMPLES / "bookinfo" / "bookinfo.yaml"]))
    assert sorted(d.name for d in m.deployments) == [
        "details-v1", "productpage-v1", "ratings-v1", "reviews-v1", "reviews-v2", "reviews-v3"]
    assert {s.name for s in m.services} == {"details", "ratings", "reviews", "productpage"}
    assert all(p.port == 9080 for s in m.services for p in s.ports)
    reviews_v2 = next(d for d in m.deployments if d.name == "reviews-v2")
    assert reviews_v2.labels == {"app": "reviews", "version": "v2"}
    assert reviews_v2.service_account == "bookinfo-reviews"
    assert ("SERVICE_VERSION", "v2") in reviews_v2.containers[0].env
    assert reviews_v2.containers[0].command[-1] == "ketch.samples.bookinfo.reviews"
    pods = manifest.pods_for(reviews_v2, "salt")
    assert len(pods) == 1 and pods[0].name.startswith("reviews-v2-")
    assert manifest.pods_for(reviews_v2, "salt") == pods  # stable for one runtime
    assert manifest.pods_for(reviews_v2, "other")[0].name != pods[0].name


def test_instance_ports_follow_service_target_ports():
    docs = manifest.read_documents([EXAMPLES / "httpbin" / "httpbin.yaml"])
    m = manifest.parse(docs)
    pod = manifest.pods_for(m.deployments[0], "s")[0]
    assert manifest.instance_ports(pod, m.services) == {"http": 8080}
    other = manifest.ServiceSpec("x", "other-ns", (manifest.ServicePortSpec("http", 1, 2),),
                                 {"app": "httpbin"})
    assert manifest.instance_ports(pod, [other]) == {}


def test_container_without_command_is_rejected():
    doc = {"kind": "Deployment", "metadata": {"name": "d"},
           "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "x"}]}}}}
    with pytest.raises(manifest.ManifestError, match="no command"):
        manifest.parse([doc])


def test_readiness_probe_named_port():
    doc = {"kind": "Deployment", "metadata": {"name": "d", "namespace": "ns"},
           "spec": {"replicas": 2, "template": {"metadata": {"labels": {"app": "d"}}, "spec": {
               "containers": [{"name": "c", "command": ["run"], "ports": [
                   {"name": "web", "containerPort": 8000}],
                   "readinessProbe": {"httpGet": {"path": "/ready", "port": "web"}}}]}}}}
    d = manifest.parse([doc]).deployments[0]
    assert d.replicas == 2 and d.namespace == "ns"
    assert d.containers[0].readiness == manifest.ReadinessProbe(port=8000, path="/ready")


def test_pod_network_plan_names_fit_and_carry_prefix():
    net = netplan.MeshNetwork("kab12c", ipaddress.ip_network("10.233.7.0/24"))
    assert net.bridge == "kab12cbr" and net.gateway == "10.233.7.1"
    pod = netplan.plan_pod(net, "reviews-v1-abcde", 0)
    assert pod.ip == "10.233.7.2" and pod.netns == "kab12c-reviews-v1-abcde"
    last = netplan.plan_pod(net, "p", 252)
    assert last.ip == "10.233.7.254" and len(last.veth_host) <= 15
    with pytest.raises(ValueError):
        netplan.plan_pod(net, "p", 253)
    for name in (net.bridge, pod.netns, pod.veth_host, pod.veth_pod, last.veth_host):
        assert netplan.owned_by("kab12c", name), name
    for name in ("kab12d-x", "eth0", "kab12cbridge", "kab12chzz", "kab12"):
        assert not netplan.owned_by("kab12c", name), name


def test_pod_up_commands_move_veth_and_route_default_via_bridge():
    net = netplan.MeshNetwork("kx1", ipaddress.ip_network("10.233.9.0/24"))
    pod = netplan.plan_pod(net, "a", 3)
    cmds = [" ".join(c) for c in netplan.pod_up(net, pod)]
    assert "ip netns add kx1-a" in cmds
    assert f"ip link set {pod.veth_pod} netns kx1-a" in cmds
    assert "ip netns exec kx1-a ip addr add 10.233.9.5/24 dev eth0" in cmds
    assert cmds[-1] == "ip netns exec kx1-a ip route add default via 10.233.9.1"


def test_hosts_file_names_services_by_vip():
    svc = manifest.ServiceSpec("reviews", "default", (manifest.ServicePortSpec("http", 9080,
                                                                               9080),))
    other = manifest.ServiceSpec("db", "data", ())
    pod = netplan.PodNetwork("productpage-v1-x", "k-p", "h", "p", "10.233.1.2")
    text = netplan.hosts_file(pod, "default", [svc, other], lambda h: f"VIP({h})")
    assert "10.233.1.2\tproductpage-v1-x" in text
    line = next(ln for ln in text.splitlines() if "reviews" in ln)
    assert line.split("\t")[0] == "VIP(reviews.default.svc.cluster.local)"
    assert set(line.split("\t")[1].split()) == {
        "reviews", "reviews.default", "reviews.default.svc", "reviews.default.svc.cluster.local"}
    db = next(ln for ln in text.splitlines() if "db." in ln)
    assert " db " not in f" {db.split(chr(9))[1]} "  # short name only in its own namespace


def test_capture_rules_follow_istio_iptables():
    rules = netplan.capture_rules()
    lines = rules.splitlines()
    assert lines[0] == "*nat" and lines[-1] == "COMMIT"
    assert "-A ISTIO_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006" in lines
    assert "-A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 15001" in lines
    assert "-A ISTIO_OUTPUT -m owner --uid-owner 1337 -j RETURN" in lines
    for port in (15000, 15021, 15090):
        assert f"-A ISTIO_INBOUND -p tcp --dport {port} -j RETURN" in lines
    # exclusions come before the catch-all redirect, in both directions
    assert lines.index("-A ISTIO_INBOUND -p tcp -j ISTIO_IN_REDIRECT") > max(
        i for i, ln in enumerate(lines) if "--dport" in ln)
    assert lines[-2] == "-A ISTIO_OUTPUT -j ISTIO_REDIRECT"


def test_choose_subnet_skips_used():
    used = [ipaddress.ip_network("10.233.1.0/24"), ipaddress.ip_network("10.233.2.0/23")]
    assert str(netplan.choose_subnet(used)) == "10.233.4.0/24"


def test_backoff_doubles_caps_and_resets():
    b = Backoff(base=1, cap=8, reset_after=60)
    assert [b.next_delay(1) for _ in range(5)] == [1, 2, 4, 8, 8]
    assert b.next_delay(120) == 1


def test_state_round_trip(tmp_path):
    state = StateDir(tmp_path)
    state.ensure()
    state.write_runtime(RuntimeRecord(prefix="kabc", supervisor_pid=1, mode="pod",
                                      published=("127.0.0.1:8080",)))
    assert state.read_runtime().published == ("127.0.0.1:8080",)
    state.write_pod(PodRecord(name="a-1", namespace="default", deployment="a", ip="10.0.0.2",
                              phase="Running", ready=True))
    state.write_services([ServiceRecord("a", "default", "10.96.0.5", ("http:80->8080",))])
    pods = list_pods(tmp_path)
    assert pods[0]["name"] == "a-1" and pods[0]["ready"] is True
    assert list_services(tmp_path)[0]["vip"] == "10.96.0.5"
    state.clear_records()
    assert list_pods(tmp_path) == [] and list_services(tmp_path) == []


def test_pod_and_service_items_in_kubernetes_shape(tmp_path):
    from ketch.runtime.state import pod_items, service_items

    state = StateDir(tmp_path)
    state.write_pod(PodRecord(name="a-1", namespace="default", deployment="a", ip="10.0.0.2",
                              labels={"app": "a"}, phase="Restarting", restarts=2,
                              pids={"sidecar": 10, "app": 11}))
    state.write_pod(PodRecord(name="g-1", namespace="istio-system", deployment="g",
                              ip="10.0.0.3"))
    state.write_services([ServiceRecord("a", "default", "10.96.0.5", ("http:80->8080",))])
    items = pod_items(tmp_path, namespace="default")
    assert [i["metadata"]["name"] for i in items] == ["a-1"]
    assert items[0]["status"]["phase"] == "Restarting" and items[0]["status"]["podIP"] == \
        "10.0.0.2"
    assert items[0]["status"]["containerStatuses"][0] == {"name": "app", "ready": False,
                                                          "restartCount": 2}
    assert len(pod_items(tmp_path)) == 2 and pod_items(tmp_path, name="zz") == []
    svc = service_items(tmp_path)[0]
    assert svc["spec"] == {"clusterIP": "10.96.0.5",
                           "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}


def test_gateway_ports_published_for_gateways_selecting_the_ingress():
    from ketch.runtime.supervisor import gateway_ports

    samples = Path(__file__).resolve().parents[3] / "shared" / "istio-samples"
    if not samples.is_dir():
        pytest.skip(f"Istio samples not found at {samples}")
    docs = manifest.read_documents([samples / "bookinfo" / "networking" /
                                    "bookinfo-gateway.yaml",
                                    samples / "tcp-echo" / "tcp-echo-all-v1.yaml"])
    other = {"kind": "Gateway", "spec": {"selector": {"istio": "egressgateway"},
                                         "servers": [{"port": {"number": 443}}]}}
    assert gateway_ports([*docs, other]) == [8080, 31400]
