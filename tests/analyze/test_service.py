"""Service and ServiceEntry analyzers."""

import pytest

from ketch.analyze.analyzers.service import port_protocol
from ketch.model import MeshConfig
from tests.analyze.helpers import pairs, texts


@pytest.mark.parametrize(
    ("name", "protocol", "app_protocol", "expected"),
    [
        ("http", "", "", "http"),
        ("http-web", "TCP", "", "http"),
        ("HTTP2-x", "", "", "http2"),
        ("grpc-web-ui", "", "", "grpc-web"),
        ("tcp", "", "", "tcp"),
        ("dns", "UDP", "", "udp"),
        ("web", "", "", None),
        ("", "", "", None),
        ("web", "", "https", "https"),
        ("web", "", "kubernetes.io/h2c", "http2"),
    ],
)
def test_port_protocol_follows_istio(name, protocol, app_protocol, expected):
    assert port_protocol(name, protocol, app_protocol) == expected


def test_port_names_not_following_the_convention():
    config = """
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports:
  - {name: web, port: 80, targetPort: 8080}
  - {name: http-ok, port: 82}
  - {name: custom, port: 83, appProtocol: grpc}
---
apiVersion: v1
kind: Service
metadata: {name: unnamed}
spec:
  selector: {app: unnamed}
  ports: [{port: 81}]
---
apiVersion: v1
kind: Service
metadata: {name: istiod, namespace: istio-system, labels: {istio: pilot}}
spec:
  selector: {app: istiod}
  ports: [{name: grpc-xds, port: 15010}, {name: webhook, port: 443}]
---
apiVersion: v1
kind: Service
metadata: {name: ext}
spec:
  type: ExternalName
  externalName: example.com
  ports: [{name: weird, port: 80}]
"""
    assert pairs(config, codes={"IST0118"}) == [("IST0118", "Service default/unnamed"),
                                                ("IST0118", "Service default/web")]
    assert texts(config, "IST0118") == [
        "Port name  (port: 81, targetPort: 81) doesn't follow the naming convention of Istio port.",
        "Port name web (port: 80, targetPort: 8080) doesn't follow the naming convention of Istio port.",
    ]


SE = """
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: {name}, namespace: {ns}}}
spec:
  hosts: [{host}]
  exportTo: {export}
  ports: {ports}
  resolution: DNS
"""


def se(name, host, ports, ns="default", export="['*']"):
    return SE.format(name=name, host=host, ports=ports, ns=ns, export=export)


def test_service_entry_addresses_required_for_tcp():
    two_ports = "\n  - {number: 5432, name: tcp-pg, protocol: TCP}\n  - {number: 5433, name: x}"
    config = se("db", "db.example.com", two_ports) + se(
        "web", "web.example.com", "[{number: 443, name: https, protocol: HTTPS}]") + """
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: with-vip}
spec:
  hosts: [vip.example.com]
  addresses: [240.0.0.1]
  ports: [{number: 9000, name: tcp, protocol: TCP}]
  resolution: DNS
"""
    # one message per TCP port (the TCP one and the one without protocol), at the port's line
    assert pairs(config, codes={"IST0134"}) == [("IST0134", "ServiceEntry default/db")] * 2
    auto = MeshConfig.model_validate({"defaultConfig": {"proxyMetadata": {
        "ISTIO_META_DNS_CAPTURE": "true", "ISTIO_META_DNS_AUTO_ALLOCATE": "true"}}})
    assert pairs(config, mesh=auto, codes={"IST0134"}) == []


def test_service_entries_with_conflicting_protocols():
    config = se("a", "api.example.com", "[{number: 443, name: https, protocol: HTTPS}]", ns="ns1") + se(
        "b", "api.example.com", "[{number: 443, name: tls, protocol: TLS}]", ns="ns2") + se(
        "c", "api.example.com", "[{number: 443, name: https, protocol: https}]", ns="ns3") + se(
        "private1", "db.example.com", "[{number: 1, name: tcp, protocol: TCP}]", ns="ns1", export="['.']") + se(
        "private2", "db.example.com", "[{number: 1, name: http, protocol: HTTP}]", ns="ns2", export="['.']")
    got = pairs(config, codes={"IST0177"})
    assert got == [("IST0177", "ServiceEntry ns1/a"), ("IST0177", "ServiceEntry ns2/b"),
                   ("IST0177", "ServiceEntry ns3/c")]
    assert set(texts(config, "IST0177")) == {
        "The ServiceEntries ns1/a, ns2/b, ns3/c define the same host api.example.com and port 443 "
        "with conflicting protocols: HTTPS, TLS."
    }
