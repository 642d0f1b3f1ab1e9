"""One request/response exchange: the HTTP filters (CORS, fault) and the router.

A `Stream` runs the filter chain and then the router: pick the cluster (weighted), the host
(load balancer, previous-hosts predicate), get a pooled connection (`ClusterRuntime.acquire`,
which may refuse with UO) and forward head and body; it answers local replies with Envoy's
bodies and response flags. One `attempt.Attempt` is one upstream try; retry decisions come
from `retry.RetryState` on the single `Outcome` classification that also feeds outlier
detection and stats. There is no task per request: callbacks and loop timers only. The
stream writes through its downstream: HTTP/1.1 framing, or an HTTP/2 stream (`self.h2`).
"""

from __future__ import annotations

import os
import time
from collections import deque
from typing import TYPE_CHECKING

from ketch.proxy import retry as retry_mod
from ketch.proxy.attempt import Attempt, MirrorAttempt
from ketch.proxy.config import select_chain
from ketch.proxy.filters import CORS, FAULT
from ketch.proxy.http1 import (HOP_BY_HOP, LAST_CHUNK, _header_lines, encode_chunk, encode_request_head,
                               encode_response_head, forward_block, status_line, strip_hop_by_hop)
from ketch.proxy.lb import compute_hash
from ketch.proxy.routing import DirectResponse, Redirect, RouteAction

if TYPE_CHECKING:
    from ketch.proxy.hcm import Http1Downstream

_monotonic = time.monotonic
RETRY_BUFFER_LIMIT = 1024 * 1024
_NONE: frozenset = frozenset()
_STRIP = HOP_BY_HOP | {"content-length"}  # request headers the plain copy must not carry  # Envoy's per_connection_buffer_limit_bytes default
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


_RID_BATCH = 256  # request ids drawn per getrandom syscall
_rids: list[str] = []
_HEX = b"0123456789abcdef"
_RID_VARIANT = bytes.maketrans(_HEX, b"89ab" * 4)  # any hex digit -> 10xx


def _rid_reset() -> None:
    _rids.clear()


os.register_at_fork(after_in_child=_rid_reset)  # forked workers never share a batch


def _request_id() -> str:
    """A random (version 4) UUID in its text form, like Envoy's x-request-id.

    Drawn 256 at a time as one random hex string cut into 37-character records, whose
    dashes, version digit and variant digit are set by strided slice assignments (all in C):
    a request pays a list pop (uuid.uuid4() costs ~2.4 µs, per-id formatting ~0.5 µs)."""
    if not _rids:
        n = _RID_BATCH
        buf = bytearray(os.urandom(37 * n // 2 + 1).hex()[:37 * n], "ascii")
        for pos in (8, 13, 18, 23):
            buf[pos::37] = b"-" * n
        buf[14::37] = b"4" * n
        buf[19::37] = bytes(buf[19::37]).translate(_RID_VARIANT)
        buf[36::37] = b" " * n
        _rids.extend(buf.decode("ascii").split())
    return _rids.pop()


class _RouteTimeouts:
    """The route timeouts of one length on one loop (15 s unless configured): a FIFO of streams.

    Deadlines expire in the order they were set, so one loop timer armed for the oldest entry
    serves them all and a request costs an append, not a uv timer insert and cancel plus a
    handle object (~2 µs). A stream is its own entry (`stream.deadline`, `stream.deadline_q`):
    finishing just clears `deadline_q`; finished streams are trimmed from the front as they
    go, and the queue is compacted when they outnumber the live ones, so it stays within
    about twice the requests in flight."""

    __slots__ = ("loop", "delay", "entries", "handle", "live")

    def __init__(self, loop, delay: float) -> None:
        self.loop, self.delay = loop, delay
        self.entries: deque = deque()
        self.handle = None
        self.live = 0

    def add(self, stream) -> None:
        entries = self.entries
        while entries and entries[0].deadline_q is not self:
            entries.popleft()
        stream.deadline = self.loop.time() + self.delay
        stream.deadline_q = self
        entries.append(stream)
        self.live += 1
        if self.handle is None:
            self.handle = self.loop.call_at(entries[0].deadline, self._fire)
        elif len(entries) > 2 * self.live + 64:
            self.entries = deque([e for e in entries if e.deadline_q is self])

    @staticmethod
    def cancel(stream) -> None:
        q = stream.deadline_q
        if q is not None:
            stream.deadline_q = None
            q.live -= 1

    def _fire(self) -> None:
        self.handle = None
        entries = self.entries
        now = self.loop.time()
        while entries:
            s = entries[0]
            if s.deadline_q is self:
                if s.deadline > now:
                    break
                s.deadline_q = None
                self.live -= 1
                entries.popleft()
                try:
                    s._global_timeout()
                except Exception as exc:  # noqa: BLE001 - like a loop callback: report, go on
                    self.loop.call_exception_handler({"message": "route timeout failed", "exception": exc})
            else:
                entries.popleft()
        if entries:
            self.handle = self.loop.call_at(entries[0].deadline, self._fire)


_TIMEOUT_QUEUES: dict = {}  # loop -> {delay: _RouteTimeouts}


def route_timeout(loop, delay: float, stream) -> None:
    """Arm `stream._global_timeout()` after `delay` (cancel: `_RouteTimeouts.cancel(stream)`)."""
    queues = _TIMEOUT_QUEUES.get(loop)
    if queues is None:
        if len(_TIMEOUT_QUEUES) > 64:  # closed loops of earlier runs (tests): forget them
            for old in [lp for lp in _TIMEOUT_QUEUES if lp.is_closed()]:
                del _TIMEOUT_QUEUES[old]
        queues = _TIMEOUT_QUEUES[loop] = {}
    q = queues.get(delay)
    if q is None:
        q = queues[delay] = _RouteTimeouts(loop, delay)
    _ROUTE_TIMEOUTS_BY_DELAY[delay] = q  # the last loop's queues, one lookup away
    q.add(stream)


_ROUTE_TIMEOUTS_BY_DELAY: dict[float, _RouteTimeouts] = {}


_GRPC_UNITS = {"H": 3600.0, "M": 60.0, "S": 1.0, "m": 1e-3, "u": 1e-6, "n": 1e-9}


def grpc_timeout(value: str) -> float | None:
    """The grpc-timeout header (e.g. `250m`, `5S`) in seconds; None when malformed."""
    value = value.strip()
    unit = _GRPC_UNITS.get(value[-1:])
    if unit is None or not value[:-1].isdigit() or len(value) > 9:
        return None
    return int(value[:-1]) * unit


def normalize_target(target: str, dot_segments: bool, merge_slashes: bool) -> str:
    """Envoy's normalize_path (RFC 3986 dot-segment removal) and merge_slashes, on the path only."""
    path, q, query = target.partition("?")
    if merge_slashes:
        while "//" in path:
            path = path.replace("//", "/")
    if dot_segments and "." in path:
        out: list[str] = []
        segments = path.split("/")
        for i, seg in enumerate(segments[1:], 1):
            if seg == ".":
                if i == len(segments) - 1:
                    out.append("")
            elif seg == "..":
                if out:
                    out.pop()
                if i == len(segments) - 1:
                    out.append("")
            else:
                out.append(seg)
        path = "/" + "/".join(out)
    return path + q + query


class Stream:
    """One request/response exchange through the filter chain and router."""

    # Defaults live on the class: a request sets only what it uses (no __slots__: 40 stores
    # per request cost more than the few class-attribute reads of the rare fields).
    h2 = None  # http2_io.DownstreamStream when the downstream speaks HTTP/2
    resp_trailers = None
    status = req_bytes = resp_bytes = body_len = 0
    body_overflow = request_complete = started = response_started = done = False
    down_chunked = upgrade_requested = False
    express = False  # the response head may be forwarded from the raw upstream block as is
    sink = route = cluster = wc = attempt = retry = None
    timer = backoff_timer = cors = last_outcome = upstream_host = tunnel_att = None
    deadline_q = None  # the _RouteTimeouts this stream's route timeout is queued on
    deadline = 0.0
    _upstream_headers: list[tuple[str, str]] | None = None  # see upstream_headers
    head_lines: bytes | None = None  # the request's header lines as the scanner wrote them (hcm._whole_request)
    authority = request_id = ""

    def __init__(self, conn: Http1Downstream, head, h2=None, hdrs: dict[str, str] | None = None) -> None:
        self.conn = conn
        self.head = head
        if h2 is not None:
            self.h2 = h2
        state = self.state = conn.state
        self.snapshot = state.snapshot  # in-flight requests finish on the config they started with
        self.t0 = self.last_active = _monotonic()
        self.flags: list[str] = []
        self.body: list[bytes] = []
        self.keep_alive = head.keep_alive
        self.upstream_target = head.target
        self.hdrs: dict[str, str] = hdrs if hdrs is not None else {}
        self.original_dst = conn.original_dst  # an absolute-form request names its own
        self.hcm = conn.hcm

    # -- request side
    def on_request_body(self, data: bytes) -> None:
        self.req_bytes += len(data)
        self.last_active = self.conn.last_active
        sink = self.sink
        if sink is not None:
            sink.write_body(data)
            if not self.body_overflow:
                self.body_len += len(data)
                if self.body_len > RETRY_BUFFER_LIMIT:
                    self.body_overflow = True
                    self.body.clear()
                else:
                    self.body.append(data)
            return
        self.body.append(data)
        self.body_len += len(data)
        if self.body_len > RETRY_BUFFER_LIMIT:
            self.body_overflow = True
            if self.conn.transport is not None and not self.conn.paused:
                self.conn.paused = True
                self.conn.transport.pause_reading()

    def on_request_end(self) -> None:
        self.request_complete = True
        if self.sink is not None:
            self.sink.write_end()
        route = self.route
        if route is not None and not route.express and isinstance(route.action, RouteAction) and route.action.mirrors:
            self._mirror()

    # -- filter chain
    def start(self) -> None:
        if self.started:
            return
        self.started = True
        conn, head, hcm = self.conn, self.head, self.hcm
        target = head.target
        hdrs = self.hdrs
        if not hdrs:  # not built by the codec (HTTP/2): repeated names are joined with ","
            raw = head.headers
            hdrs = dict(raw)
            if len(hdrs) != len(raw):
                hdrs = {}
                for k, v in raw:
                    hdrs[k] = hdrs[k] + "," + v if k in hdrs else v
        authority = hdrs.get("host") or ""
        if "," in authority:  # repeated Host: the first one
            authority = head.get("host") or ""
        if target[:1] != "/" and conn.explicit_proxy and target[:7].lower() == "http://":
            rest = target[7:]
            slash = rest.find("/")
            authority, target = (rest, "/") if slash < 0 else (rest[:slash], rest[slash:])
            host, _, port = authority.rpartition(":") if ":" in authority else (authority, "", "80")
            self.original_dst = (host or authority, int(port) if port.isdigit() else 80)
            if self.original_dst[1] != conn.local[1]:
                # an explicit-proxy connection reused for another port: that port's listener decides
                lc = self.state.listener_manager.handoff_target(self.original_dst)
                chain = select_chain(lc, self.original_dst[0], self.original_dst[1], conn.peer[0]) if lc else None
                if chain is not None and chain.http is not None:
                    hcm = self.hcm = chain.http
        if (hcm.normalize_path or hcm.merge_slashes) and ("/." in target or "//" in target) and target[:1] == "/":
            target = normalize_target(target, hcm.normalize_path, hcm.merge_slashes)
        self.authority = authority
        self.upstream_target = target
        if "expect" in hdrs and not self.request_complete and head.version == "1.1" and self.h2 is None:
            expect = head.get("expect")  # the first one
            if expect is not None and expect.lower() == "100-continue":
                conn.write(_CONTINUE)  # like Envoy (proxy_100_continue off): answer it here, strip it upstream
        if head.method == "CONNECT":
            self.local_reply(405, b"CONNECT is not supported on this listener", close=True)
            return
        hdrs[":authority"] = authority
        hdrs[":path"] = target
        hdrs[":method"] = head.method
        hdrs[":scheme"] = "http"
        self.hdrs = hdrs
        table = hcm.route_table or self.snapshot.routes.get(hcm.rds_name)
        route = None
        match_authority = authority
        if hcm.strip_host_port and ":" in authority and not authority.endswith("]"):
            h, _, p = authority.rpartition(":")
            if hcm.strip_host_port == "any" or p == str(conn.local[1]):
                match_authority = h
        if table is not None:
            vh = table.virtual_host(match_authority)
            if vh is not None:
                route = vh.match(target, hdrs, table.rand)
        if route is None:
            conn.stats.no_route.value += 1
            self.flags.append("NR")
            self.local_reply(404, b"")
            return
        self.route = route
        if route.express and hcm.express and not head.upgrade:
            # no filter has anything to do and nothing rewrites: straight to the router
            if self.h2 is None and head.method != "HEAD" and not route.action.retry_policy.grpc_retry_on:
                self.express = True
                if self._express(route.action):
                    return
            self._forward(route.action)
            return
        if head.upgrade and head.get("upgrade"):
            self.upgrade_requested = True
            ok = hcm.websocket or (isinstance(route.action, RouteAction) and route.action.websocket)
            if not ok or head.get("upgrade", ).lower() != "websocket":
                self.local_reply(403, b"upgrade failed", close=True)
                return
        filters = hcm.filters
        if filters.cors_enabled:
            cors = route.per_filter.get(CORS)
            origin = hdrs.get("origin")
            if cors is not None and cors.enabled and origin:
                if cors.allowed_origin(origin):
                    if head.method == "OPTIONS" and "access-control-request-method" in hdrs:
                        self.local_reply(200, b"", extra=cors.preflight_headers(origin))
                        return
                    self.cors = cors.response_headers(origin)
        if filters.fault_enabled:
            fault = route.per_filter.get(FAULT, filters.fault)
            if fault is not None:
                delay, abort, grpc_abort = fault.decide(hdrs, self.state.rng.random)
                if delay is not None:
                    self.flags.append("DI")
                    self.timer = self.state.loop.call_later(delay, self._after_delay, abort, grpc_abort)
                    return
                if abort is not None or grpc_abort is not None:
                    self._fault_abort(abort, grpc_abort)
                    return
        self._dispatch()

    def _after_delay(self, abort, grpc_abort) -> None:
        self.timer = None
        if self.done:
            return
        if abort is not None or grpc_abort is not None:
            self._fault_abort(abort, grpc_abort)
        else:
            self._dispatch()

    def _fault_abort(self, abort, grpc_abort) -> None:
        self.flags.append("FI")
        if grpc_abort is not None:
            self.local_reply(200, b"", extra=[("content-type", "application/grpc"), ("grpc-status", str(grpc_abort)),
                                              ("grpc-message", "fault filter abort")])
        else:
            self.local_reply(abort, b"fault filter abort")

    def _dispatch(self) -> None:
        action = self.route.action
        if isinstance(action, DirectResponse):
            self.local_reply(action.status, action.body, route_ops=True)
        elif isinstance(action, Redirect):
            self.local_reply(action.status, b"", extra=[("location", self._location(action))], route_ops=True)
        else:
            self._forward(action)

    def _location(self, r: Redirect) -> str:
        path, q, query = self.upstream_target.partition("?")
        if r.path is not None:
            path = r.path
            if "?" in path:
                path, q, query = path.partition("?")
        elif r.prefix_rewrite is not None:
            rv = self.route
            path = r.prefix_rewrite + path[len(rv.path_value):] if rv.path_kind == "prefix" else r.prefix_rewrite
        elif r.regex_rewrite is not None:
            path = r.regex_rewrite[0].sub(r.regex_rewrite[1], path)
        if r.strip_query:
            q = query = ""
        host, _, port = self.authority.partition(":")
        scheme = r.scheme or "http"
        if r.host:
            host = r.host
        if r.port:
            port = str(r.port)
        elif r.scheme and r.scheme != "http":
            port = ""
        if (scheme == "http" and port == "80") or (scheme == "https" and port == "443"):
            port = ""
        return f"{scheme}://{host}{':' + port if port else ''}{path}{q}{query}"

    # -- router
    def _forward(self, action: RouteAction) -> None:
        state = self.state
        if action.weighted_clusters:
            wc = self.wc = action.pick(state.rng.random)
            name = wc.name
        else:
            wc, name = None, action.cluster
        cluster = self.snapshot.clusters.get(name)
        if cluster is None:
            self.flags.append("NC")
            self.local_reply(503, b"")
            return
        self.cluster = cluster
        self._prepare(action, wc)
        self._attempt()

    def _express(self, action: RouteAction) -> bool:
        """The router's common case in one go: a bodiless HTTP/1.1 request to a cluster with an
        idle connection to the host the balancer picks, and room under its circuit breakers.
        False (nothing done) when any of that does not hold: `_forward` then does it all."""
        head = self.head
        if head.chunked or head.content_length:
            return False
        if action.weighted_clusters:
            wc = action.pick(self.state.rng.random)
            name = wc.name
        else:
            wc, name = None, action.cluster
        cluster = self.snapshot.clusters.get(name)
        if cluster is None or not cluster.express or action.retry_policy.per_try_timeout:
            return False
        host = cluster.lb.choose(None)
        if host is None:
            return False
        self.wc = wc
        self.cluster = cluster
        data = self._express_head()
        if data is None:
            self._prepare(action, wc)
        else:
            self._set_timeout(action)
        pool = cluster.pools.get(host.address)
        requests = cluster.breakers.default.requests
        if pool is None or not pool.idle or pool.idle[-1].closed or requests.count >= requests.max:
            self._attempt(host)  # the balancer has spoken: the general path takes it from here
            return True
        # from here on nothing can refuse: this is `_attempt` + `acquire` + `on_pool_ready`
        conn = pool.idle.pop()
        requests.try_acquire()
        stats = cluster.stats
        stats.upstream_rq_total.value += 1
        stats.upstream_rq_active.value += 1
        host.active_rq += 1
        att = self.attempt = Attempt(self, cluster, host, 1)
        att.pool = pool
        att.conn = conn
        self.upstream_host = host
        conn.exchange = att
        conn.until_close = conn.head_request = False
        conn.head_buf = []
        conn.head_len = 0
        if conn.idle_timer is not None:
            conn.idle_timer.cancel()
            conn.idle_timer = None
        if data is None:
            headers = self.upstream_headers
            if self.route.include_attempt_count:
                headers = headers + [("x-envoy-attempt-count", "1")]
            data = encode_request_head(head.method, self.upstream_target, headers)
        att.sent_at = _monotonic()
        conn.transport.write(data)
        return True

    def _express_head(self) -> bytes | None:
        """The first try's request head written straight from the request's headers when none
        of them is to be dropped or changed (only Envoy's additions follow them); the header
        list is then built only if a retry needs it (`upstream_headers`). None: `_prepare`."""
        hdrs, hcm, route = self.hdrs, self.hcm, self.route
        if (not _STRIP.isdisjoint(hdrs) or "expect" in hdrs or "host" not in hdrs or self.conn.external
                or (hcm.use_remote_address and not hcm.skip_xff_append)
                or (route.include_attempt_count and "x-envoy-attempt-count" in hdrs)):
            return None
        extra = "" if "x-forwarded-proto" in hdrs else "x-forwarded-proto: http\r\n"
        rid = hdrs.get("x-request-id")
        if rid is None and hcm.generate_request_id:
            rid = _request_id()
            extra = f"{extra}x-request-id: {rid}\r\n"
        self.request_id = rid or ""
        if route.include_attempt_count:
            extra += "x-envoy-attempt-count: 1\r\n"
        head = self.head
        lines = self.head_lines
        if lines is not None:
            return b"%b %b HTTP/1.1\r\n%b%b\r\n" % (head.method.encode(), self.upstream_target.encode("latin-1"),
                                                     lines, extra.encode("latin-1"))
        return f"{head.method} {self.upstream_target} HTTP/1.1\r\n{_header_lines(head.headers)}{extra}\r\n".encode(
            "latin-1")

    @property
    def upstream_headers(self) -> list[tuple[str, str]]:
        """The upstream request's headers (built on first use when the first try went express)."""
        headers = self._upstream_headers
        if headers is None:
            headers = self._upstream_headers = self._headers_list(self.route.action, self.wc)
        return headers

    @upstream_headers.setter
    def upstream_headers(self, headers: list[tuple[str, str]]) -> None:
        self._upstream_headers = headers

    def _prepare(self, action: RouteAction, wc) -> None:
        """The upstream request's headers and the route timeout (once per request, not per try)."""
        self.upstream_headers = self._headers_list(action, wc)
        self._set_timeout(action)

    def _headers_list(self, action: RouteAction, wc) -> list[tuple[str, str]]:
        conn, head, hcm, hdrs, route = self.conn, self.head, self.hcm, self.hdrs, self.route
        if _STRIP.isdisjoint(hdrs):  # nothing hop-by-hop (the usual request): a plain copy
            headers = list(head.headers)
        else:
            headers = strip_hop_by_hop(head.headers, keep_upgrade=self.upgrade_requested)
            if self.upgrade_requested:
                headers = [(k, v) for k, v in headers if k != "connection"] + [("connection", "upgrade")]
        if "expect" in hdrs:
            headers = [(k, v) for k, v in headers if k != "expect"]
        if conn.external:  # Envoy strips x-envoy-* only from external (untrusted) requests
            headers = [(k, v) for k, v in headers if not k.startswith("x-envoy-")]
        elif route.include_attempt_count and "x-envoy-attempt-count" in hdrs:
            headers = [(k, v) for k, v in headers if k != "x-envoy-attempt-count"]
        if hcm.use_remote_address and not hcm.skip_xff_append:
            xff = hdrs.get("x-forwarded-for")
            ip = conn.peer[0]
            headers = [(k, v) for k, v in headers if k != "x-forwarded-for"] + [
                ("x-forwarded-for", f"{xff}, {ip}" if xff else ip)]
        if "host" not in hdrs:  # HTTP/1.0 without Host, or absolute-form only
            headers.append(("host", self.authority or self.cluster.name))
        if "x-forwarded-proto" not in hdrs:
            headers.append(("x-forwarded-proto", "http"))
        rid = hdrs.get("x-request-id")
        if rid is None and hcm.generate_request_id:
            rid = self.request_id or _request_id()  # one id per request, whichever try asks first
            headers.append(("x-request-id", rid))
        self.request_id = rid or ""
        if not route.plain:
            headers = self._rewrite(action, wc, headers)
        if head.chunked:
            headers.append(("transfer-encoding", "chunked"))
        elif head.content_length is not None:
            headers.append(("content-length", str(head.content_length)))
        return headers

    def _set_timeout(self, action: RouteAction) -> None:
        hdrs = self.hdrs
        timeout = action.timeout
        if action.grpc_timeout_header and "grpc-timeout" in hdrs:
            t = grpc_timeout(hdrs["grpc-timeout"])
            if t is not None:
                timeout = min(t, action.grpc_timeout_max) if action.grpc_timeout_max else t
        if action.max_stream_duration:
            timeout = min(timeout, action.max_stream_duration) if timeout else action.max_stream_duration
        if timeout:
            q = _ROUTE_TIMEOUTS_BY_DELAY.get(timeout)  # this loop's queue for that length, if known
            if q is not None and q.loop is self.state.loop:
                q.add(self)
            else:
                route_timeout(self.state.loop, timeout, self)

    def _rewrite(self, action: RouteAction, wc, headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
        """Path and host rewrites and header operations (routes that are not `plain`)."""
        route = self.route
        target = self.upstream_target
        if action.prefix_rewrite is not None and route.path_kind in ("prefix", "separated", "any"):
            target = action.prefix_rewrite + target[len(route.path_value):]
            if target.startswith("//"):
                target = target[1:]
        elif action.regex_rewrite is not None:
            p, q, query = target.partition("?")
            target = action.regex_rewrite[0].sub(action.regex_rewrite[1], p) + q + query
        self.upstream_target = target
        host_rewrite = (wc.host_rewrite if wc is not None and wc.host_rewrite else None) or action.host_rewrite
        if host_rewrite:
            headers = [(k, v) for k, v in headers if k != "host"] + [("host", host_rewrite)]
            headers.append(("x-forwarded-host", self.authority))
        if wc is not None and wc.request_ops:
            headers = wc.request_ops.apply(headers)
        for ops in route.request_ops:
            headers = ops.apply(headers)
        return headers

    def _attempt(self, host=None) -> None:
        """One try; `host` when the balancer has already chosen (the express path)."""
        self.backoff_timer = None
        if self.done:
            return
        cluster = self.cluster
        retry = self.retry  # created on the first failed try (most requests never need one)
        if host is not None:
            pass
        elif cluster.plain_choice and retry is None and not self.route.action.hash_policy:
            host = cluster.lb.choose(None)
        else:
            action = self.route.action
            hash_key = compute_hash(action.hash_policy, self.hdrs, self.conn.peer[0],
                                    self.upstream_target.partition("?")[2]) if action.hash_policy else None
            host = cluster.choose(hash_key, retry.excluded if retry is not None else _NONE, self.original_dst)
        if host is None:
            cluster.stats.upstream_cx_none_healthy.value += 1
            self.flags.append("UH")
            self.local_reply(503, b"no healthy upstream")
            return
        att = self.attempt = Attempt(self, cluster, host, retry.on_attempt(host) if retry is not None else 1)
        self.upstream_host = host
        if not cluster.acquire(host, att):
            self.attempt = None
            if retry is not None:
                retry.on_attempt_done()
            self.flags.append("UO")
            self.local_reply(503, b"upstream connect error or disconnect/reset before headers. reset reason: overflow",
                             extra=[("x-envoy-overloaded", "true")])

    def attempt_headers(self, att: Attempt) -> bytes:
        headers = self.upstream_headers
        if self.route.include_attempt_count:
            return encode_request_head(self.head.method, self.upstream_target,
                                       headers + [("x-envoy-attempt-count", str(att.number))])
        return encode_request_head(self.head.method, self.upstream_target, headers)

    def _global_timeout(self) -> None:
        if self.done:
            return
        self.cluster.stats.upstream_rq_timeout.value += 1
        if self.attempt is not None:
            self.attempt.cancel()
            self.attempt = None
        self.flags.append("UT")
        self.local_reply(504, b"upstream request timeout")

    def attempt_failed(self, att: Attempt, outcome) -> None:
        """An attempt ended without a forwarded response (connect failure, reset, per-try timeout)."""
        if att is not self.attempt or self.done:
            return
        self.attempt = None
        self.last_outcome = outcome
        if self.response_started:
            self.flags.append(outcome.flag or "UR")
            self.abort_downstream()
            return
        if self._maybe_retry(outcome, None):
            return
        if outcome.flag:
            self.flags.append(outcome.flag)
        if outcome.kind == retry_mod.TIMEOUT:
            self.local_reply(504, b"upstream request timeout")
        else:
            self.local_reply(outcome.status, b"upstream connect error or disconnect/reset before headers. reset reason: "
                             + outcome.reset_reason.encode())

    def _maybe_retry(self, outcome, resp_headers) -> bool:
        policy = self.route.action.retry_policy
        if not policy.enabled or self.body_overflow:
            return False
        r = self.retry
        if r is None:  # the first try failed: retry bookkeeping starts now, as if from its start
            cluster = self.cluster
            r = self.retry = retry_mod.RetryState(policy, cluster.breakers.default.retries, self.state.rng,
                                                  cluster.stats)
            r.on_attempt(self.upstream_host)
        d = r.decide(outcome, time.monotonic(), resp_headers)
        if d.action == "retry":
            self.sink = None
            self.backoff_timer = self.state.loop.call_later(d.delay, self._attempt)
            return True
        if d.action == "limit_exceeded":
            self.flags.append("URX")
        return False

    def on_response_head(self, att: Attempt, resp) -> bool:
        """Returns False when the attempt is discarded (retried)."""
        if att is not self.attempt or self.done:
            return False
        status = resp.status
        policy = self.route.action.retry_policy
        if policy.enabled and (status >= 400 or policy.grpc_retry_on):
            # gRPC conditions read the grpc-status of a trailers-only response (in the head)
            grpc = None
            for k, v in resp.headers:
                if k == "grpc-status":
                    grpc = v
            outcome = retry_mod.Outcome.response(status, grpc)
            self.last_outcome = outcome
            if (status >= 400 or grpc is not None) and self._maybe_retry(outcome, dict(resp.headers)):
                self.attempt = None
                return False
        self.status = status
        self.response_started = True
        head = self.head
        if (self.express and resp.simple and resp.content_length is not None and 200 <= status
                and status != 204 and status != 304 and self.keep_alive and self.request_complete
                and not self.state.draining and not self.conn.drain_after):
            # the common case: the upstream's header lines go out as they came, minus hop-by-hop
            hcm = self.hcm
            self.conn.write(b"%b%b%b" % (
                status_line(status), forward_block(resp.raw, hcm.server_header == "OVERWRITE"),
                hcm.response_tail((_monotonic() - att.sent_at) * 1000)))
            return True
        if (resp.simple and self.h2 is None and status >= 200 and status != 204 and status != 304
                and head.method != "HEAD" and not self.route.response_ops and not self.cors
                and (self.wc is None or not self.wc.response_ops)):
            # the common case: the upstream's header lines go out as they came, minus hop-by-hop
            hcm = self.hcm
            sh = hcm.server_header
            block = forward_block(resp.raw, sh == "OVERWRITE")
            extra = ""
            if resp.content_length is None:
                if head.version == "1.1":
                    self.down_chunked = True
                    extra = "\r\ntransfer-encoding: chunked"
                else:
                    self.keep_alive = False
            extra += f"\r\nx-envoy-upstream-service-time: {int((time.monotonic() - att.sent_at) * 1000)}"
            if sh == "OVERWRITE" or (sh == "APPEND_IF_ABSENT" and b"\nserver:" not in block.lower()):
                extra += f"\r\nserver: {hcm.server_name}"
            if hcm.request_id_in_response and self.request_id:
                extra += f"\r\nx-request-id: {self.request_id}"
            if not self.keep_alive or not self.request_complete or self.state.draining or self.conn.drain_after:
                self.keep_alive = False
                extra += "\r\nconnection: close"
            self.conn.write(b"%b%b%b\r\n\r\n" % (status_line(status), block, extra.encode("latin-1")))
            return True
        headers = strip_hop_by_hop(resp.headers, keep_upgrade=status == 101)
        no_body = head.method == "HEAD" or status in (204, 304) or status < 200
        if self.h2 is not None:
            if resp.content_length is not None:
                headers.append(("content-length", str(resp.content_length)))
        elif status == 101:
            pass
        elif no_body:
            if resp.content_length is not None and head.method == "HEAD":
                headers.append(("content-length", str(resp.content_length)))
        elif resp.content_length is not None:
            headers.append(("content-length", str(resp.content_length)))
        elif head.version == "1.1":
            self.down_chunked = True
            headers.append(("transfer-encoding", "chunked"))
        else:
            self.keep_alive = False
        headers.append(("x-envoy-upstream-service-time", str(int((time.monotonic() - att.sent_at) * 1000))))
        if self.wc is not None and self.wc.response_ops:
            headers = self.wc.response_ops.apply(headers)
        for ops in self.route.response_ops:
            headers = ops.apply(headers)
        if self.cors:
            headers.extend(self.cors)
        sh = self.hcm.server_header
        if sh == "OVERWRITE":
            headers = [kv for kv in headers if kv[0] != "server"]
            headers.append(("server", self.hcm.server_name))
        elif sh == "APPEND_IF_ABSENT" and "server" not in (kv[0] for kv in headers):
            headers.append(("server", self.hcm.server_name))
        if self.hcm.request_id_in_response and self.request_id:
            headers.append(("x-request-id", self.request_id))
        if self.h2 is not None:
            self.h2.send_response(status, headers, end_stream=no_body)
            return True
        if status != 101 and (not self.keep_alive or not self.request_complete or self.conn.state.draining
                              or self.conn.drain_after):
            self.keep_alive = False
            headers.append(("connection", "close"))
        self.conn.write(encode_response_head(status, headers))
        return True

    def on_response_body(self, data: bytes) -> None:
        self.resp_bytes += len(data)
        self.last_active = time.monotonic()
        if self.h2 is not None:
            if not self.h2.send_data(data) and self.attempt is not None:
                self.attempt.pause_response()
            return
        self.conn.write(encode_chunk(data) if self.down_chunked else data)

    def on_response_trailers(self, trailers: list[tuple[str, str]]) -> None:
        self.resp_trailers = trailers

    def on_response_end(self, att: Attempt) -> None:
        if self.h2 is not None:
            if self.resp_trailers:
                self.h2.send_trailers(self.resp_trailers)
            elif not self.h2_ended_at_head():
                self.h2.send_data(b"", end_stream=True)
        elif self.down_chunked:
            if self.resp_trailers:
                self.conn.write(b"0\r\n" + "".join(f"{k}: {v}\r\n" for k, v in self.resp_trailers).encode("latin-1")
                                + b"\r\n")
            else:
                self.conn.write(LAST_CHUNK)
        self.finish()

    def h2_ended_at_head(self) -> bool:
        head = self.head
        return head.method == "HEAD" or self.status in (204, 304)

    # -- WebSocket / upgrade tunnel
    def on_upgrade(self, att: Attempt, rest: bytes) -> None:
        if self.status != 101:
            return
        if self.deadline_q is not None:
            _RouteTimeouts.cancel(self)
        self.tunnel_att = att
        self.conn.tunnel = self
        if rest:
            self.conn.write(rest)
        pending = b"".join(self.body)
        self.body.clear()
        if pending:
            att.conn.write(pending)

    def tunnel_from_downstream(self, data: bytes) -> None:
        att = self.tunnel_att
        if att is not None and att.conn is not None:
            att.conn.write(data)
        else:
            self.body.append(data)

    def tunnel_downstream_eof(self) -> None:
        att = self.tunnel_att
        if att is not None and att.conn is not None and att.conn.transport is not None:
            if att.conn.transport.can_write_eof():
                att.conn.transport.write_eof()

    def on_tunnel_data(self, data: bytes) -> None:
        self.resp_bytes += len(data)
        self.conn.write(data)

    def on_tunnel_closed(self) -> None:
        if self.conn.transport is not None:
            self.conn.transport.close()
        self.finish()

    # -- flow control
    def pause_response(self) -> None:
        if self.attempt is not None:
            self.attempt.pause_response()

    def resume_response(self) -> None:
        if self.attempt is not None:
            self.attempt.resume_response()

    # -- endings
    def local_reply(self, status: int, body: bytes, extra=(), close: bool = False, route_ops: bool = False) -> None:
        if self.done:
            return
        if self.response_started:
            self.abort_downstream()
            return
        self.status = status
        self.response_started = True
        headers = [("content-length", str(len(body)))]
        if body:
            headers.append(("content-type", "text/plain"))
        headers.extend(extra)
        if route_ops and self.route is not None:
            for ops in self.route.response_ops:
                headers = ops.apply(headers)
        if self.cors:
            headers.extend(self.cors)
        headers.append(("date", time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime())))
        headers.append(("server", self.hcm.server_name))
        if self.h2 is not None:
            if self.head.method == "HEAD":
                body = b""
            self.resp_bytes = len(body)
            self.h2.send_response(status, headers, end_stream=not body)
            if body:
                self.h2.send_data(body, end_stream=True)
            self.finish()
            return
        if close or not self.request_complete or not self.keep_alive or self.state.draining or self.conn.drain_after:
            self.keep_alive = False
            headers.append(("connection", "close"))
        if self.head.method == "HEAD":
            body = b""
        self.resp_bytes = len(body)
        self.conn.write(encode_response_head(status, headers) + body)
        self.finish()

    def timed_out(self, reason: str) -> None:
        """stream_idle_timeout / request_timeout (swept by ProxyState): 408, or reset mid-response."""
        if self.done or self.tunnel_att is not None:
            return
        if self.attempt is not None:
            self.attempt.cancel()
            self.attempt = None
        if self.conn.hcm is not None:
            self.conn.stats.downstream_rq_timeout.value += 1
        self.flags.append("SI" if reason == "stream" else "DT")
        self.local_reply(408, b"stream timeout" if reason == "stream" else b"request timeout", close=True)

    def abort_downstream(self) -> None:
        """The response cannot be completed: reset the stream (HTTP/2) or the connection."""
        if self.h2 is not None:
            self.h2.reset()
        else:
            self.conn.abort()
        self.downstream_reset()

    def finish(self) -> None:
        if self.done:
            return
        self.done = True
        q = self.deadline_q
        if q is not None:  # the route timeout (see _RouteTimeouts.cancel)
            self.deadline_q = None
            q.live -= 1
        if self.timer is not None:  # a handle's callback is bound to this stream: no cycle left
            self.timer.cancel()
            self.timer = None
        if self.backoff_timer is not None:
            self.backoff_timer.cancel()
            self.backoff_timer = None
        if self.retry is not None:
            self.retry.finish(self.last_outcome or (retry_mod.Outcome.response(self.status) if self.status else None))
        self.sink = None
        self.state.observe(self)
        self.attempt = None  # Attempt.stream points back here: refcounting frees both, not the GC
        self.conn.stream_done(self, self.keep_alive)

    def downstream_reset(self) -> None:
        """The downstream connection went away mid-stream."""
        if self.done:
            return
        if not self.response_started:
            self.flags.append("DC")
        if self.attempt is not None:
            self.attempt.cancel()
            self.attempt = None
        if self.cluster is not None and self.backoff_timer is not None:
            self.backoff_timer.cancel()
        self.done = True
        if self.deadline_q is not None:
            _RouteTimeouts.cancel(self)
        for t in (self.timer, self.backoff_timer):
            if t is not None:
                t.cancel()
        if self.retry is not None:
            self.retry.finish(None)
        if self.status == 0:
            self.status = 0
        self.state.observe(self)

    def _mirror(self) -> None:
        for m in self.route.action.mirrors:
            if m.fraction < 1.0 and self.state.rng.random() >= m.fraction:
                continue
            cluster = self.snapshot.clusters.get(m.cluster)
            if cluster is None or self.body_overflow:
                continue
            host = cluster.choose(None, frozenset(), self.original_dst)
            if host is None:
                continue
            authority = self.authority
            if m.shadow_suffix:
                h, sep, port = authority.partition(":")
                authority = f"{h}-shadow{sep}{port}"
            headers = [(k, v) for k, v in self.upstream_headers if k != "host"] + [("host", authority)]
            if self.head.chunked:
                headers = [(k, v) for k, v in headers if k != "transfer-encoding"] + [
                    ("content-length", str(self.body_len))]
            data = encode_request_head(self.head.method, self.upstream_target, headers) + b"".join(self.body)
            cluster.acquire(host, MirrorAttempt(cluster, host, data, self.head.method == "HEAD"))
