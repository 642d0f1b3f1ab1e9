"""Retry policy parsing, outcome classification, retry decisions, backoff and budgets."""

from __future__ import annotations

import random

import pytest
from envoy.config.route.v3 import route_components_pb2 as rc
from google.protobuf import duration_pb2, wrappers_pb2

from ketch.proxy.circuit_breaker import CircuitBreakers, Thresholds
from ketch.proxy.protoutil import Unsupported
from ketch.proxy.retry import (
    CONNECT_FAILURE, CONNECTION_TERMINATION, OVERFLOW, PER_TRY_TIMEOUT, REFUSED_STREAM,
    Outcome, RetryPolicy, RetryState,
)
from ketch.proxy.stats import ClusterStats, Store


def policy(retry_on: str, **kw) -> RetryPolicy:
    return RetryPolicy.from_proto(rc.RetryPolicy(retry_on=retry_on, **kw))


def istio_default() -> RetryPolicy:
    # What Istio's pilot sends for a route without an explicit retry policy.
    return RetryPolicy.from_proto(rc.RetryPolicy(
        retry_on="connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes",
        num_retries=wrappers_pb2.UInt32Value(value=2),
        retriable_status_codes=[503],
        host_selection_retry_max_attempts=5,
        retry_host_predicate=[rc.RetryPolicy.RetryHostPredicate(
            name="envoy.retry_host_predicates.previous_hosts")]))


def test_from_proto_defaults_and_fields():
    p = policy("5xx")
    assert p.num_retries == 1  # Envoy's default when unset
    assert (p.base_interval, p.max_interval) == (0.025, 0.25)
    assert p.per_try_timeout is None and not p.previous_hosts
    p = policy("gateway-error", num_retries=wrappers_pb2.UInt32Value(value=3),
               per_try_timeout=duration_pb2.Duration(nanos=500_000_000),
               retry_back_off=rc.RetryPolicy.RetryBackOff(
                   base_interval=duration_pb2.Duration(nanos=100_000_000)))
    assert p.num_retries == 3 and p.per_try_timeout == 0.5
    assert (p.base_interval, p.max_interval) == (0.1, pytest.approx(1.0))
    d = istio_default()
    assert d.previous_hosts and d.host_selection_max_attempts == 5
    assert d.retriable_status_codes == {503} and d.grpc_retry_on == {1, 14}


def test_unknown_conditions_and_predicates_are_rejected():
    with pytest.raises(Unsupported, match="bogus"):
        policy("5xx,bogus")
    with pytest.raises(Unsupported, match="omit_canary"):
        RetryPolicy.from_proto(rc.RetryPolicy(retry_on="5xx", retry_host_predicate=[
            rc.RetryPolicy.RetryHostPredicate(name="envoy.retry_host_predicates.omit_canary_hosts")]))


@pytest.mark.parametrize("retry_on,outcome,expected", [
    ("5xx", Outcome.response(500), True),
    ("5xx", Outcome.response(503), True),
    ("5xx", Outcome.response(404), False),
    ("5xx", CONNECT_FAILURE, True),
    ("5xx", CONNECTION_TERMINATION, True),
    ("5xx", PER_TRY_TIMEOUT, True),
    ("5xx", OVERFLOW, False),
    ("gateway-error", Outcome.response(500), False),
    ("gateway-error", Outcome.response(502), True),
    ("gateway-error", Outcome.response(504), True),
    ("gateway-error", PER_TRY_TIMEOUT, True),
    ("reset", CONNECTION_TERMINATION, True),
    ("reset", Outcome.response(503), False),
    ("connect-failure", CONNECT_FAILURE, True),
    ("connect-failure", CONNECTION_TERMINATION, False),
    ("connect-failure", Outcome.response(503), False),
    ("refused-stream", REFUSED_STREAM, True),
    ("refused-stream", CONNECT_FAILURE, False),
    ("retriable-4xx", Outcome.response(409), True),
    ("retriable-4xx", Outcome.response(404), False),
    ("unavailable", Outcome.response(200, "14"), True),
    ("unavailable", Outcome.response(200, "0"), False),
    ("cancelled,deadline-exceeded", Outcome.response(200, 4), True),
    ("internal,resource-exhausted", Outcome.response(200, 8), True),
])
def test_retriable_matrix(retry_on, outcome, expected):
    assert policy(retry_on).retriable(outcome) is expected


def test_retriable_status_codes_and_headers():
    p = policy("retriable-status-codes", retriable_status_codes=[418])
    assert p.retriable(Outcome.response(418))
    assert not p.retriable(Outcome.response(503))
    from envoy.config.route.v3 import route_components_pb2 as r
    p = policy("retriable-headers", retriable_headers=[
        r.HeaderMatcher(name="x-upstream-retry", exact_match="yes")])
    assert p.retriable(Outcome.response(200), {"x-upstream-retry": "yes"})
    assert not p.retriable(Outcome.response(200), {"x-upstream-retry": "no"})
    p = policy("envoy-ratelimited")
    assert p.retriable(Outcome.response(429), {"x-envoy-ratelimited": "true"})
    assert not p.retriable(Outcome.response(429), {})
    with pytest.raises(Unsupported, match="rate_limited_retry_back_off"):
        policy("5xx", rate_limited_retry_back_off=rc.RetryPolicy.RateLimitedRetryBackOff(
            reset_headers=[rc.RetryPolicy.ResetHeader(name="retry-after")]))


def test_outcome_classification():
    assert Outcome.response(503) is Outcome.response(503)  # cached
    assert Outcome.response(503).is_gateway_error and Outcome.response(500).is_5xx
    assert not Outcome.response(500).is_gateway_error
    assert CONNECT_FAILURE.flag == "UF" and CONNECT_FAILURE.local_origin
    assert CONNECT_FAILURE.reset_reason == "connection failure"
    assert PER_TRY_TIMEOUT.status == 504 and PER_TRY_TIMEOUT.flag == "UT"
    assert OVERFLOW.flag == "UO" and not OVERFLOW.local_origin
    assert Outcome.response(200, "garbage").grpc_status is None


def test_istio_default_retries_twice_on_503_then_limit_exceeded():
    store = Store()
    stats = ClusterStats(store, "c")
    state = RetryState(istio_default(), rng=random.Random(1), stats=stats)
    state.on_attempt("h1")
    d = state.decide(Outcome.response(503), now=100.0)
    assert d.retry and 0 <= d.delay < 0.025 and d.at == 100.0 + d.delay
    state.on_attempt("h2")
    d = state.decide(CONNECT_FAILURE, now=101.0)
    assert d.retry and 0 <= d.delay < 0.075
    state.on_attempt("h3")
    d = state.decide(Outcome.response(503), now=102.0)
    assert d.action == "limit_exceeded"
    assert state.attempt == 3 and state.excluded == {"h1", "h2", "h3"}
    assert stats.upstream_rq_retry.value == 2
    assert stats.upstream_rq_retry_limit_exceeded.value == 1
    # 500 is not retriable under Istio's default policy.
    fresh = RetryState(istio_default(), rng=random.Random(1))
    fresh.on_attempt("h1")
    assert fresh.decide(Outcome.response(500), now=0).action == "no_retry"


def test_backoff_is_full_jitter_exponential_and_capped():
    p = policy("5xx")
    rng = random.Random(42)
    for n, ceiling in ((1, 0.025), (2, 0.075), (3, 0.175), (4, 0.25), (10, 0.25)):
        samples = [p.backoff(n, rng) for _ in range(2000)]
        assert max(samples) <= ceiling + 1e-9
        assert min(samples) >= 0
        # full jitter: the samples spread over the whole range
        assert max(samples) > 0.9 * ceiling and min(samples) < 0.1 * ceiling


def test_retry_budget_overflow_from_circuit_breaker():
    store = Store()
    stats = ClusterStats(store, "c")
    breakers = CircuitBreakers({0: Thresholds(max_retries=1)}, stats, store, "c")
    retries = breakers.resources().retries
    p = policy("5xx", num_retries=wrappers_pb2.UInt32Value(value=5))
    a = RetryState(p, retries, random.Random(1), stats)
    b = RetryState(p, retries, random.Random(1), stats)
    a.on_attempt()
    b.on_attempt()
    assert a.decide(Outcome.response(500), now=0).retry
    a.on_attempt()  # retry in flight holds the only retry slot
    assert b.decide(Outcome.response(500), now=0).action == "overflow"
    assert stats.upstream_rq_retry_overflow.value == 1
    a.finish(Outcome.response(200))
    assert stats.upstream_rq_retry_success.value == 1
    assert retries.count == 0
    b.on_attempt()
    assert b.decide(Outcome.response(500), now=0).retry


def test_no_policy_never_retries():
    state = RetryState(RetryPolicy.NONE)
    state.on_attempt()
    assert state.decide(CONNECT_FAILURE, now=0).action == "no_retry"
    assert not RetryPolicy.NONE.enabled
