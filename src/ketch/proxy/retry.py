"""One classification of an upstream attempt's outcome, and Envoy's retry policy and state.

API
---
- `Outcome`: what one upstream attempt came to, classified once and read by retry, outlier
  detection, stats and access logs (linkerd's habit). Build with
  `Outcome.response(status, grpc_status=None)` (cached, no allocation on the hot path) or
  use the failure constants `CONNECT_FAILURE`, `CONNECTION_TERMINATION`, `REMOTE_RESET`,
  `REFUSED_STREAM`, `PER_TRY_TIMEOUT`, `OVERFLOW`, `LOCAL_RESET`. Fields: ``kind``,
  ``status`` (the HTTP status to record/answer: 503 for resets, 504 for timeouts),
  ``grpc_status`` (int or None), ``flag`` (Envoy response flag: UF, UC, UR, UT, UO, LR or
  ""), ``reset_reason`` (Envoy's words for the error body "upstream connect error or
  disconnect/reset before headers. reset reason: …"), ``local_origin`` (the failure
  happened on our side of the wire: connect failure, reset, timeout).
- `RetryPolicy.from_proto(envoy.config.route.v3.RetryPolicy)` (raises `Unsupported`, a
  ValueError, for what it cannot honour: an unknown ``retry_on`` token, a retry priority or
  host predicate other than previous_hosts). `RetryPolicy.NONE` when a route has none.
- `RetryState(policy, retries=None, rng=random.Random(), stats=None)`: one per downstream
  request. ``on_attempt(host)`` before each try (``attempt`` is the x-envoy-attempt-count
  value); ``excluded`` gives the LB's previous-hosts set; ``decide(outcome, now,
  response_headers=None) -> Decision`` answers: ``RETRY`` (``delay``/``at``: when to start
  the next try), ``NO_RETRY``, ``LIMIT_EXCEEDED`` (flag URX, answer with the last outcome)
  or ``OVERFLOW`` (the circuit breaker's retry budget said no). ``retries`` is the cluster's
  `circuit_breaker.Resource` for retries, held from the decision to retry until the retry
  attempt completes (``on_attempt_done()``) or ``finish(outcome)`` is called.

Retry semantics follow Envoy's ``RetryStateImpl``: a response is retriable under ``5xx``
(status >= 500), ``gateway-error`` (502/503/504), ``retriable-4xx`` (409),
``retriable-status-codes``, ``retriable-headers``, ``envoy-ratelimited`` (the response
carries ``x-envoy-ratelimited``) and the gRPC conditions (``cancelled``,
``deadline-exceeded``, ``internal``, ``resource-exhausted``, ``unavailable``, read from the
grpc-status of a trailers-only response); a reset or per-try timeout under ``5xx``,
``gateway-error`` and ``reset``; a connect failure also under ``connect-failure``; a refused
stream also under ``refused-stream``; a circuit-breaker overflow never. ``num_retries``
defaults to 1 when unset. Backoff is Envoy's jittered exponential: the n-th retry waits a
uniformly random time in [0, (2^n - 1) * base), capped at ``max_interval`` (defaults 25 ms
and 10 × base).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, ClassVar

from ketch.proxy.matchers import HeaderMatch
from ketch.proxy.protoutil import Unsupported

__all__ = [
    "Outcome", "CONNECT_FAILURE", "CONNECTION_TERMINATION", "REMOTE_RESET", "REFUSED_STREAM",
    "PER_TRY_TIMEOUT", "OVERFLOW", "LOCAL_RESET", "RetryPolicy", "RetryState", "Decision",
    "RETRY", "NO_RETRY", "LIMIT_EXCEEDED", "OVERFLOWED",
]

# Outcome kinds.
RESPONSE, CONNECT, RESET, REFUSED, TIMEOUT, OVERFLOW_KIND, LOCAL = range(7)


class Outcome:
    __slots__ = ("kind", "status", "grpc_status", "flag", "reset_reason", "local_origin")

    def __init__(self, kind: int, status: int, grpc_status: int | None = None, flag: str = "",
                 reset_reason: str = "") -> None:
        self.kind = kind
        self.status = status
        self.grpc_status = grpc_status
        self.flag = flag
        self.reset_reason = reset_reason
        self.local_origin = kind in (CONNECT, RESET, REFUSED, TIMEOUT, LOCAL)

    _cache: dict[tuple[int, int | None], "Outcome"] = {}

    @classmethod
    def response(cls, status: int, grpc_status: int | str | None = None) -> "Outcome":
        if isinstance(grpc_status, str):
            try:
                grpc_status = int(grpc_status)
            except ValueError:
                grpc_status = None
        key = (status, grpc_status)
        o = cls._cache.get(key)
        if o is None:
            o = cls(RESPONSE, status, grpc_status)
            if len(cls._cache) < 4096:  # statuses are few; bound it against odd upstreams
                cls._cache[key] = o
        return o

    @property
    def is_response(self) -> bool:
        return self.kind == RESPONSE

    @property
    def is_5xx(self) -> bool:
        return self.status >= 500

    @property
    def is_gateway_error(self) -> bool:
        return self.status in (502, 503, 504) or self.local_origin

    @property
    def is_success(self) -> bool:
        return self.kind == RESPONSE and self.status < 500

    def __repr__(self) -> str:
        if self.kind == RESPONSE:
            g = f" grpc={self.grpc_status}" if self.grpc_status is not None else ""
            return f"<Outcome {self.status}{g}>"
        return f"<Outcome {self.flag} {self.reset_reason!r} -> {self.status}>"


CONNECT_FAILURE = Outcome(CONNECT, 503, None, "UF", "connection failure")
CONNECTION_TERMINATION = Outcome(RESET, 503, None, "UC", "connection termination")
REMOTE_RESET = Outcome(RESET, 503, None, "UR", "remote reset")
REFUSED_STREAM = Outcome(REFUSED, 503, None, "UR", "remote refused stream reset")
PER_TRY_TIMEOUT = Outcome(TIMEOUT, 504, None, "UT", "")
LOCAL_RESET = Outcome(LOCAL, 503, None, "LR", "local reset")
OVERFLOW = Outcome(OVERFLOW_KIND, 503, None, "UO", "overflow")

# retry_on tokens → bits.
_5XX, _GW, _RESET, _CONNECT, _4XX, _REFUSED, _CODES, _HEADERS, _RESET_BEFORE, _RATELIMITED = (
    1 << i for i in range(10))
_TOKENS = {
    "5xx": _5XX, "gateway-error": _GW, "reset": _RESET, "connect-failure": _CONNECT,
    "retriable-4xx": _4XX, "refused-stream": _REFUSED, "retriable-status-codes": _CODES,
    "retriable-headers": _HEADERS, "reset-before-request": _RESET_BEFORE,
    "envoy-ratelimited": _RATELIMITED,
    "http3-post-connect-failure": 0,  # we never speak HTTP/3 upstream: nothing to retry
}
_GRPC_TOKENS = {"cancelled": 1, "deadline-exceeded": 4, "internal": 13,
                "resource-exhausted": 8, "unavailable": 14}
_PREVIOUS_HOSTS = "envoy.retry_host_predicates.previous_hosts"


def _seconds(d: Any) -> float:
    return d.seconds + d.nanos / 1e9


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    retry_on: int = 0
    grpc_retry_on: frozenset[int] = frozenset()
    num_retries: int = 0
    per_try_timeout: float | None = None
    per_try_idle_timeout: float | None = None
    retriable_status_codes: frozenset[int] = frozenset()
    retriable_headers: tuple[HeaderMatch, ...] = ()
    base_interval: float = 0.025
    max_interval: float = 0.250
    previous_hosts: bool = False
    host_selection_max_attempts: int = 1

    NONE: ClassVar["RetryPolicy"]  # no retries; set below

    @property
    def enabled(self) -> bool:
        return self.num_retries > 0 and (self.retry_on != 0 or bool(self.grpc_retry_on))

    @classmethod
    def parse_retry_on(cls, text: str) -> tuple[int, frozenset[int]]:
        bits, grpc = 0, set()
        for token in (t.strip() for t in text.split(",")):
            if not token:
                continue
            if token in _TOKENS:
                bits |= _TOKENS[token]
            elif token in _GRPC_TOKENS:
                grpc.add(_GRPC_TOKENS[token])
            else:
                raise Unsupported(f"retry_on: unknown condition {token!r}")
        return bits, frozenset(grpc)

    @classmethod
    def from_proto(cls, msg: Any, where: str = "retry_policy") -> "RetryPolicy":
        if msg.HasField("retry_priority"):
            raise Unsupported(f"{where}.retry_priority is not supported")
        if msg.HasField("rate_limited_retry_back_off"):
            raise Unsupported(f"{where}.rate_limited_retry_back_off is not supported")
        if msg.retry_options_predicates or msg.retriable_request_headers:
            raise Unsupported(f"{where}: retry option predicates / retriable request headers "
                              "are not supported")
        previous = False
        for p in msg.retry_host_predicate:
            if p.name != _PREVIOUS_HOSTS:
                raise Unsupported(f"{where}.retry_host_predicate {p.name!r} is not supported")
            previous = True
        try:
            bits, grpc = cls.parse_retry_on(msg.retry_on)
        except Unsupported as exc:
            raise Unsupported(f"{where}.{exc}") from None
        base, cap = 0.025, None
        if msg.HasField("retry_back_off"):
            bo = msg.retry_back_off
            base = _seconds(bo.base_interval)
            if base <= 0:
                raise Unsupported(f"{where}.retry_back_off.base_interval must be > 0")
            if bo.HasField("max_interval"):
                cap = _seconds(bo.max_interval)
                if cap < base:
                    raise Unsupported(f"{where}.retry_back_off.max_interval < base_interval")
        headers = tuple(HeaderMatch.from_proto(h, f"{where}.retriable_headers")
                        for h in msg.retriable_headers)
        return cls(
            retry_on=bits, grpc_retry_on=grpc,
            num_retries=msg.num_retries.value if msg.HasField("num_retries") else 1,
            per_try_timeout=(_seconds(msg.per_try_timeout) or None)
            if msg.HasField("per_try_timeout") else None,
            per_try_idle_timeout=(_seconds(msg.per_try_idle_timeout) or None)
            if msg.HasField("per_try_idle_timeout") else None,
            retriable_status_codes=frozenset(msg.retriable_status_codes),
            retriable_headers=headers,
            base_interval=base, max_interval=cap if cap is not None else 10 * base,
            previous_hosts=previous,
            host_selection_max_attempts=max(1, msg.host_selection_retry_max_attempts or 1),
        )

    def retriable(self, outcome: Outcome, response_headers: Any = None) -> bool:
        """Would this outcome be retried under ``retry_on`` (ignoring budgets)?"""
        on = self.retry_on
        kind = outcome.kind
        if kind == RESPONSE:
            status = outcome.status
            if on & _5XX and status >= 500:
                return True
            if on & _GW and status in (502, 503, 504):
                return True
            if on & _4XX and status == 409:
                return True
            if on & _CODES and status in self.retriable_status_codes:
                return True
            if outcome.grpc_status is not None and outcome.grpc_status in self.grpc_retry_on:
                return True
            if response_headers is not None:
                if on & _RATELIMITED and response_headers.get("x-envoy-ratelimited") is not None:
                    return True
                if on & _HEADERS:
                    return any(m.matches(response_headers) for m in self.retriable_headers)
            return False
        if kind == OVERFLOW_KIND:
            return False
        if on & (_5XX | _GW | _RESET):
            return True
        if kind == CONNECT:
            return bool(on & (_CONNECT | _RESET_BEFORE))
        if kind == REFUSED:
            return bool(on & _REFUSED)
        return False

    def backoff(self, retry_number: int, rng: random.Random) -> float:
        """Envoy's JitteredExponentialBackOffStrategy for the n-th retry (1-based)."""
        ceiling = ((1 << min(retry_number, 30)) - 1) * self.base_interval
        return min(rng.random() * ceiling, self.max_interval)


RetryPolicy.NONE = RetryPolicy()


@dataclass(frozen=True, slots=True)
class Decision:
    action: str  # "retry" | "no_retry" | "limit_exceeded" | "overflow"
    delay: float = 0.0
    at: float = 0.0

    @property
    def retry(self) -> bool:
        return self.action == "retry"


NO_RETRY = Decision("no_retry")
LIMIT_EXCEEDED = Decision("limit_exceeded")
OVERFLOWED = Decision("overflow")
RETRY = "retry"


class RetryState:
    """Retry bookkeeping for one downstream request (Envoy's RetryStateImpl)."""

    __slots__ = ("policy", "retries_remaining", "attempt", "hosts", "_resource", "_held",
                 "_rng", "_stats")

    def __init__(self, policy: RetryPolicy, retries: Any = None,
                 rng: random.Random | None = None, stats: Any = None) -> None:
        self.policy = policy
        self.retries_remaining = policy.num_retries
        self.attempt = 0
        self.hosts: list[Any] = []
        self._resource = retries
        self._held = False
        self._rng = rng or random.Random()
        self._stats = stats

    def on_attempt(self, host: Any = None) -> int:
        """A try starts (on ``host``); returns its number (x-envoy-attempt-count)."""
        self.attempt += 1
        if host is not None and self.policy.previous_hosts:
            self.hosts.append(host)
        return self.attempt

    @property
    def excluded(self) -> frozenset:
        """Hosts the previous-hosts predicate keeps the LB away from (only recorded when
        the policy has that predicate)."""
        if not self.hosts:
            return frozenset()
        return frozenset(self.hosts)

    def decide(self, outcome: Outcome, now: float, response_headers: Any = None) -> Decision:
        """After a failed-looking try: retry (and when), or why not."""
        self.on_attempt_done()
        if not self.policy.retriable(outcome, response_headers):
            return NO_RETRY
        if self.retries_remaining <= 0:
            if self._stats is not None:
                self._stats.upstream_rq_retry_limit_exceeded.inc()
            return LIMIT_EXCEEDED
        self.retries_remaining -= 1
        if self._resource is not None:
            if not self._resource.try_acquire():  # counts upstream_rq_retry_overflow
                return OVERFLOWED
            self._held = True
        retry_number = self.policy.num_retries - self.retries_remaining
        delay = self.policy.backoff(retry_number, self._rng)
        if self._stats is not None:
            self._stats.upstream_rq_retry.inc()
            self._stats.upstream_rq_retry_backoff_exponential.inc()
        return Decision(RETRY, delay, now + delay)

    def on_attempt_done(self) -> None:
        """A retry try finished (or was abandoned): give back the retry resource."""
        if self._held:
            self._held = False
            self._resource.release()

    def finish(self, outcome: Outcome | None = None) -> None:
        """The request is over; counts ``upstream_rq_retry_success`` when a retry saved it."""
        if self._held:
            self.on_attempt_done()
        if (self.attempt > 1 and self._stats is not None and outcome is not None
                and not self.policy.retriable(outcome)):
            self._stats.upstream_rq_retry_success.inc()

    def __repr__(self) -> str:
        return (f"<RetryState attempt {self.attempt}, {self.retries_remaining} retries left, "
                f"{len(self.hosts)} hosts tried>")
