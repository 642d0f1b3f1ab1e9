"""HTTP/2 shells over real sockets against real grpcio clients and servers.

A small relay built from `H2ServerProtocol` (downstream) and `H2ClientConnection`
(upstream) stands in for the router here: grpcio client → relay → grpcio server, unary and
streaming, with trailers, status codes and cancellation.
"""

from __future__ import annotations

import asyncio
import struct

import grpc
import pytest

from ketch.proxy.http2_io import H2ClientConnection, H2ServerProtocol, connect_h2
from ketch.proxy.retry import Outcome

pytestmark = pytest.mark.timeout(60)


def frame(msg: bytes) -> bytes:
    return b"\x00" + struct.pack(">I", len(msg)) + msg


async def start_grpc_server():
    async def echo(request: bytes, context) -> bytes:
        return b"echo:" + request

    async def fail(request: bytes, context) -> bytes:
        await context.abort(grpc.StatusCode.UNAVAILABLE, "try later")

    async def count(request: bytes, context):
        for i in range(int(request)):
            yield str(i).encode()

    async def total(request_iterator, context) -> bytes:
        n = 0
        async for chunk in request_iterator:
            n += len(chunk)
        return str(n).encode()

    server = grpc.aio.server()
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("test.Svc", {
        "Echo": grpc.unary_unary_rpc_method_handler(echo),
        "Fail": grpc.unary_unary_rpc_method_handler(fail),
        "Count": grpc.unary_stream_rpc_method_handler(count),
        "Total": grpc.stream_unary_rpc_method_handler(total),
    })])
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, port


class Collect:
    def __init__(self):
        self.head = None
        self.body = b""
        self.trailers = None
        self.reset = None
        self.done = asyncio.get_running_loop().create_future()

    def on_response_head(self, head):
        self.head = head

    def on_response_body(self, data):
        self.body += data

    def on_response_trailers(self, headers):
        self.trailers = dict(headers)

    def on_response_end(self):
        self.done.set_result(True)

    def on_upstream_reset(self, reason):
        self.reset = reason
        self.done.set_result(False)


GRPC_HEADERS = [("content-type", "application/grpc"), ("te", "trailers")]


async def test_upstream_connection_speaks_to_grpcio_server():
    server, port = await start_grpc_server()
    try:
        conn = await connect_h2("127.0.0.1", port)
        ok = Collect()
        s = conn.open_stream(ok, "POST", f"127.0.0.1:{port}", "/test.Svc/Echo", GRPC_HEADERS)
        s.send_data(frame(b"hi"), end_stream=True)
        assert await asyncio.wait_for(ok.done, 10)
        assert ok.head.status == 200 and ok.body == frame(b"echo:hi")
        assert ok.trailers["grpc-status"] == "0"

        bad = Collect()
        s = conn.open_stream(bad, "POST", f"127.0.0.1:{port}", "/test.Svc/Fail", GRPC_HEADERS)
        s.send_data(frame(b"x"), end_stream=True)
        await asyncio.wait_for(bad.done, 10)
        # grpc-status arrives in the trailers (or a trailers-only head): classify once.
        status = (bad.trailers or {}).get("grpc-status") or dict(bad.head.headers).get("grpc-status")
        outcome = Outcome.response(bad.head.status, status)
        assert outcome.grpc_status == 14
        assert conn.codec.streams_opened == 2 and conn.active_streams == 0
        conn.close()
    finally:
        await server.stop(None)


async def test_max_requests_per_connection_retires_connection():
    server, port = await start_grpc_server()
    try:
        freed = []
        conn = await connect_h2("127.0.0.1", port, max_requests=2, max_concurrent_streams=1,
                                on_capacity=freed.append)
        assert conn.capacity() == 1
        results = []
        for _ in range(2):
            c = Collect()
            s = conn.open_stream(c, "POST", "x", "/test.Svc/Echo", GRPC_HEADERS)
            assert conn.capacity() == 0  # our own cap of one concurrent stream
            s.send_data(frame(b"a"), end_stream=True)
            results.append(await asyncio.wait_for(c.done, 10))
            if len(results) == 1:
                assert freed == [conn] and conn.capacity() == 1  # the slot came back
        assert results == [True, True]
        assert conn.retired and conn.capacity() == 0
        for _ in range(50):
            if conn.closed:
                break
            await asyncio.sleep(0.02)
        assert conn.closed  # retired and idle: closed
    finally:
        await server.stop(None)


class Relay:
    """The shape of the router for HTTP/2: each downstream stream becomes an upstream one."""

    def __init__(self, upstream: H2ClientConnection, authority: str):
        self.upstream = upstream
        self.authority = authority

    def on_request(self, down, head, end_stream):
        relay = self

        class Exchange:
            up = None
            trailers_sent = False

            def on_body(self, data):
                self.up.send_data(data)

            def on_trailers(self, headers):
                self.up.send_trailers(headers)

            def on_end(self):
                if not end_stream:
                    self.up.end()

            def on_reset(self, reason):
                self.up.reset()

            def on_response_head(self, h):
                down.send_response(h.status, h.headers, end_stream=False)

            def on_response_body(self, data):
                down.send_data(data)

            def on_response_trailers(self, headers):
                self.trailers_sent = True
                down.send_trailers(headers)

            def on_response_end(self):
                if not self.trailers_sent:
                    down.send_data(b"", end_stream=True)

            def on_upstream_reset(self, reason):
                down.reset()

        ex = Exchange()
        headers = [(k, v) for k, v in head.headers if k != "host"]
        ex.up = relay.upstream.open_stream(ex, head.method, relay.authority, head.target,
                                           headers, end_stream=end_stream)
        return ex


async def start_relay(upstream_port: int):
    loop = asyncio.get_running_loop()
    upstream = await connect_h2("127.0.0.1", upstream_port)
    relay = Relay(upstream, f"127.0.0.1:{upstream_port}")
    server = await loop.create_server(lambda: H2ServerProtocol(relay.on_request),
                                      "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1], upstream


async def test_grpcio_client_through_relay_to_grpcio_server():
    gserver, gport = await start_grpc_server()
    rserver, rport, upstream = await start_relay(gport)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{rport}") as ch:
            echo = ch.unary_unary("/test.Svc/Echo")
            assert await echo(b"ping", timeout=10) == b"echo:ping"
            # Concurrent calls multiplex over the one upstream connection.
            replies = await asyncio.gather(*(echo(str(i).encode(), timeout=10)
                                             for i in range(20)))
            assert replies == [b"echo:" + str(i).encode() for i in range(20)]
            count = ch.unary_stream("/test.Svc/Count")
            got = [m async for m in count(b"50", timeout=10)]
            assert got == [str(i).encode() for i in range(50)]
            total = ch.stream_unary("/test.Svc/Total")

            async def chunks():
                for _ in range(40):
                    yield b"x" * 10000  # 400 kB: past the default flow-control windows

            assert await total(chunks(), timeout=20) == b"400000"
            fail = ch.unary_unary("/test.Svc/Fail")
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await fail(b"", timeout=10)
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE
            assert err.value.details() == "try later"
        assert upstream.codec.streams_opened == 1 + 20 + 1 + 1 + 1
    finally:
        rserver.close()
        upstream.close()
        await gserver.stop(None)


async def test_upstream_death_resets_streams_with_connection_termination():
    loop = asyncio.get_running_loop()
    accepted: list[asyncio.Transport] = []

    class Swallow(asyncio.Protocol):
        def connection_made(self, transport):
            accepted.append(transport)

    server = await loop.create_server(Swallow, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    closed = []
    conn = await connect_h2("127.0.0.1", port, on_closed=closed.append)
    c = Collect()
    conn.open_stream(c, "GET", "x", "/", [], end_stream=True)
    for _ in range(100):
        if accepted:
            break
        await asyncio.sleep(0.01)
    accepted[0].abort()
    assert await asyncio.wait_for(c.done, 10) is False
    assert c.reset == "connection termination" and closed == [conn]
    server.close()


def _self_signed(tmp_path):
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


async def test_h2_over_tls_negotiated_by_alpn(tmp_path):
    import ssl

    cert, key = _self_signed(tmp_path)
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)
    server_ctx.set_alpn_protocols(["h2", "http/1.1"])

    def on_request(down, head, end_stream):
        class Answer:
            def on_body(self, data):
                pass

            def on_trailers(self, headers):
                pass

            def on_end(self):
                down.send_response(200, [("content-type", "text/plain")])
                down.send_data(f"{head.method} {head.target} {head.get('host')}".encode(),
                               end_stream=True)

            def on_reset(self, reason):
                pass

        return Answer()

    loop = asyncio.get_running_loop()
    protocols = []

    def factory():
        protocols.append(H2ServerProtocol(on_request))
        return protocols[-1]

    server = await loop.create_server(factory, "127.0.0.1", 0, ssl=server_ctx)
    port = server.sockets[0].getsockname()[1]
    client_ctx = ssl.create_default_context(cafile=str(cert))
    conn = await connect_h2("127.0.0.1", port, ssl=client_ctx, server_hostname="localhost")
    try:
        assert conn.transport.get_extra_info("ssl_object").selected_alpn_protocol() == "h2"
        c = Collect()
        conn.open_stream(c, "GET", "svc.local", "/x?y=1", [], scheme="https", end_stream=True)
        assert await asyncio.wait_for(c.done, 10)
        assert c.head.status == 200 and c.body == b"GET /x?y=1 svc.local"
    finally:
        conn.close()
        server.close()


async def test_server_drain_finishes_in_flight_streams_then_closes():
    loop = asyncio.get_running_loop()
    pending = []
    protocols = []

    def on_request(down, head, end_stream):
        class Hold:
            def on_body(self, data):
                pass

            def on_trailers(self, headers):
                pass

            def on_end(self):
                pending.append(down)

            def on_reset(self, reason):
                pass

        return Hold()

    def factory():
        protocols.append(H2ServerProtocol(on_request))
        return protocols[-1]

    server = await loop.create_server(factory, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    closed = []
    conn = await connect_h2("127.0.0.1", port, on_closed=closed.append)
    c = Collect()
    conn.open_stream(c, "GET", "x", "/slow", [], end_stream=True)
    for _ in range(200):
        if pending:
            break
        await asyncio.sleep(0.01)
    protocols[0].drain()
    for _ in range(200):
        if conn.codec.goaway_received:
            break
        await asyncio.sleep(0.01)
    assert conn.retired and conn.capacity() == 0 and not closed
    pending[0].send_response(200, [("content-length", "2")])
    pending[0].send_data(b"ok", end_stream=True)
    assert await asyncio.wait_for(c.done, 10) and c.body == b"ok"
    for _ in range(200):
        if closed:
            break
        await asyncio.sleep(0.01)
    assert closed == [conn]  # closed (by either side) once the last stream was done
    assert protocols[0].transport is None
    server.close()


async def _grpc_server(unavailable: bool):
    async def echo(request: bytes, context) -> bytes:
        if unavailable:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "draining")
        return b"ok:" + request

    async def big(request: bytes, context) -> bytes:
        return bytes(range(256)) * (int(request) // 256)

    async def total(request_iterator, context) -> bytes:
        n = 0
        async for chunk in request_iterator:
            n += len(chunk)
        return str(n).encode()

    server = grpc.aio.server()
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("test.Svc", {
        "Echo": grpc.unary_unary_rpc_method_handler(echo),
        "Big": grpc.unary_unary_rpc_method_handler(big),
        "Total": grpc.stream_unary_rpc_method_handler(total),
    })])
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, port


def _grpc_bootstrap(port: int, *upstream_ports: int, retry: dict | None = None) -> dict:
    from proxy_harness import bootstrap, cluster, http_listener, route, vhost

    action = {"timeout": "0s", **({"retryPolicy": retry} if retry else {})}
    return bootstrap([http_listener(port, vhost(route("grpc", **action)))],
                     [cluster("grpc", *upstream_ports, http2ProtocolOptions={})])


async def test_through_the_proxy_large_grpc_messages_both_ways():
    """HTTP/2 flow control in the integrated path: megabyte messages each way."""
    from conftest import free_port
    from proxy_harness import running_proxy

    good, good_port = await _grpc_server(unavailable=False)
    port = free_port()
    try:
        async with running_proxy(_grpc_bootstrap(port, good_port)):
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
                size = 1 << 20
                got = await ch.unary_unary("/test.Svc/Big")(str(size).encode(), timeout=20)
                assert len(got) == size and got[:3] == b"\x00\x01\x02"

                async def chunks():
                    for _ in range(64):
                        yield b"z" * 16384

                total = ch.stream_unary("/test.Svc/Total")
                assert await total(chunks(), timeout=20) == str(64 * 16384).encode()
    finally:
        await good.stop(None)


async def test_through_the_proxy_grpc_retry_on_unavailable():
    """Istio's default retry policy includes 'unavailable': the router should classify the
    trailers-only grpc-status once (retry.Outcome) and retry on another host."""
    from conftest import free_port
    from proxy_harness import running_proxy

    bad, bad_port = await _grpc_server(unavailable=True)
    good, good_port = await _grpc_server(unavailable=False)
    port = free_port()
    retry = {"retryOn": "unavailable", "numRetries": 3,
             "retryHostPredicate": [{"name": "envoy.retry_host_predicates.previous_hosts"}],
             "hostSelectionRetryMaxAttempts": "5"}
    try:
        async with running_proxy(_grpc_bootstrap(port, bad_port, good_port, retry=retry)) as p:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
                echo = ch.unary_unary("/test.Svc/Echo")
                for i in range(10):
                    assert await echo(str(i).encode(), timeout=10) == b"ok:" + str(i).encode()
            stats = p.state.snapshot.clusters["grpc"].stats
            assert stats.upstream_rq_retry.value >= 1  # round robin sent some to the bad host
    finally:
        await bad.stop(None)
        await good.stop(None)


async def test_server_speaks_only_after_a_whole_client_preface():
    from ketch.proxy.http2 import PREFACE

    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: H2ServerProtocol(lambda *a: None),
                                      "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        # Not HTTP/2 although it starts alike: closed without a byte of HTTP/2 in reply.
        r, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(b"PRI / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert await asyncio.wait_for(r.read(), 5) == b""
        w.close()
        # The real preface in two pieces: SETTINGS come once it is whole.
        r, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(PREFACE[:10])
        await w.drain()
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(r.read(1), 0.2)
        w.write(PREFACE[10:])
        head = await asyncio.wait_for(r.readexactly(9), 5)
        assert head[3] == 0x4  # a SETTINGS frame
        w.close()
    finally:
        server.close()
