from __future__ import annotations

import pytest
from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.type.v3 import percent_pb2

from ketch.controlplane.translate import route_action as ra
from ketch.controlplane.translate.route_match import MatchContext, applies, route_match
from ketch.controlplane.translate.testing import spec_view
from ketch.controlplane.translate.util import seconds


@pytest.mark.parametrize("text,want", [
    ("1s", 1.0), ("1.5s", 1.5), ("250ms", 0.25), ("1m30s", 90.0), ("2h", 7200.0),
    ("100us", 1e-4), ("0s", 0.0),
])
def test_durations(text: str, want: float) -> None:
    assert seconds(text) == pytest.approx(want)


@pytest.mark.parametrize("bad", ["1", "s", "1x", "1s2"])
def test_bad_durations(bad: str) -> None:
    with pytest.raises(ValueError):
        seconds(bad)


def test_uri_and_header_matches() -> None:
    m = route_match(spec_view({
        "uri": {"prefix": "/api"}, "ignoreUriCase": True,
        "headers": {"End-User": {"exact": "jason"}, "x-tag": {"regex": "a.*"}, "x-any": {}},
        "withoutHeaders": {"x-skip": {"prefix": "y"}},
        "method": {"exact": "GET"}, "authority": {"prefix": "shop."}, "scheme": {"exact": "https"},
        "queryParams": {"v": {"exact": "2"}, "flag": {"exact": ""}},
    }))
    assert m.prefix == "/api" and m.case_sensitive.value is False
    headers = {h.name: h for h in m.headers}
    assert headers["end-user"].string_match.exact == "jason"
    assert headers["x-tag"].string_match.safe_regex.regex == "a.*"
    assert headers["x-any"].present_match is True
    assert headers["x-skip"].invert_match and headers["x-skip"].string_match.prefix == "y"
    assert headers[":method"].string_match.exact == "GET"
    assert headers[":authority"].string_match.prefix == "shop."
    assert headers[":scheme"].string_match.exact == "https"
    params = {q.name: q for q in m.query_parameters}
    assert params["v"].string_match.exact == "2" and params["flag"].present_match


@pytest.mark.parametrize("uri,field,value", [
    ({"exact": "/a"}, "path", "/a"), ({"prefix": "/b"}, "prefix", "/b"),
    ({"regex": "/c/[0-9]+"}, "safe_regex", "/c/[0-9]+"), (None, "prefix", "/"),
])
def test_uri_kinds(uri, field: str, value: str) -> None:
    m = route_match(spec_view({"uri": uri} if uri else {}))
    got = getattr(m, field)
    assert (got.regex if field == "safe_regex" else got) == value


CTX = MatchContext(port=9080, namespace="default", labels={"app": "productpage"},
                   gateways=frozenset({"mesh"}))


@pytest.mark.parametrize("match,ok", [
    ({}, True),
    ({"port": 9080}, True), ({"port": 80}, False),
    ({"sourceLabels": {"app": "productpage"}}, True), ({"sourceLabels": {"app": "x"}}, False),
    ({"sourceNamespace": "default"}, True), ({"sourceNamespace": "prod"}, False),
    ({"gateways": ["mesh"]}, True), ({"gateways": ["my-gateway"]}, False),
])
def test_per_proxy_match_filtering(match: dict, ok: bool) -> None:
    assert applies(spec_view(match), CTX, "default") is ok


def test_gateway_names_qualify_against_the_virtual_service_namespace() -> None:
    ctx = MatchContext(80, "istio-system", {}, frozenset({"shop/gw"}))
    assert applies(spec_view({"gateways": ["gw"]}), ctx, "shop")
    assert applies(spec_view({"gateways": ["shop/gw"]}), ctx, "other")
    assert not applies(spec_view({"gateways": ["gw"]}), ctx, "other")


def test_default_retry_policy_is_istios() -> None:
    p = ra.retry_policy(None)
    assert p.retry_on == "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes"
    assert p.num_retries.value == 2 and list(p.retriable_status_codes) == [503]
    assert p.retry_host_predicate[0].name == "envoy.retry_host_predicates.previous_hosts"
    assert p.host_selection_retry_max_attempts == 5


def test_retry_settings() -> None:
    p = ra.retry_policy(spec_view({"attempts": 4, "perTryTimeout": "2s",
                                   "retryOn": "gateway-error,connect-failure,502,504"}))
    assert p.num_retries.value == 4 and p.per_try_timeout.seconds == 2
    assert p.retry_on == "gateway-error,connect-failure,retriable-status-codes"
    assert list(p.retriable_status_codes) == [502, 504]
    assert ra.retry_policy(spec_view({"attempts": 0})) is None
    # attempts alone keep Istio's default conditions
    assert ra.retry_policy(spec_view({"attempts": 1})).retry_on.startswith("connect-failure")


def test_fault_percentages_are_per_million() -> None:
    f = ra.http_fault(spec_view({
        "delay": {"fixedDelay": "5s", "percentage": {"value": 0.1}},
        "abort": {"httpStatus": 503},
    }))
    assert f.delay.fixed_delay.seconds == 5
    assert f.delay.percentage.numerator == 1000
    assert f.delay.percentage.denominator == percent_pb2.FractionalPercent.MILLION
    assert f.abort.http_status == 503 and f.abort.percentage.numerator == 1_000_000  # default 100%
    g = ra.http_fault(spec_view({"abort": {"grpcStatus": "UNAVAILABLE", "percentage": {"value": 50}}}))
    assert g.abort.grpc_status == 14 and g.abort.percentage.numerator == 500_000
    assert ra.http_fault(None) is None


@pytest.mark.parametrize("code,want", [(None, rc.RedirectAction.MOVED_PERMANENTLY),
                                       (302, rc.RedirectAction.FOUND),
                                       (307, rc.RedirectAction.TEMPORARY_REDIRECT),
                                       (308, rc.RedirectAction.PERMANENT_REDIRECT)])
def test_redirect(code, want) -> None:
    spec = {"uri": "/v2", "authority": "new.example", "scheme": "https", "port": 8443}
    if code:
        spec["redirectCode"] = code
    r = ra.redirect(spec_view(spec))
    assert (r.path_redirect, r.host_redirect, r.scheme_redirect, r.port_redirect) == (
        "/v2", "new.example", "https", 8443)
    assert r.response_code == want


def test_headers_set_add_remove() -> None:
    route = rc.Route()
    ra.apply_headers(route, spec_view({
        "request": {"set": {"x-a": "1"}, "add": {"x-b": "2"}, "remove": ["x-c"]},
        "response": {"remove": ["server"]},
    }))
    by_key = {h.header.key: h for h in route.request_headers_to_add}
    assert by_key["x-a"].append_action == by_key["x-a"].OVERWRITE_IF_EXISTS_OR_ADD
    assert by_key["x-b"].append_action == by_key["x-b"].APPEND_IF_EXISTS_OR_ADD
    assert list(route.request_headers_to_remove) == ["x-c"]
    assert list(route.response_headers_to_remove) == ["server"]


def test_cors_policy() -> None:
    c = ra.cors_policy(spec_view({
        "allowOrigins": [{"exact": "https://a"}, {"regex": "https://.*\\.b"}],
        "allowMethods": ["GET", "PUT"], "allowHeaders": ["x-h"], "exposeHeaders": ["x-e"],
        "maxAge": "1m", "allowCredentials": False,
    }))
    assert [m.exact or m.safe_regex.regex for m in c.allow_origin_string_match] == [
        "https://a", "https://.*\\.b"]
    assert (c.allow_methods, c.allow_headers, c.expose_headers, c.max_age) == (
        "GET,PUT", "x-h", "x-e", "60")
    assert c.allow_credentials.value is False


@pytest.mark.parametrize("spec,kind", [
    ({"httpHeaderName": "x-user"}, "header"), ({"httpCookie": {"name": "s", "ttl": "10s"}}, "cookie"),
    ({"useSourceIp": True}, "connection_properties"),
    ({"httpQueryParameterName": "u"}, "query_parameter"),
])
def test_hash_policies(spec: dict, kind: str) -> None:
    (hp,) = ra.hash_policies(spec_view({"consistentHash": spec}))
    assert hp.WhichOneof("policy_specifier") == kind


def test_retry_backoff_and_previous_hosts() -> None:
    p = ra.retry_policy(spec_view({"attempts": 2, "backoff": "250ms", "retryIgnorePreviousHosts": False}))
    assert p.retry_back_off.base_interval.nanos == 250_000_000
    assert not p.retry_host_predicate and p.host_selection_retry_max_attempts == 0


def test_mesh_default_retry_policy_replaces_istios() -> None:
    from ketch.controlplane.snapshot import Snapshot
    from ketch.controlplane.translate import generate
    from ketch.controlplane.translate.generator import ROUTE
    from ketch.controlplane.translate.testing import load_configs, proxy

    class Mesh:
        default_http_retry_policy = {"attempts": 5, "retryOn": "gateway-error"}

    services = load_configs("""
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web}
spec:
  hosts: [web]
  http:
  - match: [{uri: {prefix: /stats}, statPrefix: web-stats}]
    route: [{destination: {host: web}}]
""")
    routes = generate(Snapshot.build(services, mesh=Mesh()), proxy(), ROUTE)["80"]
    (vh,) = [v for v in routes.virtual_hosts if v.name.startswith("web.")]
    assert vh.routes[0].stat_prefix == "web-stats"
    retry = vh.routes[0].route.retry_policy
    assert (retry.num_retries.value, retry.retry_on) == (5, "gateway-error")
