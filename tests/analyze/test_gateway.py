"""Gateway analyzers: selectors matching no workload, ports not on the Service, conflicts."""

from tests.analyze.helpers import pairs, texts

CODES = {"IST0101", "IST0162", "IST0145"}


def gateway(name: str, selector: str, port: int, hosts: str, ns: str = "default") -> str:
    return f"""
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: {name}, namespace: {ns}}}
spec:
  selector: {selector}
  servers:
  - port: {{number: {port}, name: http, protocol: HTTP}}
    hosts: {hosts}
"""


def test_default_ingress_gateway_is_assumed():
    config = gateway("on-target-port", "{istio: ingressgateway}", 8443, "['*']") + gateway(
        "on-service-port", "{istio: ingressgateway}", 443, "[a.example.com]") + gateway(
        "no-workload", "{istio: egressgateway}", 80, "[b.example.com]") + gateway(
        "closed-port", "{istio: ingressgateway}", 9999, "[c.example.com]")
    # Like Istio, the gateway listens on the Service's targetPort (443 -> 8443), not the port.
    assert pairs(config, codes=CODES) == [
        ("IST0101", "Gateway default/no-workload"),
        ("IST0162", "Gateway default/closed-port"),
        ("IST0162", "Gateway default/on-service-port"),
    ]
    assert texts(config, "IST0101") == ['Referenced selector not found: "istio=egressgateway"']
    assert texts(config, "IST0162")[1:] == [
        "The gateway is listening on a target port (port 9999) that is not defined in the Service "
        "associated with its workload instances (Pod selector istio=ingressgateway). If you need to "
        "access the gateway port through the gateway Service, it will not be available."
    ]


OWN_GATEWAY = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: my-gateway, namespace: edge}
spec:
  selector: {matchLabels: {istio: my-gateway}}
  template:
    metadata: {labels: {istio: my-gateway}}
    spec: {containers: [{name: proxy, image: auto}]}
---
apiVersion: v1
kind: Service
metadata: {name: my-gateway, namespace: edge}
spec:
  selector: {istio: my-gateway}
  ports: [{name: http, port: 80, targetPort: 8080}, {name: udp-dns, port: 53, protocol: UDP}]
"""


def test_own_gateway_workload_replaces_the_assumed_one():
    config = OWN_GATEWAY + gateway("mine", "{istio: my-gateway}", 8080, "['*']", ns="edge") + gateway(
        "default-one", "{istio: ingressgateway}", 8080, "['*']", ns="edge") + gateway(
        "udp-only", "{istio: my-gateway}", 53, "['*']", ns="edge")
    assert pairs(config, codes=CODES) == [
        ("IST0101", "Gateway edge/default-one"),
        ("IST0162", "Gateway edge/udp-only"),
    ]


def test_conflicting_gateways():
    config = gateway("alpha", "{istio: ingressgateway}", 80, "['*.example.com']") + gateway(
        "beta", "{istio: ingressgateway}", 80, "[shop.example.com]") + gateway(
        "other-port", "{istio: ingressgateway}", 443, "[shop.example.com]") + gateway(
        "other-host", "{istio: ingressgateway}", 80, "[shop.example.org]")
    assert pairs(config, codes={"IST0145"}) == [
        ("IST0145", "Gateway default/alpha"),
        ("IST0145", "Gateway default/beta"),
    ]
    assert texts(config, "IST0145") == [
        "Conflict with gateways default/alpha (workload selector istio=ingressgateway, port 80, "
        "hosts shop.example.com).",
        "Conflict with gateways default/beta (workload selector istio=ingressgateway, port 80, "
        "hosts *.example.com).",
    ]
