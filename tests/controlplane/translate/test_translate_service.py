from __future__ import annotations

import ipaddress

import pytest

from ketch.controlplane.instance import WorkloadInstance
from ketch.controlplane.translate.service import (
    Protocol, Resolution, endpoints_for, protocol_of, service_vip, services_from_kubernetes,
    services_from_service_entry,
)
from ketch.controlplane.translate.testing import load_configs


@pytest.mark.parametrize("name,app_protocol,want", [
    ("http", None, Protocol.HTTP),
    ("http-web", None, Protocol.HTTP),
    ("http2", None, Protocol.HTTP2),
    ("grpc", None, Protocol.GRPC),
    ("grpc-web", None, Protocol.GRPC_WEB),
    ("grpc-internal", None, Protocol.GRPC),
    ("https-admin", None, Protocol.HTTPS),
    ("tcp", None, Protocol.TCP),
    ("tls-db", None, Protocol.TLS),
    ("mongo", None, Protocol.MONGO),
    ("redis", None, Protocol.REDIS),
    ("mysql-primary", None, Protocol.MYSQL),
    ("web", None, Protocol.TCP),  # unknown prefix: opaque
    (None, None, Protocol.TCP),
    ("web", "http", Protocol.HTTP),  # appProtocol wins
    ("http", "grpc", Protocol.GRPC),
    ("api", "kubernetes.io/h2c", Protocol.HTTP2),
    ("HTTP", None, Protocol.HTTP),
])
def test_protocol_of(name, app_protocol, want) -> None:
    assert protocol_of(name, app_protocol) is want


def test_service_vip_is_stable_and_in_range() -> None:
    net = ipaddress.ip_network("10.96.0.0/12")
    seen = set()
    for i in range(500):
        host = f"svc{i}.default.svc.cluster.local"
        vip = service_vip(host)
        assert vip == service_vip(host) == service_vip(host.upper())
        addr = ipaddress.ip_address(vip)
        assert addr in net and vip not in ("10.96.0.0", "10.96.0.1", "10.96.0.10", "10.111.255.255")
        seen.add(vip)
    assert len(seen) >= 495  # hashing spreads hostnames over a million addresses


def _one(text: str):
    (res,) = load_configs(text)
    return res


def test_kubernetes_service_ports_vip_and_export() -> None:
    svc, = services_from_kubernetes(_one("""
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: shop
  annotations: {networking.istio.io/exportTo: ".,ops"}
spec:
  clusterIP: 10.0.0.42
  selector: {app: web}
  ports:
  - {name: http, port: 80, targetPort: 8080}
  - {name: grpc-api, port: 7070, targetPort: grpc}
  - {name: metrics, port: 9100, appProtocol: http}
"""))
    assert svc.hostname == "web.shop.svc.cluster.local" and svc.addresses == ("10.0.0.42",)
    assert [(p.name, p.number, p.protocol, p.target_port) for p in svc.ports] == [
        ("http", 80, Protocol.HTTP, 8080), ("grpc-api", 7070, Protocol.GRPC, "grpc"),
        ("metrics", 9100, Protocol.HTTP, None)]
    assert svc.export_to == frozenset({".", "ops"})
    assert dict(svc.selector) == {"app": "web"}


def test_kubernetes_service_without_cluster_ip_gets_the_hostname_vip() -> None:
    svc, = services_from_kubernetes(_one("""
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80}]
"""))
    assert svc.vip == service_vip("web.default.svc.cluster.local")


def test_target_ports_by_number_name_and_default() -> None:
    svc, = services_from_kubernetes(_one("""
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports:
  - {name: http, port: 80, targetPort: 8080}
  - {name: grpc, port: 7070, targetPort: grpc-port}
  - {name: tcp, port: 6379}
"""))
    a = WorkloadInstance("a", "default", "10.0.0.1", {"app": "web"}, ports={"grpc-port": 7171})
    b = WorkloadInstance("b", "default", "10.0.0.2", {"app": "web"})
    other_ns = WorkloadInstance("c", "other", "10.0.0.3", {"app": "web"})
    not_selected = WorkloadInstance("d", "default", "10.0.0.4", {"app": "db"})
    pool = [a, b, other_ns, not_selected]
    http, grpc, tcp = svc.ports
    assert [(e.ip, e.port) for e in endpoints_for(svc, http, pool)] == [("10.0.0.1", 8080), ("10.0.0.2", 8080)]
    # a named targetPort needs the instance to declare it
    assert [(e.ip, e.port) for e in endpoints_for(svc, grpc, pool)] == [("10.0.0.1", 7171)]
    assert [(e.ip, e.port) for e in endpoints_for(svc, tcp, pool)] == [("10.0.0.1", 6379), ("10.0.0.2", 6379)]


@pytest.mark.parametrize("resolution,want", [
    ("NONE", Resolution.PASSTHROUGH), ("STATIC", Resolution.CLIENT_SIDE_LB),
    ("DNS", Resolution.DNS), ("DNS_ROUND_ROBIN", Resolution.DNS_ROUND_ROBIN),
])
def test_service_entry_resolution(resolution: str, want: Resolution) -> None:
    endpoints = "  endpoints: [{address: 10.9.0.1}]\n" if resolution == "STATIC" else ""
    services = services_from_service_entry(_one(f"""
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: ext, namespace: shop}}
spec:
  hosts: [a.example.com, b.example.com]
  ports: [{{number: 443, name: tls, protocol: TLS}}]
  resolution: {resolution}
{endpoints}"""))
    assert [s.hostname for s in services] == ["a.example.com", "b.example.com"]
    assert all(s.resolution is want and s.mesh_external for s in services)
    assert services[0].ports[0].protocol is Protocol.TLS
    assert services[0].vip == service_vip("a.example.com")


def test_service_entry_endpoints_use_named_ports() -> None:
    svc, = services_from_service_entry(_one("""
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: db}
spec:
  hosts: [db.internal]
  addresses: [192.168.1.1]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 5432, name: pg, protocol: TCP, targetPort: 6432}]
  endpoints:
  - {address: 10.9.0.1}
  - {address: 10.9.0.2, ports: {pg: 7432}, labels: {role: replica}}
"""))
    assert svc.vip == "192.168.1.1" and not svc.mesh_external
    eps = endpoints_for(svc, svc.ports[0], [])
    assert [(e.ip, e.port, dict(e.instance.labels)) for e in eps] == [
        ("10.9.0.1", 6432, {}), ("10.9.0.2", 7432, {"role": "replica"})]
