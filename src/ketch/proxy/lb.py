"""Envoy's load balancers over one cluster's host set.

API
---
- `Host(address, weight=1, healthy=True)`: a mutable endpoint record (``__slots__``) the
  cluster manager owns. ``healthy`` is EDS health; ``ejected`` is set by outlier detection;
  ``active_rq`` is incremented/decremented by the pool around each request (least request
  reads it). ``available`` = healthy and not ejected.
- `make_load_balancer(policy, hosts, *, rng, panic_threshold=50.0, **options)` builds one of
  ``ROUND_ROBIN``, ``RANDOM``, ``LEAST_REQUEST``, ``RING_HASH``, ``MAGLEV`` (Envoy's
  ``Cluster.LbPolicy`` names). Options: ``choice_count``/``active_request_bias`` (least
  request), ``min_ring_size``/``max_ring_size`` (ring hash), ``table_size`` (maglev).
- `lb.choose(hash_key=None, excluded=frozenset(), max_attempts=5) -> Host | None`: one
  host. ``excluded`` implements the previous-hosts retry predicate: a host in it is re-picked
  up to ``max_attempts`` times (Envoy's ``host_selection_retry_max_attempts``), after which the
  last pick is returned anyway, as Envoy does. ``None`` only when no host can be used
  (→ 503 UH).
- `lb.refresh()`: call after any host's ``healthy``/``ejected``/``weight`` changed; it
  recomputes the usable set (and rebuilds hash tables). ``set_hosts(hosts)`` replaces hosts.

Health and panic: hosts in use are the available ones, unless the available share of all
hosts is below ``panic_threshold`` percent (Envoy's ``healthy_panic_threshold``, default
50%), in which case Envoy balances across every host ("panic mode"); 0 disables panic.

Hashing: Envoy uses xxHash64; we use BLAKE2b truncated to 64 bits (`hash64`), stable across
processes and Python versions (unlike ``hash()``). Ring entries hash ``"ADDRESS_N"`` like
Envoy's ``"host_N"`` keys.

Request hash keys: `HashPolicy.from_proto(RouteAction.HashPolicy)` and
`compute_hash(policies, headers, source_ip, query) -> int | None` (pure). ``headers`` is a
mapping of lower-case names to values, ``query`` the raw query string. Hashes of several
policies combine as Envoy does (rotate-left-1 xor); a ``terminal`` policy that produced a
hash stops the walk. A cookie policy with a ``ttl`` whose cookie is absent yields no hash
(Envoy would generate the cookie; that is the router's job, see ``HashPolicy.ttl``).
"""

from __future__ import annotations

import heapq
import math
import random
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass
from hashlib import blake2b
from typing import Any
from urllib.parse import unquote_plus

__all__ = [
    "Host", "LoadBalancer", "RoundRobin", "RandomLB", "LeastRequest", "RingHash", "Maglev",
    "make_load_balancer", "hash64", "HashPolicy", "compute_hash",
]

_MASK64 = (1 << 64) - 1


def hash64(data: bytes | str) -> int:
    """Stable 64-bit hash (BLAKE2b-64); stands in for Envoy's xxHash64."""
    if isinstance(data, str):
        data = data.encode()
    return int.from_bytes(blake2b(data, digest_size=8).digest(), "little")


class Host:
    """One upstream endpoint as the balancers see it."""

    __slots__ = ("address", "weight", "healthy", "ejected", "active_rq", "metadata")

    def __init__(self, address: str, weight: int = 1, healthy: bool = True,
                 metadata: object = None) -> None:
        self.address = address
        self.weight = max(1, int(weight))
        self.healthy = healthy
        self.ejected = False
        self.active_rq = 0
        self.metadata = metadata

    @property
    def available(self) -> bool:
        return self.healthy and not self.ejected

    def __repr__(self) -> str:
        state = "healthy" if self.healthy else "unhealthy"
        if self.ejected:
            state += ",ejected"
        return f"<Host {self.address} w={self.weight} {state} rq={self.active_rq}>"


class LoadBalancer:
    """Common host-set bookkeeping: the usable set, panic mode and retry re-picks."""

    def __init__(self, hosts: Sequence[Host], *, rng: random.Random,
                 panic_threshold: float = 50.0) -> None:
        self._rng = rng
        self.panic_threshold = panic_threshold
        self.hosts: tuple[Host, ...] = ()
        self.in_use: tuple[Host, ...] = ()
        self.panic = False
        self._signature: tuple | None = None
        self.set_hosts(hosts)

    def set_hosts(self, hosts: Sequence[Host]) -> None:
        self.hosts = tuple(hosts)
        self.refresh()

    def refresh(self) -> None:
        hosts = self.hosts
        available = tuple(h for h in hosts if h.available)
        pct = 100.0 * len(available) / len(hosts) if hosts else 0.0
        self.panic = bool(hosts) and pct < self.panic_threshold
        in_use = hosts if self.panic else available
        signature = tuple((id(h), h.weight) for h in in_use)
        if signature == self._signature:
            return  # same hosts, same weights: keep the tables (a Maglev build is ~50 ms)
        self._signature = signature
        self.in_use = in_use
        self._rebuild()

    def _rebuild(self) -> None:  # pragma: no cover - overridden
        pass

    def _pick(self, hash_key: int | None, attempt: int) -> Host | None:
        raise NotImplementedError

    def choose(self, hash_key: int | None = None, excluded: frozenset = frozenset(),
               max_attempts: int = 5) -> Host | None:
        host = self._pick(hash_key, 0)
        if not excluded or host is None:
            return host
        attempt = 0
        while host in excluded and attempt < max_attempts:
            attempt += 1
            host = self._pick(hash_key, attempt)
        return host

    def __repr__(self) -> str:
        mode = " PANIC" if self.panic else ""
        return (f"<{type(self).__name__} [{len(self.in_use)} in use of "
                f"{len(self.hosts)} hosts{mode}]>")


class RoundRobin(LoadBalancer):
    """Plain rotation when weights are equal; EDF over 1/weight otherwise (as Envoy)."""

    def _rebuild(self) -> None:
        hosts = self.in_use
        self._weighted = len({h.weight for h in hosts}) > 1
        # A random start keeps many proxies from hitting the same first host in lockstep.
        self._index = self._rng.randrange(len(hosts)) if hosts else 0
        self._heap: list[tuple[float, int, Host]] = []
        if self._weighted:
            self._heap = [(1.0 / h.weight, i, h) for i, h in enumerate(hosts)]
            heapq.heapify(self._heap)
            self._seq = len(hosts)

    def _pick(self, hash_key: int | None, attempt: int) -> Host | None:
        hosts = self.in_use
        if not hosts:
            return None
        if not self._weighted:
            i = self._index
            self._index = i + 1
            return hosts[i % len(hosts)]
        deadline, _, host = self._heap[0]
        self._seq += 1
        heapq.heapreplace(self._heap, (deadline + 1.0 / host.weight, self._seq, host))
        return host


class RandomLB(LoadBalancer):
    """Uniform random choice (Envoy's RANDOM ignores weights)."""

    def _rebuild(self) -> None:
        pass

    def _pick(self, hash_key: int | None, attempt: int) -> Host | None:
        hosts = self.in_use
        if not hosts:
            return None
        return hosts[int(self._rng.random() * len(hosts))]


class LeastRequest(LoadBalancer):
    """P2C (``choice_count`` random picks, fewest active requests) with equal weights;
    EDF with weight / (active_rq + 1) ** bias when weights differ, as Envoy."""

    def __init__(self, hosts: Sequence[Host], *, rng: random.Random,
                 panic_threshold: float = 50.0, choice_count: int = 2,
                 active_request_bias: float = 1.0) -> None:
        self.choice_count = max(1, choice_count)
        self.bias = active_request_bias
        super().__init__(hosts, rng=rng, panic_threshold=panic_threshold)

    def _rebuild(self) -> None:
        hosts = self.in_use
        self._weighted = len({h.weight for h in hosts}) > 1
        self._heap: list[tuple[float, int, Host]] = []
        self._seq = 0
        self._now = 0.0
        if self._weighted:
            self._heap = [(1.0 / self._eff(h), i, h) for i, h in enumerate(hosts)]
            heapq.heapify(self._heap)
            self._seq = len(hosts)

    def _eff(self, h: Host) -> float:
        if self.bias == 0.0:
            return float(h.weight)
        if self.bias == 1.0:
            return h.weight / (h.active_rq + 1)
        return h.weight / math.pow(h.active_rq + 1, self.bias)

    def _pick(self, hash_key: int | None, attempt: int) -> Host | None:
        hosts = self.in_use
        if not hosts:
            return None
        if not self._weighted:
            n = len(hosts)
            rand = self._rng.random
            best = hosts[int(rand() * n)]
            for _ in range(self.choice_count - 1):
                h = hosts[int(rand() * n)]
                if h.active_rq < best.active_rq:
                    best = h
            return best
        deadline, _, host = self._heap[0]
        self._seq += 1
        heapq.heapreplace(self._heap, (deadline + 1.0 / self._eff(host), self._seq, host))
        return host


class RingHash(LoadBalancer):
    """Ketama-style consistent hash ring (Envoy's RING_HASH, its sizing rules)."""

    def __init__(self, hosts: Sequence[Host], *, rng: random.Random,
                 panic_threshold: float = 50.0, min_ring_size: int = 1024,
                 max_ring_size: int = 8 * 1024 * 1024) -> None:
        self.min_ring_size = min_ring_size
        self.max_ring_size = max_ring_size
        super().__init__(hosts, rng=rng, panic_threshold=panic_threshold)

    def _rebuild(self) -> None:
        hosts = self.in_use
        self._hashes: list[int] = []
        self._ring: list[Host] = []
        if not hosts:
            return
        total = sum(h.weight for h in hosts)
        normalized = [h.weight / total for h in hosts]
        min_w = min(normalized)
        scale = min(math.ceil(min_w * self.min_ring_size) / min_w, float(self.max_ring_size))
        entries: list[tuple[int, str, Host]] = []
        current = 0.0
        target = 0.0
        for h, w in zip(hosts, normalized):
            target += scale * w
            count = 0
            while current < target:
                key = f"{h.address}_{count}"
                entries.append((hash64(key), h.address, h))
                count += 1
                current += 1
        entries.sort(key=lambda e: (e[0], e[1]))
        self._hashes = [e[0] for e in entries]
        self._ring = [e[2] for e in entries]

    def _pick(self, hash_key: int | None, attempt: int) -> Host | None:
        ring = self._ring
        if not ring:
            return None
        if hash_key is None:
            hash_key = self._rng.getrandbits(64)
        i = bisect_left(self._hashes, hash_key & _MASK64)
        # On a retry re-pick Envoy walks forward as if the previous host were not there.
        return ring[(i + attempt) % len(ring)]


class Maglev(LoadBalancer):
    """Maglev lookup table (prime size, default 65537) with Envoy's weighted fill."""

    def __init__(self, hosts: Sequence[Host], *, rng: random.Random,
                 panic_threshold: float = 50.0, table_size: int = 65537) -> None:
        self.table_size = table_size
        super().__init__(hosts, rng=rng, panic_threshold=panic_threshold)

    def _rebuild(self) -> None:
        hosts = sorted(self.in_use, key=lambda h: h.address)
        m = self.table_size
        self._table: list[Host | None] = []
        if not hosts:
            return
        max_w = max(h.weight for h in hosts)
        offsets, skips = [], []
        for h in hosts:
            hv = hash64(h.address)
            offsets.append(hv % m)
            skips.append(hash64(h.address.encode() + b"#skip") % (m - 1) + 1)
        nexts = [0] * len(hosts)
        targets = [float(max_w)] * len(hosts)
        weights = [h.weight for h in hosts]
        table: list[Host | None] = [None] * m
        filled = 0
        iteration = 0
        while filled < m:
            iteration += 1
            for i, h in enumerate(hosts):
                if filled >= m:
                    break
                # A host of weight max_w fills a slot every iteration, one of max_w/3
                # every third iteration: that is how Envoy weights the table.
                if iteration * weights[i] < targets[i]:
                    continue
                targets[i] += max_w
                off, skip, nxt = offsets[i], skips[i], nexts[i]
                c = (off + skip * nxt) % m
                while table[c] is not None:
                    nxt += 1
                    c = (off + skip * nxt) % m
                table[c] = h
                nexts[i] = nxt + 1
                filled += 1
        self._table = table

    def _pick(self, hash_key: int | None, attempt: int) -> Host | None:
        table = self._table
        if not table:
            return None
        if hash_key is None:
            hash_key = self._rng.getrandbits(64)
        if attempt:
            hash_key = hash64(f"{hash_key}:{attempt}")
        return table[hash_key % self.table_size]


_POLICIES = {
    "ROUND_ROBIN": RoundRobin,
    "RANDOM": RandomLB,
    "LEAST_REQUEST": LeastRequest,
    "RING_HASH": RingHash,
    "MAGLEV": Maglev,
}


def make_load_balancer(policy: str, hosts: Sequence[Host], *, rng: random.Random,
                       panic_threshold: float = 50.0, **options: object) -> LoadBalancer:
    """Build the balancer named by Envoy's ``Cluster.LbPolicy`` enum name."""
    try:
        cls = _POLICIES[policy]
    except KeyError:
        raise ValueError(f"unsupported lb_policy {policy!r}") from None
    return cls(hosts, rng=rng, panic_threshold=panic_threshold, **options)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class HashPolicy:
    """One entry of a route's ``hash_policy`` list."""

    kind: str  # "header" | "cookie" | "source_ip" | "query_parameter"
    name: str = ""
    terminal: bool = False
    ttl: float | None = None  # cookie policy: Envoy generates a cookie with this ttl
    path: str = ""

    @classmethod
    def from_proto(cls, msg: Any) -> "HashPolicy":
        which = msg.WhichOneof("policy_specifier")
        terminal = bool(msg.terminal)
        if which == "header":
            return cls("header", msg.header.header_name.lower(), terminal)
        if which == "cookie":
            ttl = None
            if msg.cookie.HasField("ttl"):
                ttl = msg.cookie.ttl.seconds + msg.cookie.ttl.nanos / 1e9
            return cls("cookie", msg.cookie.name, terminal, ttl, msg.cookie.path)
        if which == "connection_properties":
            if not msg.connection_properties.source_ip:
                raise ValueError("hash_policy.connection_properties without source_ip")
            return cls("source_ip", "", terminal)
        if which == "query_parameter":
            return cls("query_parameter", msg.query_parameter.name, terminal)
        raise ValueError(f"unsupported hash_policy {which!r}")


def _cookie(header: str, name: str) -> str | None:
    for part in header.split(";"):
        k, sep, v = part.strip().partition("=")
        if sep and k == name:
            return v.strip().strip('"')
    return None


def _query_param(query: str, name: str) -> str | None:
    for part in query.split("&"):
        k, sep, v = part.partition("=")
        if unquote_plus(k) == name:
            return unquote_plus(v) if sep else ""
    return None


def compute_hash(policies: Sequence[HashPolicy], headers: Any, source_ip: str | None,
                 query: str = "") -> int | None:
    """The request's hash key from the route's policies, or None (then: random pick)."""
    result: int | None = None
    for p in policies:
        value: str | None = None
        if p.kind == "header":
            value = headers.get(p.name)
        elif p.kind == "cookie":
            raw = headers.get("cookie")
            value = _cookie(raw, p.name) if raw else None
        elif p.kind == "source_ip":
            value = source_ip or None
        elif p.kind == "query_parameter":
            value = _query_param(query, p.name) if query else None
        if value is None:
            continue
        h = hash64(value)
        if result is None:
            result = h
        else:
            result = (((result << 1) | (result >> 63)) & _MASK64) ^ h
        if p.terminal:
            break
    return result
