"""The HTTP/1.1 connection manager: downstream connections, streams, filters and the router.

`Http1Downstream` is the asyncio Protocol of one downstream connection; it feeds bytes to the
codec and runs one `Stream` per request (pipelined requests wait their turn). A `Stream` runs
the filter chain (CORS, fault) and then the router: pick the cluster (weighted), the host
(load balancer, previous-hosts), get a pooled connection (`ClusterRuntime.acquire`, which may
refuse with UO), and forward head and body. An `Attempt` is one upstream try; retry
decisions come from `retry.RetryState` on one `Outcome` classification that also feeds
outlier detection and stats. No task is created per request: everything is callbacks and
loop timers, so the hot path stays in the tens of microseconds.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import time

from ketch.proxy import retry as retry_mod
from ketch.proxy.filters import CORS, FAULT
from ketch.proxy.http1 import (LAST_CHUNK, ProtocolError, RequestDecoder, encode_chunk, encode_request_head,
                               encode_response_head, strip_hop_by_hop)
from ketch.proxy.lb import compute_hash
from ketch.proxy.routing import DirectResponse, Redirect, RouteAction

RETRY_BUFFER_LIMIT = 1024 * 1024  # Envoy's per_connection_buffer_limit_bytes default
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


def _request_id() -> str:
    """A random (version 4) UUID in its text form, without uuid.UUID's overhead."""
    h = os.urandom(16).hex()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:32]}"


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


def _internal(ip: str) -> bool:
    try:
        return ipaddress.ip_address(ip.split("%")[0]).is_private
    except ValueError:
        return False


class Http1Downstream:
    """asyncio Protocol for one downstream HTTP/1.1 connection."""

    def __init__(self, state, hcm, peer: tuple[str, int], local: tuple[str, int],
                 original_dst: tuple[str, int] | None = None, explicit_proxy: bool = False,
                 listener_stats=None) -> None:
        self.state = state
        self.hcm = hcm
        self.peer = peer
        self.local = local
        self.original_dst = original_dst
        self.explicit_proxy = explicit_proxy
        self.listener_stats = listener_stats
        self.stats = state.http_stats(hcm.stat_prefix)
        self.decoder = RequestDecoder(self, hcm.max_request_headers_kb * 1024)
        self.transport: asyncio.Transport | None = None
        self.streams: list[Stream] = []
        self.parsing: Stream | None = None
        self.closed = False
        self.closing = False  # close after the current responses
        self.paused = False
        self.tunnel: Stream | None = None
        self.idle_timer = None
        self.corked: list[bytes] | None = None
        self.fresh = True
        self.listener_name = ""
        self.external = hcm.use_remote_address and not _internal(peer[0])
        self.drain_after = False  # its listener was removed: close after the current response
        self.last_active = time.monotonic()

    # -- asyncio
    def connection_made(self, transport) -> None:
        self.transport = transport
        self.stats.downstream_cx_total.value += 1
        self.stats.downstream_cx_active.value += 1
        self.state.connections.add(self)

    def data_received(self, data: bytes) -> None:
        self.last_active = time.monotonic()
        if self.tunnel is not None:
            self.tunnel.tunnel_from_downstream(data)
            return
        if self.closing:
            return
        if self.fresh:
            self.fresh = False
            if data[:3] == b"PRI" and self.hcm.codec != "HTTP1":  # h2c with prior knowledge
                from ketch.proxy.hcm_h2 import H2Downstream

                self.state.connections.discard(self)
                self.closed = True
                H2Downstream(self).takeover(self.transport, data)
                return
        try:
            self.decoder.feed(data)
        except ProtocolError as exc:
            self.protocol_error(exc)

    def eof_received(self) -> bool:
        if self.tunnel is not None:
            self.tunnel.tunnel_downstream_eof()
            return True
        return False

    def connection_lost(self, exc) -> None:
        if self.closed:
            return
        self.closed = True
        self.stats.downstream_cx_active.value -= 1
        self.state.connections.discard(self)
        for s in list(self.streams):
            s.downstream_reset()
        self.streams.clear()

    def pause_writing(self) -> None:
        if self.streams:
            self.streams[0].pause_response()

    def resume_writing(self) -> None:
        if self.streams:
            self.streams[0].resume_response()

    # -- codec events
    def on_head(self, head) -> None:
        self.stats.downstream_rq_total.value += 1
        self.stats.downstream_rq_http1_total.value += 1
        self.stats.downstream_rq_active.value += 1
        stream = Stream(self, head)
        self.parsing = stream
        self.streams.append(stream)
        if len(self.streams) == 1:
            stream.start()
        elif not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()

    def on_body(self, data: bytes) -> None:
        if self.parsing is not None:
            self.parsing.on_request_body(data)

    def on_end(self) -> None:
        s, self.parsing = self.parsing, None
        if s is not None:
            s.on_request_end()

    def on_upgrade(self, rest: bytes) -> None:
        s = self.streams[-1] if self.streams else None
        if s is None or not s.upgrade_requested:
            self.protocol_error(ProtocolError(400, "unexpected upgrade"))
            return
        self.tunnel = s
        if rest:
            s.tunnel_from_downstream(rest)

    def protocol_error(self, exc: ProtocolError) -> None:
        self.stats.downstream_cx_protocol_error.value += 1
        if self.transport is None or self.closed:
            return
        if not any(s.response_started for s in self.streams):
            body = exc.reason.encode()
            self.transport.write(encode_response_head(exc.status, [
                ("content-length", str(len(body))), ("content-type", "text/plain"), ("connection", "close")]) + body)
        self.closing = True
        self.transport.close()

    # -- stream lifecycle
    def stream_done(self, stream: Stream, keep_alive: bool) -> None:
        self.stats.downstream_rq_active.value -= 1
        if self.streams and self.streams[0] is stream:
            self.streams.pop(0)
        if not keep_alive or self.closing or self.drain_after or self.state.draining:
            self.closing = True
            if self.corked is not None:
                self.uncork()
            if self.transport is not None:
                self.transport.close()
            return
        if self.streams:
            self.streams[0].start()
        if self.paused and len(self.streams) <= 1 and self.transport is not None:
            self.paused = False
            self.transport.resume_reading()

    def write(self, data: bytes) -> None:
        if self.corked is not None:
            self.corked.append(data)
        elif self.transport is not None and not self.closed:
            self.transport.write(data)

    def cork(self) -> None:
        """Collect writes (one syscall for a response's head and body arriving together)."""
        if self.corked is None:
            self.corked = []

    def uncork(self) -> None:
        out, self.corked = self.corked, None
        if out and self.transport is not None and not self.closed:
            self.transport.write(out[0] if len(out) == 1 else b"".join(out))

    def abort(self) -> None:
        self.corked = None
        if self.transport is not None and not self.closed:
            self.transport.abort()


class Stream:
    """One request/response exchange through the filter chain and router."""

    __slots__ = ("conn", "head", "h2", "resp_trailers", "state", "snapshot", "t0", "flags", "status", "req_bytes",
                 "resp_bytes", "body", "body_len", "body_overflow", "request_complete", "sink", "started",
                 "response_started", "done", "down_chunked", "keep_alive", "route", "cluster", "wc", "attempt",
                 "retry", "timer", "backoff_timer", "cors", "upgrade_requested", "upstream_headers",
                 "upstream_target", "authority", "last_outcome", "upstream_host", "request_id", "hdrs",
                 "tunnel_att", "last_active")

    def __init__(self, conn: Http1Downstream, head, h2=None) -> None:
        self.conn = conn
        self.head = head
        self.h2 = h2  # http2_io.DownstreamStream when the downstream speaks HTTP/2
        self.resp_trailers = None
        self.state = conn.state
        self.snapshot = conn.state.snapshot  # in-flight requests finish on the config they started with
        self.t0 = time.monotonic()
        self.flags: list[str] = []
        self.status = 0
        self.req_bytes = 0
        self.resp_bytes = 0
        self.body: list[bytes] = []
        self.body_len = 0
        self.body_overflow = False
        self.request_complete = False
        self.sink: Attempt | None = None
        self.started = False
        self.response_started = False
        self.done = False
        self.down_chunked = False
        self.keep_alive = head.keep_alive
        self.route = None
        self.cluster = None
        self.wc = None
        self.attempt: Attempt | None = None
        self.retry: retry_mod.RetryState | None = None
        self.timer = None
        self.backoff_timer = None
        self.cors = None
        self.upgrade_requested = False
        self.upstream_headers: list[tuple[str, str]] = []
        self.upstream_target = head.target
        self.authority = ""
        self.last_outcome = None
        self.upstream_host = None
        self.request_id = ""
        self.hdrs: dict[str, str] = {}
        self.tunnel_att = None
        self.last_active = self.t0

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
        if self.route is not None and isinstance(self.route.action, RouteAction) and self.route.action.mirrors:
            self._mirror()

    # -- filter chain
    def start(self) -> None:
        if self.started:
            return
        self.started = True
        conn, head, hcm = self.conn, self.head, self.conn.hcm
        target = head.target
        authority = head.get("host") or ""
        if conn.explicit_proxy and target[:7].lower() == "http://":
            rest = target[7:]
            slash = rest.find("/")
            authority, target = (rest, "/") if slash < 0 else (rest[:slash], rest[slash:])
            host, _, port = authority.rpartition(":") if ":" in authority else (authority, "", "80")
            conn.original_dst = (host or authority, int(port) if port.isdigit() else 80)
        if (hcm.normalize_path or hcm.merge_slashes) and target[:1] == "/":
            target = normalize_target(target, hcm.normalize_path, hcm.merge_slashes)
        self.authority = authority
        self.upstream_target = target
        if not self.request_complete and head.version == "1.1" and self.h2 is None:
            expect = head.get("expect")
            if expect is not None and expect.lower() == "100-continue":
                conn.write(_CONTINUE)  # like Envoy (proxy_100_continue off): answer it here, strip it upstream
        if head.method == "CONNECT":
            self.local_reply(405, b"CONNECT is not supported on this listener", close=True)
            return
        hdrs: dict[str, str] = {}
        for k, v in head.headers:
            if k in hdrs:
                hdrs[k] = hdrs[k] + "," + v
            else:
                hdrs[k] = v
        hdrs[":authority"] = authority
        hdrs[":path"] = target
        hdrs[":method"] = head.method
        hdrs[":scheme"] = "http"
        self.hdrs = hdrs
        if hcm.route_table is not None:
            table = hcm.route_table
        else:
            table = self.snapshot.routes.get(hcm.rds_name)
        route = None
        if table is not None:
            vh = table.virtual_host(authority)
            if vh is not None:
                route = vh.match(target, hdrs, table.rand)
        if route is None:
            conn.stats.no_route.value += 1
            self.flags.append("NR")
            self.local_reply(404, b"")
            return
        self.route = route
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
        wc = action.pick(state.rng.random)
        self.wc = wc
        name = wc.name if wc is not None else action.cluster
        cluster = self.snapshot.clusters.get(name)
        if cluster is None:
            self.flags.append("NC")
            self.local_reply(503, b"")
            return
        self.cluster = cluster
        conn, head, hcm = self.conn, self.head, self.conn.hcm
        headers = strip_hop_by_hop(head.headers, keep_upgrade=self.upgrade_requested)
        if self.upgrade_requested:
            headers = [(k, v) for k, v in headers if k != "connection"] + [("connection", "upgrade")]
        hdrs = self.hdrs
        if "expect" in hdrs:
            headers = [(k, v) for k, v in headers if k != "expect"]
        if conn.external:  # Envoy strips x-envoy-* only from external (untrusted) requests
            headers = [(k, v) for k, v in headers if not k.startswith("x-envoy-")]
        elif self.route.include_attempt_count and "x-envoy-attempt-count" in hdrs:
            headers = [(k, v) for k, v in headers if k != "x-envoy-attempt-count"]
        if hcm.use_remote_address and not hcm.skip_xff_append:
            xff = self.hdrs.get("x-forwarded-for")
            ip = conn.peer[0]
            headers = [(k, v) for k, v in headers if k != "x-forwarded-for"] + [
                ("x-forwarded-for", f"{xff}, {ip}" if xff else ip)]
        if "host" not in self.hdrs:  # HTTP/1.0 without Host, or absolute-form only
            headers.append(("host", self.authority or cluster.name))
        if "x-forwarded-proto" not in self.hdrs:
            headers.append(("x-forwarded-proto", "http"))
        rid = self.hdrs.get("x-request-id")
        if rid is None and hcm.generate_request_id:
            rid = _request_id()
            headers.append(("x-request-id", rid))
        self.request_id = rid or ""
        target = self.upstream_target
        if action.prefix_rewrite is not None and self.route.path_kind in ("prefix", "separated", "any"):
            target = action.prefix_rewrite + target[len(self.route.path_value):]
            if target.startswith("//"):
                target = target[1:]
        elif action.regex_rewrite is not None:
            p, q, query = target.partition("?")
            target = action.regex_rewrite[0].sub(action.regex_rewrite[1], p) + q + query
        host_rewrite = (wc.host_rewrite if wc is not None and wc.host_rewrite else None) or action.host_rewrite
        if host_rewrite:
            headers = [(k, v) for k, v in headers if k != "host"] + [("host", host_rewrite)]
            headers.append(("x-forwarded-host", self.authority))
        if wc is not None and wc.request_ops:
            headers = wc.request_ops.apply(headers)
        for ops in self.route.request_ops:
            headers = ops.apply(headers)
        if head.chunked:
            headers.append(("transfer-encoding", "chunked"))
        elif head.content_length is not None:
            headers.append(("content-length", str(head.content_length)))
        self.upstream_headers = headers
        self.upstream_target = target
        policy = action.retry_policy
        self.retry = retry_mod.RetryState(policy, cluster.breakers.default.retries, state.rng, cluster.stats) \
            if policy.enabled else None
        if action.timeout:
            self.timer = state.loop.call_later(action.timeout, self._global_timeout)
        self._attempt()

    def _attempt(self) -> None:
        self.backoff_timer = None
        if self.done:
            return
        cluster = self.cluster
        action = self.route.action
        excluded = self.retry.excluded if self.retry is not None else frozenset()
        hash_key = compute_hash(action.hash_policy, self.hdrs, self.conn.peer[0],
                                self.upstream_target.partition("?")[2]) if action.hash_policy else None
        host = cluster.choose(hash_key, excluded, self.conn.original_dst)
        if host is None:
            cluster.stats.upstream_cx_none_healthy.value += 1
            self.flags.append("UH")
            self.local_reply(503, b"no healthy upstream")
            return
        n = self.retry.on_attempt(host) if self.retry is not None else 1
        att = Attempt(self, cluster, host, n)
        self.attempt = att
        self.upstream_host = host
        if not cluster.acquire(host, att):
            self.attempt = None
            if self.retry is not None:
                self.retry.on_attempt_done()
            self.flags.append("UO")
            self.local_reply(503, b"upstream connect error or disconnect/reset before headers. reset reason: overflow",
                             extra=[("x-envoy-overloaded", "true")])

    def attempt_headers(self, att: Attempt) -> bytes:
        headers = self.upstream_headers
        if self.route.include_attempt_count:
            headers = headers + [("x-envoy-attempt-count", str(att.number))]
        return encode_request_head(self.head.method, self.upstream_target, headers)

    def _global_timeout(self) -> None:
        self.timer = None
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
        r = self.retry
        if r is None or self.body_overflow:
            return False
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
        if self.retry is not None and status >= 400:
            grpc = None
            for k, v in resp.headers:
                if k == "grpc-status":
                    grpc = v
            outcome = retry_mod.Outcome.response(status, grpc)
            self.last_outcome = outcome
            if self._maybe_retry(outcome, dict(resp.headers)):
                self.attempt = None
                return False
        self.status = status
        self.response_started = True
        head = self.head
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
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
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
        headers.append(("server", self.conn.hcm.server_name))
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
        for t in (self.timer, self.backoff_timer):
            if t is not None:
                t.cancel()
        if self.retry is not None:
            self.retry.finish(self.last_outcome or (retry_mod.Outcome.response(self.status) if self.status else None))
        self.sink = None
        self.state.observe(self)
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
            host = cluster.choose(None, frozenset(), self.conn.original_dst)
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


class Attempt:
    """One upstream try: the pool waiter and the connection's exchange."""

    __slots__ = ("stream", "cluster", "host", "number", "conn", "pool", "sent_at", "per_try", "released",
                 "discard", "req_paused", "downstream", "h2s")

    def __init__(self, stream: Stream, cluster, host, number: int) -> None:
        self.stream = stream
        self.cluster = cluster
        self.host = host
        self.number = number
        self.conn = None
        self.pool = None
        self.sent_at = time.monotonic()
        self.per_try = None
        self.released = False
        self.discard = False
        self.req_paused = False
        self.downstream = stream.conn
        self.h2s = None  # http2_io.UpstreamStream when the cluster speaks HTTP/2

    def _release(self) -> None:
        if not self.released:
            self.released = True
            self.cluster.release_request(self.host)
        if self.per_try is not None:
            self.per_try.cancel()
            self.per_try = None

    # pool waiter
    def on_pool_ready(self, conn) -> None:
        s = self.stream
        if s.done or s.attempt is not self:
            self._release()
            conn.pool.release(conn, True)
            return
        self.conn = conn
        conn.start(self, s.head.method == "HEAD")
        self.sent_at = time.monotonic()
        data = s.attempt_headers(self)
        chunked = s.head.chunked
        if s.body:
            payload = b"".join(s.body)
            data += encode_chunk(payload) if chunked else payload
            if s.body_overflow:
                s.body.clear()
        if s.request_complete:
            if chunked:
                data += LAST_CHUNK
        else:
            s.sink = self
            if s.conn.paused and len(s.conn.streams) <= 1 and s.conn.transport is not None:
                s.conn.paused = False
                s.conn.transport.resume_reading()
        conn.write(data)
        pt = s.route.action.retry_policy.per_try_timeout
        if pt:
            self.per_try = s.state.loop.call_later(pt, self._per_try_timeout)

    def on_pool_ready_h2(self, conn) -> None:
        s = self.stream
        if s.done or s.attempt is not self:
            self._release()
            return
        self.sent_at = time.monotonic()
        headers = [(k, v) for k, v in s.upstream_headers
                   if k not in ("host", "transfer-encoding", "connection", "keep-alive", "upgrade")]
        if s.route.include_attempt_count:
            headers.append(("x-envoy-attempt-count", str(self.number)))
        authority = next((v for k, v in s.upstream_headers if k == "host"), s.authority)
        body = b"".join(s.body)
        end_now = s.request_complete and not body
        try:
            self.h2s = conn.open_stream(self, s.head.method, authority, s.upstream_target, headers,
                                        end_stream=end_now)
        except Exception:  # noqa: BLE001 - the connection went away between check and use
            self.on_pool_failure("connection failure", "UF")
            return
        if body:
            self.h2s.send_data(body, end_stream=s.request_complete)
            if s.body_overflow:
                s.body.clear()
        if not s.request_complete:
            s.sink = self
        pt = s.route.action.retry_policy.per_try_timeout
        if pt:
            self.per_try = s.state.loop.call_later(pt, self._per_try_timeout)

    def on_response_trailers(self, trailers) -> None:
        if not self.discard:
            self.stream.on_response_trailers(list(trailers))

    def on_drain(self) -> None:
        self.resume_request()

    def pause_response(self) -> None:
        if self.conn is not None and self.conn.transport is not None:
            self.conn.transport.pause_reading()

    def resume_response(self) -> None:
        if self.conn is not None and self.conn.transport is not None:
            self.conn.transport.resume_reading()

    def on_pool_failure(self, reason: str, flag: str) -> None:
        self._release()
        self.stream.attempt_failed(self, retry_mod.CONNECT_FAILURE if reason == "connection failure"
                                   else retry_mod.Outcome(retry_mod.CONNECT, 503, None, "UF", reason))

    def write_body(self, data: bytes) -> None:
        if self.h2s is not None:
            if not self.h2s.send_data(data):
                self.pause_request()
        elif self.conn is not None:
            self.conn.write(encode_chunk(data) if self.stream.head.chunked else data)

    def write_end(self) -> None:
        if self.h2s is not None:
            self.h2s.end()
        elif self.conn is not None and self.stream.head.chunked:
            self.conn.write(LAST_CHUNK)

    def _per_try_timeout(self) -> None:
        self.per_try = None
        self.cluster.stats.upstream_rq_per_try_timeout.value += 1
        self.cluster.outlier_outcome(self.host, retry_mod.PER_TRY_TIMEOUT)
        s = self.stream
        self.cancel()
        s.attempt_failed(self, retry_mod.PER_TRY_TIMEOUT)

    def cancel(self) -> None:
        """Abandon this try: the connection cannot be reused mid-exchange."""
        self._release()
        if self.h2s is not None:
            h2s, self.h2s = self.h2s, None
            self.discard = True
            h2s.reset()
        elif self.conn is not None:
            conn, self.conn = self.conn, None
            conn.abort()
        else:
            self.cluster.cancel(self)

    # connection exchange
    def on_response_head(self, resp) -> None:
        self.cluster.outlier_response(self.host, resp.status)
        if not self.stream.on_response_head(self, resp):
            self.discard = True
            self._release()

    def on_response_body(self, data: bytes) -> None:
        if not self.discard:
            self.stream.on_response_body(data)

    def on_response_end(self) -> None:
        self._release()
        if not self.discard:
            self.stream.on_response_end(self)

    def on_upstream_reset(self, reason: str) -> None:
        self._release()
        if self.discard:
            return
        outcome = retry_mod.CONNECTION_TERMINATION
        if reason.startswith("protocol error"):
            outcome = retry_mod.Outcome(retry_mod.RESET, 503, None, "UPE", reason)
        self.cluster.outlier_outcome(self.host, outcome)
        self.conn = None
        self.stream.attempt_failed(self, outcome)

    def on_upgrade(self, rest: bytes) -> None:
        self.stream.on_upgrade(self, rest)

    def on_tunnel_data(self, data: bytes) -> None:
        self.stream.on_tunnel_data(data)

    def on_tunnel_closed(self) -> None:
        self._release()
        self.stream.on_tunnel_closed()

    def pause_request(self) -> None:
        t = self.stream.conn.transport
        if t is not None and not self.req_paused:
            self.req_paused = True
            t.pause_reading()

    def resume_request(self) -> None:
        t = self.stream.conn.transport
        if t is not None and self.req_paused:
            self.req_paused = False
            t.resume_reading()


class MirrorAttempt:
    """Fire-and-forget shadow request: its response is read and dropped."""

    __slots__ = ("cluster", "host", "data", "head_request", "pool", "conn", "released", "downstream")

    def __init__(self, cluster, host, data: bytes, head_request: bool) -> None:
        self.cluster, self.host, self.data, self.head_request = cluster, host, data, head_request
        self.pool = self.conn = self.downstream = None
        self.released = False

    def _release(self) -> None:
        if not self.released:
            self.released = True
            self.cluster.release_request(self.host)

    def on_pool_ready(self, conn) -> None:
        self.conn = conn
        conn.start(self, self.head_request)
        conn.write(self.data)

    def on_pool_ready_h2(self, conn) -> None:
        head, _, body = self.data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, target, _ = lines[0].split(" ", 2)
        headers = [tuple(x.split(": ", 1)) for x in lines[1:]]
        authority = next((v for k, v in headers if k == "host"), "")
        headers = [(k, v) for k, v in headers if k not in ("host", "transfer-encoding", "connection")]
        try:
            st = conn.open_stream(self, method, authority, target, headers, end_stream=not body)
            if body:
                st.send_data(body, end_stream=True)
        except Exception:  # noqa: BLE001 - fire and forget
            self._release()

    def on_response_trailers(self, trailers) -> None:
        pass

    def on_drain(self) -> None:
        pass

    def on_pool_failure(self, reason: str, flag: str) -> None:
        self._release()

    def on_response_head(self, resp) -> None:
        self.cluster.outlier_response(self.host, resp.status)

    def on_response_body(self, data: bytes) -> None:
        pass

    def on_response_end(self) -> None:
        self._release()

    def on_upstream_reset(self, reason: str) -> None:
        self._release()

    def on_upgrade(self, rest: bytes) -> None:
        if self.conn is not None:
            self.conn.abort()

    def pause_request(self) -> None:
        pass

    def resume_request(self) -> None:
        pass
