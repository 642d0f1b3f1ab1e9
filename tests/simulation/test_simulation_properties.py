"""Property: whatever valid VirtualService/DestinationRule combination a user writes, the
generated resources compile in the proxy (no NACK), and a request the first rule matches
exactly reaches that rule's destination."""

from __future__ import annotations

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ketch.controlplane.snapshot import Snapshot
from ketch.controlplane.translate.testing import load_configs, proxy
from sim_harness import Call, Simulation

BASE = """
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80}, {name: grpc, port: 7070}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: web}
spec:
  host: web
  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]
"""

paths = st.sampled_from(["/a", "/api", "/b/c", "/x-y"])
uri = st.one_of(st.builds(lambda p: {"exact": p}, paths), st.builds(lambda p: {"prefix": p}, paths),
                st.just({"regex": "/r[0-9]+"}))
match = st.fixed_dictionaries({}, optional={
    "uri": uri,
    "headers": st.dictionaries(st.sampled_from(["x-a", "end-user"]),
                               st.sampled_from([{"exact": "1"}, {"prefix": "j"}, {"regex": "v.*"}]),
                               max_size=2),
    "method": st.sampled_from([{"exact": "GET"}, {"exact": "POST"}]),
    "queryParams": st.dictionaries(st.just("q"), st.just({"exact": "1"}), max_size=1),
    "ignoreUriCase": st.booleans(),
})
destination = st.sampled_from([{"host": "web", "subset": "v1"}, {"host": "web", "subset": "v2"},
                               {"host": "web"}])
extras = st.fixed_dictionaries({}, optional={
    "timeout": st.sampled_from(["1s", "250ms"]),
    "retries": st.sampled_from([{"attempts": 0}, {"attempts": 2, "backoff": "100ms"},
                                {"attempts": 3, "perTryTimeout": "1s",
                                                  "retryOn": "5xx,503"}]),
    "fault": st.sampled_from([{"abort": {"httpStatus": 503, "percentage": {"value": 10}}},
                              {"delay": {"fixedDelay": "1s", "percentage": {"value": 50}}}]),
    "rewrite": st.sampled_from([{"uri": "/"}, {"authority": "other"}]),
    "headers": st.just({"request": {"set": {"x-s": "1"}, "remove": ["x-r"]},
                        "response": {"add": {"x-a": "2"}}}),
    "mirror": st.just({"host": "web", "subset": "v2"}),
    "corsPolicy": st.just({"allowOrigins": [{"exact": "https://o"}], "allowMethods": ["GET"]}),
})


@st.composite
def http_rule(draw):
    rule = {"match": draw(st.lists(match, min_size=0, max_size=2))}
    kind = draw(st.sampled_from(["route", "split", "redirect", "direct"]))
    if kind == "route":
        rule["route"] = [{"destination": draw(destination)}]
        rule.update(draw(extras))
    elif kind == "split":
        w = draw(st.integers(min_value=0, max_value=100))
        rule["route"] = [{"destination": {"host": "web", "subset": "v1"}, "weight": w},
                         {"destination": {"host": "web", "subset": "v2"}, "weight": 100 - w}]
    elif kind == "redirect":
        rule["redirect"] = {"uri": "/moved", "redirectCode": draw(st.sampled_from([301, 302, 308]))}
    else:
        rule["directResponse"] = {"status": draw(st.sampled_from([200, 404, 503])),
                                  "body": {"string": "x"}}
    if not rule["match"]:
        del rule["match"]
    return rule


@settings(max_examples=60, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(http_rule(), min_size=1, max_size=4))
def test_generated_routes_compile_and_the_first_exact_rule_wins(rules) -> None:
    vs = {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
          "metadata": {"name": "web"}, "spec": {"hosts": ["web"], "http": rules}}
    snap = Snapshot.build(load_configs(BASE + "---\n" + yaml.safe_dump(vs)))
    sim = Simulation(snap, proxy(labels={"app": "client"}))  # compiles every resource
    first = rules[0]
    matches = first.get("match") or [{}]
    m = matches[0]
    if set(m) - {"uri", "method"} or "regex" in m.get("uri", {}):
        return  # only build a request for simple first matches
    path = m.get("uri", {}).get("exact") or m.get("uri", {}).get("prefix") or "/"
    result = sim.run(Call("web", 80, path, method=m.get("method", {}).get("exact", "GET")))
    if "redirect" in first:
        assert result.status == first["redirect"]["redirectCode"]
    elif "directResponse" in first:
        assert result.status == first["directResponse"]["status"]
    elif len(first["route"]) == 2:
        # 0-weight destinations are dropped, a lone survivor is a plain cluster
        want = {f"outbound|80|{d['destination']['subset']}|web.default.svc.cluster.local": d["weight"]
                for d in first["route"] if d["weight"]}
        got = dict(result.weighted) or {result.cluster: 100}
        assert got == want
    else:
        subset = first["route"][0]["destination"].get("subset", "")
        assert result.cluster == f"outbound|80|{subset}|web.default.svc.cluster.local"


lb = st.one_of(
    st.builds(lambda s: {"simple": s}, st.sampled_from(["ROUND_ROBIN", "LEAST_REQUEST", "RANDOM",
                                                        "PASSTHROUGH"])),
    st.sampled_from([{"consistentHash": {"httpHeaderName": "x-u"}},
                     {"consistentHash": {"useSourceIp": True, "ringHash": {"minimumRingSize": 64}}},
                     # a cookie without ttl: cookies the proxy must generate (ttl) are
                     # NACKed by the proxy today (Istio's shape is kept on purpose)
                     {"consistentHash": {"httpCookie": {"name": "c"},
                                         "maglev": {"tableSize": 65537}}}]),
)
policy = st.fixed_dictionaries({}, optional={
    "loadBalancer": lb,
    "connectionPool": st.fixed_dictionaries({}, optional={
        "tcp": st.fixed_dictionaries({}, optional={
            "maxConnections": st.integers(1, 1000), "connectTimeout": st.sampled_from(["1s", "30ms"])}),
        "http": st.fixed_dictionaries({}, optional={
            "http1MaxPendingRequests": st.integers(1, 100), "http2MaxRequests": st.integers(1, 100),
            "maxRequestsPerConnection": st.integers(1, 10), "maxRetries": st.integers(0, 5),
            "idleTimeout": st.sampled_from(["1s", "1m"]),
            "h2UpgradePolicy": st.sampled_from(["DEFAULT", "UPGRADE", "DO_NOT_UPGRADE"])}),
    }).filter(bool),
    "outlierDetection": st.fixed_dictionaries({}, optional={
        "consecutive5xxErrors": st.integers(0, 10), "consecutiveGatewayErrors": st.integers(0, 10),
        "interval": st.just("5s"), "baseEjectionTime": st.just("30s"),
        "maxEjectionPercent": st.integers(0, 100), "minHealthPercent": st.integers(0, 100)}),
}).filter(bool)


@settings(max_examples=40, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(policy, st.one_of(st.none(), policy), st.one_of(st.none(), policy))
def test_traffic_policies_compile_in_the_proxy(top, port_level, subset_policy) -> None:
    spec: dict = {"host": "web", "trafficPolicy": dict(top),
                  "subsets": [{"name": "v1", "labels": {"version": "v1"}}]}
    if port_level:
        spec["trafficPolicy"]["portLevelSettings"] = [{"port": {"number": 7070}, **port_level}]
    if subset_policy:
        spec["subsets"][0]["trafficPolicy"] = subset_policy
    dr = {"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
          "metadata": {"name": "web"}, "spec": spec}
    text = BASE.split("---\napiVersion: networking.istio.io/v1\nkind: DestinationRule")[0]
    snap = Snapshot.build(load_configs(text + "---\n" + yaml.safe_dump(dr)))
    sim = Simulation(snap, proxy(labels={"app": "client"}))
    for port in (80, 7070):
        for subset in ("", "v1"):
            assert f"outbound|{port}|{subset}|web.default.svc.cluster.local" in sim.clusters
