"""Sidecar and Deployment analyzers (Istio's, beyond the issue's list; config-only too)."""

from tests.analyze.helpers import SERVICE_REVIEWS, pairs, texts


def sidecar(name: str, body: str, ns: str = "default") -> str:
    return f"""
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {{name: {name}, namespace: {ns}}}
spec:
{body}
"""


EGRESS = "  egress: [{hosts: ['./*']}]"


def test_sidecar_selectors():
    config = SERVICE_REVIEWS + sidecar("app", "  workloadSelector: {labels: {app: reviews}}\n" + EGRESS) + sidecar(
        "version", "  workloadSelector: {labels: {version: v1}}\n" + EGRESS) + sidecar(
        "ghost", "  workloadSelector: {labels: {app: ghost}}\n" + EGRESS) + sidecar(
        "default-1", EGRESS) + sidecar("default-2", EGRESS) + sidecar("alone", EGRESS, ns="other")
    assert pairs(config, codes={"IST0101", "IST0110", "IST0111"}) == [
        ("IST0101", "Sidecar default/ghost"),
        ("IST0110", "Sidecar default/app"),
        ("IST0110", "Sidecar default/version"),
        ("IST0111", "Sidecar default/default-1"),
        ("IST0111", "Sidecar default/default-2"),
    ]
    assert texts(config, "IST0110")[0] == (
        'The Sidecars [app version] in namespace "default" select the same workload pod "reviews-v1", '
        "which can lead to undefined behavior.")
    assert texts(config, "IST0111")[0] == (
        'The Sidecars [default-1 default-2] in namespace "default" have no workload selector, which can '
        "lead to undefined behavior.")


def service(name: str, ports: str) -> str:
    return f"""
---
apiVersion: v1
kind: Service
metadata: {{name: {name}}}
spec:
  selector: {{app: reviews}}
  ports: {ports}
"""


def test_services_disagreeing_about_a_deployments_ports():
    config = SERVICE_REVIEWS + service("reviews-udp", "[{name: udp, port: 9080, protocol: UDP}]") + service(
        "reviews-alt", "[{name: http-alt, port: 8080, targetPort: 9080}]")
    assert pairs(config, codes={"IST0116", "IST0137"}) == [
        ("IST0116", "Deployment default/reviews-v1"),
        ("IST0137", "Deployment default/reviews-v1"),
    ]
    assert texts(config, "IST0116") == [
        "This deployment reviews-v1 is associated with multiple services using port 9080 but different "
        "protocols: [default/reviews default/reviews-udp]"]
    assert texts(config, "IST0137") == [
        # port 9080 is claimed by reviews and reviews-udp; like Istio's map, the last one named wins
        'This deployment reviews-v1 is associated with multiple services [default/reviews-alt '
        'default/reviews-udp] using targetPort "9080" but different ports: [8080 9080].']
    assert pairs(SERVICE_REVIEWS, codes={"IST0116", "IST0137"}) == []
