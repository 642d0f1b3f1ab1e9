"""EnvoyFilter, Telemetry, AuthorizationPolicy and deprecation analyzers."""

from ketch.model import MeshConfig
from tests.analyze.helpers import SERVICE_REVIEWS, pairs, texts


def envoy_filter(name: str, patches: str, priority: str = "") -> str:
    return f"""
---
apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {{name: {name}}}
spec:
  {priority}
  configPatches:
{patches}
"""


def patch(apply_to: str, op: str, value: str = "{name: envoy.filters.http.lua}", proxy: str = "") -> str:
    match = f"\n    match: {{proxy: {{proxyVersion: '^1\\\\.2.*'}}}}" if proxy else ""
    return f"""  - applyTo: {apply_to}{match}
    patch: {{operation: {op}, value: {value}}}"""


def test_envoy_filter_operations():
    config = (
        envoy_filter("add-route", patch("HTTP_ROUTE", "ADD"))
        + envoy_filter("remove-route-config", patch("ROUTE_CONFIGURATION", "REMOVE"))
        + envoy_filter("replace-cluster", patch("CLUSTER", "REPLACE"))
        + envoy_filter("insert-before", patch("HTTP_FILTER", "INSERT_BEFORE"))
        + envoy_filter("insert-before-prioritised", patch("HTTP_FILTER", "INSERT_BEFORE"), "priority: 10")
        + envoy_filter("insert-first", patch("HTTP_FILTER", "INSERT_FIRST"))
        + envoy_filter("add-filter", patch("HTTP_FILTER", "ADD"))
        + envoy_filter("replace-filter", patch("NETWORK_FILTER", "REPLACE"))
    )
    assert pairs(config, codes={"IST0151", "IST0152", "IST0153", "IST0154", "IST0155"}) == [
        ("IST0151", "EnvoyFilter default/insert-before"),
        ("IST0151", "EnvoyFilter default/replace-filter"),
        ("IST0152", "EnvoyFilter default/replace-cluster"),
        ("IST0153", "EnvoyFilter default/add-route"),
        ("IST0154", "EnvoyFilter default/remove-route-config"),
    ]


def test_relative_patch_of_a_filter_patched_under_proxy_version():
    config = envoy_filter("a-versioned", patch("HTTP_FILTER", "INSERT_FIRST", proxy="yes")) + envoy_filter(
        "b-relative", patch("HTTP_FILTER", "MERGE"))
    assert pairs(config, codes={"IST0151", "IST0155"}) == [("IST0155", "EnvoyFilter default/b-relative")]


def telemetry(name: str, body: str, ns: str = "default") -> str:
    return f"""
---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {{name: {name}, namespace: {ns}}}
spec:
{body}
"""


def test_telemetry_providers_selectors_and_defaults():
    config = SERVICE_REVIEWS + telemetry("no-provider", """
  accessLogging: [{}]
""") + telemetry("disabled", """
  accessLogging: [{disabled: true}]
""", ns="quiet") + telemetry("sel-1", """
  selector: {matchLabels: {app: reviews}}
  metrics: [{providers: [{name: prometheus}]}]
""") + telemetry("sel-2", """
  selector: {matchLabels: {version: v1}}
  metrics: [{providers: [{name: prometheus}]}]
""") + telemetry("sel-none", """
  selector: {matchLabels: {app: ghost}}
""") + telemetry("default-2", """
  tracing: [{randomSamplingPercentage: 10}]
""")
    assert pairs(config, codes={"IST0157", "IST0159", "IST0160", "IST0101"}) == [
        ("IST0101", "Telemetry default/sel-none"),
        ("IST0157", "Telemetry default/no-provider"),
        ("IST0159", "Telemetry default/sel-1"),
        ("IST0159", "Telemetry default/sel-2"),
        ("IST0160", "Telemetry default/default-2"),
        ("IST0160", "Telemetry default/no-provider"),
    ]
    assert texts(config, "IST0157") == [
        'The Telemetry no-provider in namespace "default" with empty providers will be ignored.']
    assert texts(config, "IST0159")[0] == (
        'The Telemetries [sel-1 sel-2] in namespace "default" select the same workload pod "reviews-v1", '
        "which can lead to undefined behavior.")
    assert texts(config, "IST0160")[0] == (
        'The Telemetries [no-provider default-2] in namespace "default" have no workload selector, '
        "which can lead to undefined behavior.")
    with_default = MeshConfig.model_validate({"defaultProviders": {"accessLogging": ["envoy"]}})
    assert pairs(config, mesh=with_default, codes={"IST0157"}) == []


def authz(name: str, body: str, ns: str = "default") -> str:
    return f"""
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{name: {name}, namespace: {ns}}}
spec:
{body}
"""


def test_authorization_policies():
    config = SERVICE_REVIEWS + """
---
apiVersion: v1
kind: Namespace
metadata: {name: prod-frontend}
""" + authz("ok", """
  selector: {matchLabels: {app: reviews}}
  rules: [{from: [{source: {namespaces: [default, "prod-*", "*-frontend"]}}]}]
""") + authz("no-pods", """
  selector: {matchLabels: {app: ghost}}
""") + authz("empty-namespace", "  {}", ns="empty") + authz("mesh-wide", """
  selector: {matchLabels: {app: ghost}}
""", ns="istio-system") + authz("mesh-wide-all", "  action: ALLOW", ns="istio-system") + authz("bad-ns", """
  rules: [{from: [{source: {notNamespaces: [stagging]}}]}]
""")
    assert pairs(config, codes={"IST0127", "IST0101"}) == [
        ("IST0101", "AuthorizationPolicy default/bad-ns"),
        ("IST0127", "AuthorizationPolicy default/no-pods"),
        ("IST0127", "AuthorizationPolicy empty/empty-namespace"),
        ("IST0127", "AuthorizationPolicy istio-system/mesh-wide"),
    ]
    assert texts(config, "IST0101") == ['Referenced namespace not found: "stagging"']
    assert texts(config, "IST0127") == [
        "No matching workloads for this resource with the following labels: ",
        "No matching workloads for this resource with the following labels: app=ghost",
        "No matching workloads for this resource with the following labels: app=ghost",
    ]


def test_deprecated_fields():
    config = SERVICE_REVIEWS + """
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: old-fault}
spec:
  hosts: [reviews]
  http:
  - fault: {delay: {percent: 50, fixedDelay: 1s}}
    mirror: {host: reviews}
    mirrorPercent: 10
    route: [{destination: {host: reviews}}]
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: egress-proxy}
spec:
  outboundTrafficPolicy: {mode: ALLOW_ANY, egressProxy: {host: egress.example.com, port: {number: 443}}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ring}
spec:
  host: reviews
  trafficPolicy: {loadBalancer: {consistentHash: {httpHeaderName: x-user, minimumRingSize: 1024}}}
"""
    assert texts(config, "IST0002") == [
        "Deprecated: ConsistentHashLB.minimum_ring_size is deprecated; use ConsistentHashLB.ring_hash.minimum_ring_size",
        "Deprecated: HTTPRoute.fault.delay.percent is deprecated; use HTTPRoute.fault.delay.percentage",
        "Deprecated: HTTPRoute.mirror_percent is deprecated; use HTTPRoute.mirror_percentage",
        "Deprecated: OutboundTrafficPolicy.EgressProxy ignored",
    ]
    assert pairs(SERVICE_REVIEWS, codes={"IST0002"}) == []
