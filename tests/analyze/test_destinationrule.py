"""DestinationRule analyzers: unverified TLS origination, unknown hosts, empty subsets."""

from tests.analyze.helpers import SERVICE_REVIEWS, pairs, texts


def dr(name: str, body: str) -> str:
    return f"""
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: {name}}}
spec:
{body}
"""


def test_tls_without_ca_certificates():
    config = SERVICE_REVIEWS + dr("simple", """
  host: reviews
  trafficPolicy:
    tls: {mode: SIMPLE}
    portLevelSettings:
    - port: {number: 9080}
      tls: {mode: MUTUAL, clientCertificate: /c.pem, privateKey: /k.pem}
    - port: {number: 9443}
      tls: {mode: SIMPLE, caCertificates: /ca.pem}
""") + dr("verified", """
  host: reviews
  trafficPolicy:
    tls: {mode: SIMPLE, caCertificates: /ca.pem}
""") + dr("by-credential", """
  host: reviews
  workloadSelector: {matchLabels: {istio: ingressgateway}}
  trafficPolicy:
    tls: {mode: SIMPLE, credentialName: reviews-cacert}
""") + dr("credential-for-all", """
  host: reviews
  trafficPolicy:
    tls: {mode: SIMPLE, credentialName: reviews-cacert}
""") + dr("istio-mutual", """
  host: reviews
  trafficPolicy:
    tls: {mode: ISTIO_MUTUAL}
""")
    assert pairs(config, codes={"IST0128", "IST0129"}) == [
        ("IST0128", "DestinationRule default/credential-for-all"),
        ("IST0128", "DestinationRule default/simple"),
        ("IST0129", "DestinationRule default/simple"),
    ]
    assert texts(config, "IST0128")[1:] == [
        "DestinationRule default/simple in namespace default has TLS mode set to SIMPLE but no "
        "caCertificates are set to validate server identity for host: reviews"
    ]
    assert texts(config, "IST0129") == [
        "DestinationRule default/simple in namespace default has TLS mode set to MUTUAL but no "
        "caCertificates are set to validate server identity for host: reviews at port number:9080"
    ]


def test_unknown_host_and_subsets_selecting_nothing():
    config = SERVICE_REVIEWS + dr("ghost", """
  host: ghost
  subsets: [{name: v1, labels: {version: v1}}]
""") + dr("reviews-extra", """
  host: reviews.default.svc.cluster.local
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
  - {name: wrong-app, labels: {app: ratings}}
""")
    assert pairs(config, codes={"IST0173", "IST0174"}) == [
        ("IST0173", "DestinationRule default/reviews-extra"),
        ("IST0173", "DestinationRule default/reviews-extra"),
        ("IST0174", "DestinationRule default/ghost"),
    ]
    assert texts(config, "IST0173") == [
        "The Subset v2 defined in the DestinationRule does not select any pods. Which may lead to "
        "503 UH (NoHealthyUpstream).",
        "The Subset wrong-app defined in the DestinationRule does not select any pods. Which may lead "
        "to 503 UH (NoHealthyUpstream).",
    ]
    assert texts(config, "IST0174") == [
        "The host ghost defined in the DestinationRule does not match any services in the mesh."
    ]


def test_workload_entries_count_as_workloads_for_subsets():
    config = """
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: vm}
spec:
  hosts: [vm.example.com]
  addresses: [10.9.0.1]
  ports: [{number: 80, name: http, protocol: HTTP}]
  workloadSelector: {labels: {app: vm}}
  resolution: STATIC
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: vm-1}
spec: {address: 10.9.0.2, labels: {app: vm, version: v1}}
""" + dr("vm", """
  host: vm.example.com
  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]
""")
    assert texts(config, "IST0173") == [
        "The Subset v2 defined in the DestinationRule does not select any pods. Which may lead to "
        "503 UH (NoHealthyUpstream)."
    ]


def test_a_deployment_scaled_to_zero_has_no_pods():
    scaled = SERVICE_REVIEWS.replace("metadata: {name: reviews-v1}\nspec:\n", "metadata: {name: reviews-v1}\nspec:\n  replicas: 0\n")
    assert "replicas: 0" in scaled
    assert pairs(scaled, codes={"IST0173"}) == [("IST0173", "DestinationRule default/reviews")]
    assert pairs(SERVICE_REVIEWS, codes={"IST0173"}) == []
