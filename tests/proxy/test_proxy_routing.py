"""Route matching with Envoy's semantics, on RouteConfiguration protos."""

from __future__ import annotations

import pytest
from envoy.config.route.v3 import route_pb2
from google.protobuf import json_format

from ketch.proxy.protoutil import Unsupported
from ketch.proxy.routing import DirectResponse, Redirect, RouteTable


def table(d: dict, rand=lambda: 0.5) -> RouteTable:
    return RouteTable.from_proto(json_format.ParseDict(d, route_pb2.RouteConfiguration()), rand=rand)


def rc(*vhosts, **kw) -> dict:
    return {"name": "80", "virtualHosts": list(vhosts), **kw}


def vh(name, domains, *routes, **kw) -> dict:
    return {"name": name, "domains": domains, "routes": list(routes), **kw}


def route(match, cluster="c", name="", **kw) -> dict:
    return {"name": name, "match": match, "route": {"cluster": cluster}, **kw}


def test_domain_precedence_exact_suffix_prefix_default():
    t = table(rc(
        vh("exact", ["reviews.default.svc.cluster.local", "reviews:9080"], route({"prefix": "/"}, "exact")),
        vh("suffix", ["*.svc.cluster.local"], route({"prefix": "/"}, "suffix")),
        vh("longsuffix", ["*.default.svc.cluster.local"], route({"prefix": "/"}, "longsuffix")),
        vh("prefix", ["reviews.*"], route({"prefix": "/"}, "prefix")),
        vh("any", ["*"], route({"prefix": "/"}, "any")),
    ))
    assert t.match("reviews.default.svc.cluster.local", "/").cluster == "exact"
    assert t.match("REVIEWS:9080", "/").cluster == "exact"
    assert t.match("ratings.default.svc.cluster.local", "/").cluster == "longsuffix"
    assert t.match("ratings.other.svc.cluster.local", "/").cluster == "suffix"
    assert t.match("reviews.example", "/").cluster == "prefix"
    assert t.match("elsewhere", "/").cluster == "any"


def test_no_vhost_or_route_is_none():
    t = table(rc(vh("a", ["a"], route({"path": "/only"}))))
    assert t.match("b", "/only") is None
    assert t.match("a", "/other") is None
    assert t.match("a", "/only?x=1") is not None


def test_path_kinds_and_first_match_wins():
    t = table(rc(vh("a", ["*"],
        route({"path": "/exact"}, "exact"),
        route({"safeRegex": {"regex": "/re/[0-9]+"}}, "regex"),
        route({"pathSeparatedPrefix": "/api"}, "sep"),
        route({"prefix": "/CI", "caseSensitive": False}, "ci"),
        route({"prefix": "/"}, "default"),
    )))
    assert t.match("h", "/exact").cluster == "exact"
    assert t.match("h", "/exact/x").cluster == "default"
    assert t.match("h", "/re/123?q").cluster == "regex"
    assert t.match("h", "/re/12a").cluster == "default"
    assert t.match("h", "/api").cluster == "sep"
    assert t.match("h", "/api/v1").cluster == "sep"
    assert t.match("h", "/apix").cluster == "default"
    assert t.match("h", "/ci/thing").cluster == "ci"


def test_headers_query_and_invert():
    t = table(rc(vh("a", ["*"],
        route({"prefix": "/", "headers": [{"name": "end-user", "stringMatch": {"exact": "jason"}}]}, "jason"),
        route({"prefix": "/", "headers": [{"name": "x-canary", "presentMatch": True},
                                          {"name": ":method", "stringMatch": {"exact": "POST"}}]}, "canary-post"),
        route({"prefix": "/", "queryParameters": [{"name": "v", "stringMatch": {"prefix": "2"}}]}, "v2"),
        route({"prefix": "/", "headers": [{"name": "x-env", "stringMatch": {"exact": "prod"}, "invertMatch": True}]}, "notprod"),
        route({"prefix": "/"}, "rest"),
    )))
    assert t.match("h", "/", headers={"end-user": "jason"}).cluster == "jason"
    assert t.match("h", "/", headers={"end-user": "Jason", "x-env": "prod"}).cluster == "rest"
    assert t.match("h", "/", "POST", {"x-canary": "1", "x-env": "prod"}).cluster == "canary-post"
    assert t.match("h", "/p?v=2.1", headers={"x-env": "prod"}).cluster == "v2"
    assert t.match("h", "/p?v=1", headers={"x-env": "dev"}).cluster == "notprod"


def test_weighted_clusters_follow_random_value():
    d = rc(vh("a", ["*"], {"match": {"prefix": "/"}, "route": {"weightedClusters": {"clusters": [
        {"name": "v1", "weight": 75}, {"name": "v2", "weight": 25}]}}}))
    assert table(d).match("h", "/").action.pick(lambda: 0.74).name == "v1"
    assert table(d).match("h", "/").action.pick(lambda: 0.76).name == "v2"


def test_redirect_and_direct_response_and_runtime_fraction():
    t = table(rc(vh("a", ["*"],
        {"match": {"prefix": "/frac", "runtimeFraction": {"defaultValue": {"numerator": 40}}}, "route": {"cluster": "f"}},
        {"match": {"prefix": "/old"}, "redirect": {"pathRedirect": "/new", "responseCode": "FOUND"}},
        {"match": {"prefix": "/"}, "directResponse": {"status": 418, "body": {"inlineString": "teapot"}}},
    )), rand=lambda: 0.5)
    assert isinstance(t.match("h", "/frac").action, DirectResponse)  # 0.5 >= 0.4: falls through
    r = t.match("h", "/old").action
    assert isinstance(r, Redirect) and r.status == 302 and r.path == "/new"
    assert t.match("h", "/x").action == DirectResponse(418, b"teapot")


def test_unsupported_fields_are_rejected_with_reason():
    with pytest.raises(Unsupported, match="require_tls"):
        table(rc(vh("a", ["*"], route({"prefix": "/"}), requireTls="ALL")))
    with pytest.raises(Unsupported, match="cluster_header"):
        table(rc(vh("a", ["*"], {"match": {"prefix": "/"}, "route": {"clusterHeader": "x"}})))
    with pytest.raises(Unsupported, match="duplicate domain"):
        table(rc(vh("a", ["x"], route({"prefix": "/"})), vh("b", ["X"], route({"prefix": "/"}))))
