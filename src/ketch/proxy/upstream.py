"""Upstream clusters: hosts, load balancing, per-host HTTP/1.1 connection pools, circuit breakers.

A `ClusterRuntime` is built per compiled `ClusterConfig` and lives as long as that config (a
config change builds a new one; the old one drains). Pool assignment is synchronous
bookkeeping in the manner of httpcore: `acquire(host, waiter)` either hands the waiter an idle
connection, queues it as pending (opening a connection if max_connections allows), or refuses
with an overflow (503 UO). A waiter is any object with `on_pool_ready(conn)` and
`on_pool_failure(reason, flag)`; the connection then drives the waiter's exchange callbacks
(`on_response_head/_body/_end`, `on_upstream_reset`, `on_upgrade`).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from collections.abc import Callable

import httptools

from ketch.proxy.circuit_breaker import CircuitBreakers
from ketch.proxy.config import ClusterConfig, EndpointConfig
from ketch.proxy.http1 import (_STATUS_LINES_B as _STATUS_LINES, ProtocolError, _connection_simple, forward_block,
                               response_head_from_block, status_line)
from ketch.proxy.http1_scan import scan_response as _scan_response  # None: llhttp takes every message
from ketch.proxy.lb import Host, make_load_balancer
from ketch.proxy.outlier import OutlierDetector
from ketch.proxy.retry import CONNECT_FAILURE, Outcome
from ketch.proxy.stats import ClusterStats, Store

_monotonic = time.monotonic
MAX_RESPONSE_HEAD = 98304  # bytes of an upstream response head before it is a protocol error
# statuses whose response may take UpstreamConnection._express (bodies framed by Content-Length)
_EXPRESS_STATUS = frozenset(range(200, 400)) - {204, 304}


class UpstreamConnection(asyncio.Protocol):
    """One HTTP/1.1 connection to one host; serves one exchange at a time.

    It is llhttp's callback object itself (no decoder in between) and keeps the raw bytes
    of the response head: the exchange gets a `ResponseHead` whose header lines are parsed
    only if somebody asks (see http1.ResponseHead)."""

    __slots__ = ("pool", "transport", "parser", "exchange", "served", "idle_timer", "closed", "idle_since",
                 "tunnel", "born", "keep_alive", "until_close", "head_buf", "head_len", "head_request",
                 "done_early", "express")

    def __init__(self, pool: HostPool) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.exchange = None
        self.served = 0
        self.idle_timer: asyncio.TimerHandle | None = None
        self.idle_since = 0.0
        self.closed = False
        self.tunnel = False
        self.keep_alive = True
        self.until_close = False
        self.born = time.monotonic()
        self.head_buf: list[bytes] | None = None  # the response head's bytes until it is complete
        self.head_len = 0
        self.head_request = False
        self.done_early = False
        self.express = False  # this response's head went out by _express

    # -- asyncio
    def connection_made(self, transport) -> None:  # type: ignore[override]
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self.tunnel:
            if self.exchange is not None:
                self.exchange.on_tunnel_data(data)
            return
        ex = self.exchange
        if ex is None:
            self.close()  # bytes with no request outstanding: the connection is unusable
            return
        buf = self.head_buf
        if buf is not None:
            if not buf and _scan_response is not None and not self.done_early and self._whole(ex, data):
                return
            buf.append(data)
            self.head_len += len(data)
        down = ex.downstream
        if down is not None:
            if down.corked is None:
                down.corked = []  # writes collected: one syscall for what this read produces
            else:
                down = None  # already corked further up: whoever corked uncorks
        try:
            if self.done_early:
                # the last message ended at its head (HEAD, 1xx/204/304): llhttp would wait for a body
                self.parser = httptools.HttpResponseParser(self)
                self.done_early = False
            try:
                self.parser.feed_data(data)
            except httptools.HttpParserUpgrade as exc:
                offset = exc.args[0] if exc.args else len(data)
                self.on_upgrade(data[offset:])
            except httptools.HttpParserError as exc:
                if isinstance(exc.__context__, ProtocolError):
                    raise exc.__context__ from None
                raise ProtocolError(502, str(exc) or "malformed response") from None
            if self.head_buf is not None and self.head_len > MAX_RESPONSE_HEAD:
                raise ProtocolError(502, "upstream headers too large")
        except ProtocolError as exc:
            self.pool.cluster.stats.upstream_cx_protocol_error.value += 1
            self.keep_alive = False
            ex, self.exchange = self.exchange, None
            self.close()
            if ex is not None:
                ex.on_upstream_reset(f"protocol error: {exc.reason}")
        finally:
            if down is not None:
                down.uncork()

    def connection_lost(self, exc: BaseException | None) -> None:
        self.closed = True
        if self.idle_timer is not None:
            self.idle_timer.cancel()
        ex, self.exchange = self.exchange, None
        self.pool.on_closed(self)
        if ex is not None:
            if self.until_close:
                ex.on_response_end()
            elif self.tunnel:
                ex.on_tunnel_closed()
            else:
                ex.on_upstream_reset("connection termination")
        self.parser = self.transport = None  # no cycles left: freed now (see Http1Downstream.connection_lost)

    def pause_writing(self) -> None:
        if self.exchange is not None:
            self.exchange.pause_request()

    def resume_writing(self) -> None:
        if self.exchange is not None:
            self.exchange.resume_request()

    # -- llhttp callbacks
    def on_headers_complete(self) -> None:
        p = self.parser
        buf = self.head_buf
        raw = (buf[0] if len(buf) == 1 else b"".join(buf)) if buf else b""
        end = raw.find(b"\r\n\r\n")
        status = p.get_status_code()
        if status in _EXPRESS_STATUS and 0 < end < 8192:
            ex = self.exchange
            s = ex.stream if ex is not None else None
            if s is not None and s.express and s.attempt is ex and not s.done and self._express(s, raw[:end], status):
                return
        self._head(p, raw, end, status)

    def _express(self, s, block: bytes, status: int) -> bool:
        """The common response (one Content-Length, nothing hop-by-hop beyond Connection:
        keep-alive/close, request and connection staying open): its header lines go out as
        they came (see Stream.on_response_head for everything else)."""
        low = block.lower()
        i = low.find(b"\ncontent-length:")
        if (i < 0 or b"\ntransfer-encoding:" in low or low.find(b"\ncontent-length:", i + 16) >= 0
                or not s.keep_alive or not s.request_complete or s.state.draining or s.conn.drain_after
                or (b"\nconnection:" in low and not _connection_simple(low))):
            return False
        ka = self.keep_alive = self.parser.should_keep_alive()
        if not ka:
            return False
        self.head_buf = None
        self.until_close = False
        self.express = True
        att = self.exchange
        cluster = att.cluster
        if cluster.outlier is not None:
            cluster.outlier_response(att.host, status)
        s.status = status
        s.response_started = True
        hcm = s.hcm
        s.conn.write(b"%b%b%b" % (
            status_line(status), forward_block(block, hcm.server_header == "OVERWRITE"),
            hcm.response_tail((_monotonic() - att.sent_at) * 1000)))
        return True

    def _whole(self, att, data: bytes) -> bool:
        """A whole plain response in one read, for a stream on the express path: scanned in C
        and forwarded without llhttp (which never sees it and stays between messages). Does
        what `_express`, `on_body` and `on_message_complete` do for it; False: nothing done."""
        s = att.stream
        if (s is None or not s.express or s.attempt is not att or s.done or not s.keep_alive or not s.request_complete
                or self.head_request or s.state.draining or s.conn.drain_after):
            return False
        hcm = s.hcm
        now = _monotonic()
        scanned = _scan_response(data, hcm.server_header == "OVERWRITE", _STATUS_LINES,
                                 hcm.response_tail((now - att.sent_at) * 1000))
        if scanned is None:
            return False
        status, out, body_length = scanned
        cluster = att.cluster
        if cluster.outlier is not None:
            cluster.outlier_response(att.host, status)
        s.status = status
        s.response_started = True
        s.resp_bytes += body_length
        s.last_active = now
        s.conn.write(out)
        self.head_buf = None
        self.keep_alive = True
        self.exchange = None
        self._express_end(att)
        return True

    def _head(self, p, raw: bytes, end: int, status: int) -> None:
        skip = 4
        if end < 0:  # bare-LF line ends (llhttp tolerates them in responses): normalise
            end, skip = raw.find(b"\n\n"), 2
            rest = raw[end + skip:]
            raw = raw[:end].replace(b"\r\n", b"\n").replace(b"\n", b"\r\n") + b"\r\n\r\n"
            end, skip = len(raw) - 4, 4
            raw += rest
        if 100 <= status < 200 and status != 101:
            self.head_buf = [raw[end + skip:]]  # informational: the final response follows
            self.head_len = len(self.head_buf[0])
            return
        self.head_buf = None
        if end > MAX_RESPONSE_HEAD or raw.count(b"\r\n", 0, end) > 200:
            raise ProtocolError(502, "upstream headers too large")
        head = response_head_from_block(raw[:end], status, p.should_keep_alive(), p.get_http_version())
        self.keep_alive = head.keep_alive
        # A body delimited by the connection's close: EOF is its end, not a reset.
        self.until_close = (head.content_length is None and not head.chunked and status >= 200
                            and status not in (204, 304) and not self.head_request)
        ex = self.exchange
        if ex is not None:
            ex.on_response_head(head)
        if self.head_request and status != 101:
            self.done_early = True
            self.on_message_end()

    def on_body(self, data: bytes) -> None:
        ex = self.exchange
        if ex is not None:
            if self.express:  # straight to the downstream (see Stream.on_response_body)
                s = ex.stream
                s.resp_bytes += len(data)
                s.last_active = _monotonic()
                s.conn.write(data)
            else:
                ex.on_response_body(data)

    def on_message_complete(self) -> None:
        if self.done_early or self.head_buf is not None:
            return  # ended at its head already, or informational (1xx)
        if self.express:  # the head went out by _express: end it the same short way
            self.express = False
            att, self.exchange = self.exchange, None
            self._express_end(att)
            return
        if 100 <= self.parser.get_status_code() < 200:
            return  # 101: its upgrade (tunnel) follows
        self.on_message_end()

    def _express_end(self, att) -> None:
        """The end of an exchange whose head went out the express way (`_express`, `_whole`):
        the request slot released and the stream finished without the general callbacks."""
        self.served += 1
        if att is not None and att.per_try is None and not att.released:
            att.released = True
            att.cluster.release_request(att.host)
            att.stream.finish()
        elif att is not None:
            att.on_response_end()
        if not self.closed:
            self.pool.release(self, self.keep_alive)

    def on_message_end(self) -> None:
        ex, self.exchange = self.exchange, None
        self.served += 1
        if ex is not None:
            ex.on_response_end()
        if not self.closed and not self.tunnel:
            self.pool.release(self, self.keep_alive)

    def on_upgrade(self, rest: bytes) -> None:
        self.tunnel = True
        if self.exchange is not None:
            self.exchange.on_upgrade(rest)

    # -- used by exchanges
    def start(self, exchange, head_request: bool) -> None:
        self.exchange = exchange
        self.until_close = False
        self.head_request = head_request
        self.head_buf = []
        self.head_len = 0
        self.express = False
        if self.idle_timer is not None:
            self.idle_timer.cancel()
            self.idle_timer = None

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.closed:
            self.transport.write(data)

    def close(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.close()

    def abort(self) -> None:
        self.exchange = None
        if self.transport is not None and not self.closed:
            self.transport.abort()


class HostPool:
    """Connections to one host: idle ones, how many are connecting, and who waits."""

    def __init__(self, cluster: ClusterRuntime, host: Host, addr: tuple[str, int]) -> None:
        self.cluster = cluster
        self.host = host
        self.addr = addr
        self.idle: list[UpstreamConnection] = []
        self.conns: set[UpstreamConnection] = set()
        self.pending: deque = deque()
        self.connecting = 0
        self.h2: list = []
        self.sweep: asyncio.TimerHandle | None = None
        self.max_requests = cluster.config.max_requests_per_connection
        self.idle_timeout = cluster.config.idle_timeout

    def __repr__(self) -> str:
        return (f"<HostPool {self.addr[0]}:{self.addr[1]} [Connections: {len(self.conns)} total, "
                f"{len(self.idle)} idle, {self.connecting} connecting | Requests: {len(self.pending)} pending]>")

    def connect(self) -> None:
        self.connecting += 1
        c = self.cluster
        c.stats.upstream_cx_total.value += 1
        c.loop.create_task(self._connect())

    async def _connect(self) -> None:
        c = self.cluster
        conn = UpstreamConnection(self)
        try:
            await asyncio.wait_for(c.loop.create_connection(lambda: conn, self.addr[0], self.addr[1]),
                                   c.config.connect_timeout)
        except (OSError, asyncio.TimeoutError) as exc:
            self.connecting -= 1
            c.breakers.default.connections.release()
            if isinstance(exc, asyncio.TimeoutError):
                c.stats.upstream_cx_connect_timeout.value += 1
                reason = "connection timeout"
            else:
                reason = "connection failure"
            c.stats.upstream_cx_connect_fail.value += 1
            c.outlier_connect_failure(self.host)
            if self.pending:
                waiter = self.pending.popleft()
                c.pending_done()
                waiter.on_pool_failure(reason, "UF")
            return
        self.connecting -= 1
        self.conns.add(conn)
        c.stats.upstream_cx_active.value += 1
        c.stats.upstream_cx_http1_total.value += 1
        self.release(conn, True)

    # -- HTTP/2: one connection multiplexes many streams
    def h2_ready(self):
        for conn in self.h2:
            if conn.capacity() > 0:
                return conn
        return None

    def connect_h2(self) -> None:
        self.connecting += 1
        self.cluster.stats.upstream_cx_total.value += 1
        self.cluster.loop.create_task(self._connect_h2())

    async def _connect_h2(self) -> None:
        from ketch.proxy.http2_io import H2ClientConnection  # h2 loads only for HTTP/2 clusters (~5 MB)

        c = self.cluster
        conn = H2ClientConnection(max_requests=c.config.max_requests_per_connection,
                                  on_capacity=self._h2_capacity, on_closed=self._h2_closed)
        try:
            await asyncio.wait_for(c.loop.create_connection(lambda: conn, self.addr[0], self.addr[1]),
                                   c.config.connect_timeout)
        except (OSError, asyncio.TimeoutError) as exc:
            self.connecting -= 1
            c.breakers.default.connections.release()
            if isinstance(exc, asyncio.TimeoutError):
                c.stats.upstream_cx_connect_timeout.value += 1
            c.stats.upstream_cx_connect_fail.value += 1
            c.outlier_connect_failure(self.host)
            waiters, self.pending = list(self.pending), deque()
            for waiter in waiters:  # they were all waiting on this one connection
                c.pending_done()
                waiter.on_pool_failure("connection failure", "UF")
            return
        self.connecting -= 1
        self.h2.append(conn)
        c.stats.upstream_cx_active.value += 1
        c.stats.upstream_cx_http2_total.value += 1
        self._h2_capacity(conn)

    def _h2_capacity(self, conn) -> None:
        c = self.cluster
        while self.pending and conn.capacity() > 0:
            waiter = self.pending.popleft()
            c.pending_done()
            waiter.on_pool_ready_h2(conn)
        if self.pending and self.connecting == 0 and self.h2_ready() is None:
            if c.breakers.default.connections.try_acquire():
                self.connect_h2()

    def _h2_closed(self, conn) -> None:
        if conn in self.h2:
            self.h2.remove(conn)
            c = self.cluster
            c.stats.upstream_cx_active.value -= 1
            c.stats.upstream_cx_destroy.value += 1
            c.breakers.default.connections.release()
            c.kick()

    def release(self, conn: UpstreamConnection, reusable: bool) -> None:
        c = self.cluster
        mrpc = self.max_requests
        if mrpc and conn.served >= mrpc:
            c.stats.upstream_cx_max_requests.value += 1
            reusable = False
        if not reusable or conn.closed:
            conn.close()
            return
        if self.pending:  # waiters are served even by a draining cluster: they started on it
            waiter = self.pending.popleft()
            c.pending_done()
            waiter.on_pool_ready(conn)
            return
        if c.draining:
            conn.close()
            return
        self.idle.append(conn)
        if self.idle_timeout:
            # no timer per request: stamp the connection; a sweep per pool closes the stale ones
            conn.idle_since = c.loop.time()
            if self.sweep is None:
                self.sweep = c.loop.call_later(min(c.config.idle_timeout, 30.0), self._sweep_idle)

    def _sweep_idle(self) -> None:
        self.sweep = None
        c = self.cluster
        limit = c.loop.time() - c.config.idle_timeout
        for conn in [x for x in self.idle if x.idle_since <= limit]:
            c.stats.upstream_cx_idle_timeout.value += 1
            conn.close()
        if self.idle and not c.draining:
            self.sweep = c.loop.call_later(min(c.config.idle_timeout, 30.0), self._sweep_idle)

    def on_closed(self, conn: UpstreamConnection) -> None:
        if conn in self.idle:
            self.idle.remove(conn)
        if conn in self.conns:
            self.conns.discard(conn)
            c = self.cluster
            c.stats.upstream_cx_active.value -= 1
            c.stats.upstream_cx_destroy.value += 1
            c.breakers.default.connections.release()
            c.kick()

    def take_idle(self) -> UpstreamConnection | None:
        while self.idle:
            conn = self.idle.pop()
            if not conn.closed:
                return conn
        return None


class ClusterRuntime:
    """A cluster's live state: hosts with health, balancer, pools, breakers, stats."""

    def __init__(self, config: ClusterConfig, store: Store, loop: asyncio.AbstractEventLoop,
                 rng: random.Random | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.name = config.name
        self.plain_choice = config.kind != "ORIGINAL_DST"  # the balancer alone picks the host
        self.express = self.plain_choice and not config.http2  # stream.py may skip acquire()
        self.loop = loop
        self.clock = clock
        self.rng = rng or random.Random()
        self.stats = ClusterStats(store, config.name)
        cb_proto = config.proto.circuit_breakers if config.proto is not None and config.proto.HasField(
            "circuit_breakers") else None
        self.breakers = CircuitBreakers.from_proto(cb_proto, self.stats, store, config.name)
        self.hosts: dict[str, Host] = {}
        self.pools: dict[str, HostPool] = {}
        self.draining = False
        self.lb = make_load_balancer(config.lb_policy, [], rng=self.rng, panic_threshold=config.panic_threshold,
                                     **dict(config.lb_options))
        self.outlier: OutlierDetector | None = None
        self._tick = None
        if config.outlier is not None:
            self.outlier = OutlierDetector(config.outlier, (), self.rng, self.stats)
            self._tick = loop.call_later(config.outlier.interval, self._outlier_sweep)
        self._pending_gauge = self.stats.upstream_rq_pending_active
        if config.kind != "EDS":
            self.set_endpoints(config.endpoints)

    def __repr__(self) -> str:
        return f"<Cluster {self.name} {self.config.kind} hosts={len(self.hosts)} {self.breakers.default!r}>"

    # -- membership
    def set_endpoints(self, endpoints: tuple[EndpointConfig, ...]) -> None:
        fresh: dict[str, Host] = {}
        for ep in endpoints:
            h = self.hosts.get(ep.key)
            if h is None:
                h = Host(ep.key, ep.weight, ep.healthy, metadata=(ep.address, ep.port, ep.priority))
            else:
                h.weight, h.healthy, h.metadata = max(1, ep.weight), ep.healthy, (ep.address, ep.port, ep.priority)
            fresh[ep.key] = h
        for key in set(self.hosts) - set(fresh):
            pool = self.pools.pop(key, None)
            if pool is not None:
                for conn in list(pool.idle):
                    conn.close()
        self.hosts = fresh
        if self.outlier is not None:
            self.outlier.set_hosts(list(fresh.values()))
        self.refresh()

    def refresh(self) -> None:
        """Recompute the balancer's host set: the best priority level with an available host."""
        hosts = list(self.hosts.values())
        levels = sorted({h.metadata[2] for h in hosts}) if hosts else [0]
        chosen = [h for h in hosts if h.metadata[2] == levels[0]]
        for level in levels:
            tier = [h for h in hosts if h.metadata[2] == level]
            if any(h.available for h in tier):
                chosen = tier
                break
        self.lb.set_hosts(chosen)
        self.lb.refresh()
        self.stats.membership_total.value = len(hosts)
        self.stats.membership_healthy.value = sum(1 for h in hosts if h.healthy)

    def choose(self, hash_key: int | None = None, excluded: frozenset = frozenset(),
               original_dst: tuple[str, int] | None = None) -> Host | None:
        if self.config.kind == "ORIGINAL_DST":
            if original_dst is None:
                return None
            key = f"{original_dst[0]}:{original_dst[1]}"
            h = self.hosts.get(key)
            if h is None:
                if len(self.hosts) >= 1024:
                    self._forget_idle_original_dst_hosts()
                h = self.hosts[key] = Host(key, 1, True, metadata=(original_dst[0], original_dst[1], 0))
            return h
        return self.lb.choose(hash_key, excluded)

    def _forget_idle_original_dst_hosts(self) -> None:
        """ORIGINAL_DST hosts come and go with traffic (Envoy's cleanup_interval sweep)."""
        for key, h in list(self.hosts.items()):
            pool = self.pools.get(key)
            if h.active_rq == 0 and (pool is None or (not pool.conns and not pool.pending and not pool.h2)):
                del self.hosts[key]
                self.pools.pop(key, None)

    # -- pools
    def acquire(self, host: Host, waiter) -> bool:
        """Give `waiter` a connection now or later; False on circuit-breaker overflow (503 UO)."""
        res = self.breakers.default
        if not res.requests.try_acquire():
            return False
        pool = self.pools.get(host.address)
        if pool is None:
            pool = self.pools[host.address] = HostPool(self, host, (host.metadata[0], host.metadata[1]))
        self.stats.upstream_rq_total.value += 1
        self.stats.upstream_rq_active.value += 1
        host.active_rq += 1
        waiter.pool = pool
        if self.config.http2:
            h2 = pool.h2_ready()
            if h2 is not None:
                waiter.on_pool_ready_h2(h2)
                return True
            if not res.pending.try_acquire():
                self.release_request(host)
                self.stats.upstream_rq_total.value -= 1
                return False
            self.stats.upstream_rq_pending_total.value += 1
            self._pending_gauge.value += 1
            pool.pending.append(waiter)
            if pool.connecting == 0 and res.connections.try_acquire():
                pool.connect_h2()
            return True
        conn = pool.take_idle()
        if conn is not None:
            waiter.on_pool_ready(conn)
            return True
        if not res.pending.try_acquire():
            self.release_request(host)
            self.stats.upstream_rq_total.value -= 1  # never sent: Envoy does not count it
            return False
        self.stats.upstream_rq_pending_total.value += 1
        self._pending_gauge.value += 1
        pool.pending.append(waiter)
        if pool.connecting < len(pool.pending) and res.connections.try_acquire():
            pool.connect()
        return True

    def pending_done(self) -> None:
        self.breakers.default.pending.release()
        self._pending_gauge.value -= 1

    def cancel(self, waiter) -> None:
        pool = waiter.pool
        if pool is not None and waiter in pool.pending:
            pool.pending.remove(waiter)
            self.pending_done()

    def release_request(self, host: Host) -> None:
        self.breakers.default.requests.release()
        self.stats.upstream_rq_active.value -= 1
        host.active_rq -= 1

    def kick(self) -> None:
        """A connection slot freed: open connections for pools with unserved waiters."""
        conns = self.breakers.default.connections
        for pool in self.pools.values():
            if self.config.http2:
                if pool.pending and pool.connecting == 0 and pool.h2_ready() is None and conns.try_acquire():
                    pool.connect_h2()
                continue
            while pool.pending and pool.connecting < len(pool.pending) and conns.can_create():
                conns.try_acquire()
                pool.connect()

    # -- outlier detection: one Outcome per attempt feeds it (see retry.Outcome)
    def outlier_connect_failure(self, host: Host) -> None:
        if self.outlier is not None and self.outlier.record(host, CONNECT_FAILURE, self.clock()):
            self.refresh()

    def outlier_response(self, host: Host, status: int) -> None:
        if self.outlier is not None and self.outlier.record(host, Outcome.response(status), self.clock()):
            self.refresh()

    def outlier_outcome(self, host: Host, outcome: Outcome) -> None:
        if self.outlier is not None and self.outlier.record(host, outcome, self.clock()):
            self.refresh()

    def _outlier_sweep(self) -> None:
        if self.outlier is None or self.draining:
            return
        if self.outlier.tick(self.clock()):
            self.refresh()
        self._tick = self.loop.call_later(self.outlier.config.interval, self._outlier_sweep)

    def drain(self) -> None:
        """This config was replaced: close idle connections; busy ones close when done."""
        self.draining = True
        for pool in self.pools.values():
            for conn in list(pool.idle):
                conn.close()
            pool.idle.clear()
            for h2 in list(pool.h2):
                if h2.active_streams == 0:
                    h2.close()
        if self._tick is not None:
            self._tick.cancel()
