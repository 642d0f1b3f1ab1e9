"""VirtualService analyzers: each test plants mistakes and asserts exactly what is reported."""

from tests.analyze.helpers import SERVICE_REVIEWS, pairs, texts

VS_CODES = {"IST0101", "IST0112", "IST0132", "IST0165", "IST0109", "IST0149", "IST0130", "IST0131"}


def vs(name: str, body: str, ns: str = "default") -> str:
    return f"""
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: {name}, namespace: {ns}}}
spec:
{body}
"""


def test_missing_subset_host_port_and_mirror_subset():
    config = SERVICE_REVIEWS + vs("good", """
  hosts: [reviews]
  http:
  - mirror: {host: reviews, subset: v1}
    route: [{destination: {host: reviews, subset: v1, port: {number: 9080}}}]
""") + vs("bad-subset", """
  hosts: [reviews.other]
  http: [{route: [{destination: {host: reviews, subset: v9}}]}]
""") + vs("bad-mirror", """
  hosts: [reviews.mirror]
  http:
  - mirror: {host: reviews, subset: v7}
    route: [{destination: {host: reviews}}]
""") + vs("bad-host", """
  hosts: [nothing]
  http:
  - mirror: {host: ghost-mirror}
    route: [{destination: {host: ghost}}]
  tcp: [{route: [{destination: {host: ghost-tcp, port: {number: 1}}}]}]
""") + vs("bad-port", """
  hosts: [reviews.port]
  http: [{route: [{destination: {host: reviews.default.svc.cluster.local, port: {number: 9999}}}]}]
""")
    assert pairs(config, codes=VS_CODES) == [
        ("IST0101", "VirtualService default/bad-host"),
        ("IST0101", "VirtualService default/bad-host"),
        ("IST0101", "VirtualService default/bad-host"),
        ("IST0101", "VirtualService default/bad-mirror"),
        ("IST0101", "VirtualService default/bad-port"),
        ("IST0101", "VirtualService default/bad-subset"),
    ]
    assert texts(config, "IST0101") == [
        'Referenced host not found: "ghost"',
        'Referenced host not found: "ghost-tcp"',
        'Referenced host+subset in destinationrule not found: "reviews+v9"',
        'Referenced host:port not found: "reviews.default.svc.cluster.local:9999"',
        'Referenced mirror host not found: "ghost-mirror"',
        'Referenced mirror+subset in destinationrule not found: "reviews+v7"',
    ]


def test_subset_of_a_destination_rule_in_another_namespace_is_not_found():
    config = SERVICE_REVIEWS + vs("cross", """
  hosts: [x]
  http: [{route: [{destination: {host: reviews.default.svc.cluster.local, subset: v1}}]}]
""", ns="other")
    # the DestinationRule's short host means reviews.default...; the FQDN from `other` finds it
    assert pairs(config, codes=VS_CODES) == []
    short = SERVICE_REVIEWS + vs("short", """
  hosts: [x]
  http: [{route: [{destination: {host: reviews, subset: v1}}]}]
""", ns="other")
    # `reviews` from namespace `other` is reviews.other..., which has neither service nor subset
    assert texts(short, "IST0101") == [
        'Referenced host not found: "reviews"',
        'Referenced host+subset in destinationrule not found: "reviews+v1"',
    ]


def test_port_selector_required_for_multi_port_service():
    config = """
apiVersion: v1
kind: Service
metadata: {name: two}
spec:
  selector: {app: two}
  ports: [{name: http, port: 80}, {name: http-alt, port: 8080}]
""" + vs("no-port", """
  hosts: [two]
  http: [{route: [{destination: {host: two}}]}]
""") + vs("with-port", """
  hosts: [two.alt]
  http: [{route: [{destination: {host: two, port: {number: 8080}}}]}]
""")
    assert pairs(config, codes=VS_CODES) == [("IST0112", "VirtualService default/no-port")]
    assert texts(config, "IST0112") == [
        'This VirtualService routes to a service "two" that exposes multiple ports [80 8080]. '
        "Specifying a port in the destination is required to disambiguate."
    ]


def test_service_entry_hosts_and_export_to():
    config = """
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ext, namespace: ns1}
spec:
  hosts: [api.example.com, "*.wild.example.com"]
  exportTo: ["."]
  ports: [{number: 443, name: https, protocol: HTTPS}]
  resolution: NONE
""" + vs("same-ns", """
  hosts: [a.example.com]
  http:
  - route: [{destination: {host: api.example.com}, weight: 50}, {destination: {host: x.wild.example.com}, weight: 50}]
""", ns="ns1") + vs("other-ns", """
  hosts: [b.example.com]
  http: [{route: [{destination: {host: api.example.com}}]}]
""", ns="ns2")
    assert pairs(config, codes=VS_CODES) == [("IST0101", "VirtualService ns2/other-ns")]


GATEWAY = """
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ["*.example.com", "./local.test"]
"""


KUBE_GATEWAY = """
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: edge}
spec:
  gatewayClassName: istio
  listeners: [{name: http, port: 80, protocol: HTTP, hostname: "*.example.com"}]
"""


def test_gateway_references_and_hosts():
    config = SERVICE_REVIEWS + GATEWAY + vs("ok", """
  hosts: [shop.example.com]
  gateways: [gw, mesh]
  http: [{route: [{destination: {host: reviews}}]}]
""") + vs("qualified", """
  hosts: [local.test]
  gateways: [default/gw]
  http: [{route: [{destination: {host: reviews.default.svc.cluster.local}}]}]
""") + vs("missing-gateway", """
  hosts: [shop.example.com]
  gateways: [nope]
  http: [{route: [{destination: {host: reviews}}]}]
""") + vs("host-not-in-gateway", """
  hosts: [other.test]
  gateways: [gw]
  http: [{route: [{destination: {host: reviews}}]}]
""") + vs("kube-gateway", """
  hosts: [api.example.com]
  gateways: [edge]
  http: [{route: [{destination: {host: reviews}}]}]
""") + vs("kube-gateway-other-host", """
  hosts: [other.example.org]
  gateways: [edge]
  http: [{route: [{destination: {host: reviews}}]}]
""") + KUBE_GATEWAY + vs("internal", """
  hosts: [shop.example.com]
  gateways: [gw2-istio-autogenerated-k8s-gateway-http]
  http: [{route: [{destination: {host: reviews}}]}]
""")
    assert pairs(config, codes=VS_CODES) == [
        ("IST0101", "VirtualService default/missing-gateway"),
        ("IST0132", "VirtualService default/host-not-in-gateway"),
        ("IST0132", "VirtualService default/kube-gateway-other-host"),
        ("IST0132", "VirtualService default/missing-gateway"),
        ("IST0165", "VirtualService default/internal"),
    ]
    assert texts(config, "IST0132")[1] == (
        "one or more host [other.test] defined in VirtualService default/host-not-in-gateway "
        "not found in Gateway default/gw."
    )


def test_conflicting_mesh_hosts():
    route = "  http: [{route: [{destination: {host: reviews}}]}]"
    config = SERVICE_REVIEWS + vs("a", "  hosts: [reviews]\n" + route) + vs(
        "b", "  hosts: [reviews.default.svc.cluster.local]\n" + route) + vs(
        "gateway-only", "  hosts: [reviews]\n  gateways: [gw]\n" + route) + GATEWAY + vs(
        "private", "  hosts: [reviews]\n  exportTo: [.]\n" + route, ns="team") + vs(
        "private2", "  hosts: [reviews]\n  exportTo: [.]\n" + route, ns="team2")
    assert pairs(config, codes={"IST0109"}) == [
        ("IST0109", "VirtualService default/a"),
        ("IST0109", "VirtualService default/b"),
    ]
    assert texts(config, "IST0109")[0].startswith(
        "The VirtualServices default/a,default/b associated with mesh gateway define the same host "
        "*/reviews.default.svc.cluster.local which can lead to undefined behavior.")


def test_jwt_claim_routing_needs_request_authentication():
    claim_vs = vs("claims", """
  hosts: [shop.example.com]
  gateways: [gw]
  http:
  - match: [{headers: {"@request.auth.claims.group": {exact: admin}}}]
    route: [{destination: {host: reviews}}]
""")
    config = SERVICE_REVIEWS + GATEWAY + claim_vs
    assert pairs(config, codes={"IST0149"}) == [("IST0149", "VirtualService default/claims")]
    assert texts(config, "IST0149")[0].startswith(
        "The virtual service uses the JWT claim based routing (key: @request.auth.claims.group) but found "
        "no request authentication for the gateway (default/gw) pod (istio-ingressgateway).")
    with_ra = config + """
---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: jwt, namespace: istio-system}
spec:
  selector: {matchLabels: {istio: ingressgateway}}
  jwtRules: [{issuer: "https://issuer.example.com"}]
"""
    assert pairs(with_ra, codes={"IST0149"}) == []


def test_unreachable_rules_and_ineffective_matches():
    config = SERVICE_REVIEWS + vs("shadowed", """
  hosts: [reviews]
  http:
  - name: first
    match: [{uri: {prefix: /a}}, {uri: {exact: /b}}]
    route: [{destination: {host: reviews}}]
  - name: dup
    match: [{name: again, uri: {prefix: /a}}]
    route: [{destination: {host: reviews}}]
  - match: [{uri: {exact: /b}}, {uri: {exact: /c}}]
    route: [{destination: {host: reviews}}]
  - match: [{uri: {prefix: /api}}, {uri: {prefix: /api}, method: {exact: POST}}]
    route: [{destination: {host: reviews}}]
  - route: [{destination: {host: reviews}}]
  - route: [{destination: {host: reviews}}]
  - match: [{uri: {exact: /late}}]
    route: [{destination: {host: reviews}}]
  tcp:
  - match: [{port: 9000}]
    route: [{destination: {host: reviews}}]
  - match: [{port: 9000}]
    route: [{destination: {host: reviews}}]
""")
    assert texts(config, "IST0130") == [
        'VirtualService rule "dup" not used (all matches used by prior rules).',
        "VirtualService rule #1 not used (all matches used by prior rules).",  # the second TCP rule
        "VirtualService rule #5 not used (only the last rule can have no matches).",
        "VirtualService rule #6 not used (route without matches defined before).",
    ]
    assert texts(config, "IST0131") == [
        'VirtualService rule "dup" match "again" is not used (duplicate/overlapping match in rule "first").',
        "VirtualService rule #1 match #0 is not used (duplicate/overlapping match in rule #0).",
        'VirtualService rule #2 match #0 is not used (duplicate/overlapping match in rule "first").',
        # /api (GET by default) is covered by the earlier /a prefix; the POST one is not
        'VirtualService rule #3 match #0 of prefix /api is not used (duplicate/overlapping match in '
        'rule #0 of prefix /a on "first").',
    ]
    clean = SERVICE_REVIEWS + vs("clean", """
  hosts: [reviews]
  http:
  - match: [{uri: {prefix: /api}}]
    route: [{destination: {host: reviews}}]
  - match: [{uri: {prefix: /a}}, {uri: {prefix: /api}, headers: {x-user: {exact: jason}}}]
    route: [{destination: {host: reviews}}]
  - route: [{destination: {host: reviews}}]
""")
    assert pairs(clean, codes=VS_CODES) == []
