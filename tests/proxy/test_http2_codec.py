"""HTTP/2 codec, sans-IO: a client codec and a server codec wired back to back."""

from __future__ import annotations

import os

import pytest

from ketch.proxy.http2 import ErrorCodes, H2Codec, H2ProtocolError, is_h2_preface


class ServerStream:
    def __init__(self, sid, head, ended, log):
        self.sid, self.head, self.body, self.trailers = sid, head, b"", None
        self.ended, self.reset_reason, self.log = ended, None, log

    def on_body(self, data):
        self.body += data

    def on_trailers(self, headers):
        self.trailers = headers

    def on_end(self):
        self.ended = True
        self.log.append(("end", self.sid))

    def on_reset(self, reason):
        self.reset_reason = reason


class ClientExchange:
    def __init__(self):
        self.head = None
        self.body = b""
        self.trailers = None
        self.ended = False
        self.reset = None
        self.drained = 0

    def on_response_head(self, head):
        self.head = head

    def on_response_body(self, data):
        self.body += data

    def on_response_trailers(self, headers):
        self.trailers = headers

    def on_response_end(self):
        self.ended = True

    def on_upstream_reset(self, reason):
        self.reset = reason

    def on_drain(self):
        self.drained += 1


class Pair:
    def __init__(self, server_window=1 << 20, **server_kw):
        self.log = []
        self.streams = {}

        def on_request(sid, head, ended):
            s = ServerStream(sid, head, ended, self.log)
            self.streams[sid] = s
            return s

        self.client = H2Codec(True)
        self.server = H2Codec(False, on_request=on_request, initial_window_size=server_window,
                              **server_kw)
        self.client.initiate()
        self.server.initiate()
        self.pump()

    def pump(self):
        for _ in range(100):
            a = self.client.data_to_send()
            b = self.server.data_to_send()
            if not a and not b:
                return
            if a:
                self.server.feed(a)
            if b:
                self.client.feed(b)


def test_preface_detection():
    assert is_h2_preface(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\nrest") is True
    assert is_h2_preface(b"PRI * HT") is None
    assert is_h2_preface(b"GET / HTTP/1.1\r\n") is False


def test_request_response_with_body_and_trailers():
    p = Pair()
    ex = ClientExchange()
    sid = p.client.open_stream(ex, "POST", "reviews:9080", "/grpc.Svc/M",
                               [("content-type", "application/grpc"), ("te", "trailers"),
                                ("connection", "keep-alive"), ("x-b3-traceid", "abc")])
    assert p.client.send_data(sid, b"hello ")
    p.client.send_data(sid, b"world", end_stream=True)
    p.pump()
    s = p.streams[sid]
    assert s.head.method == "POST" and s.head.target == "/grpc.Svc/M" and s.head.version == "2"
    assert s.head.get("host") == "reviews:9080"
    assert s.head.get("te") == "trailers" and s.head.get("connection") is None
    assert s.head.chunked and s.body == b"hello world" and s.ended
    p.server.send_response(sid, 200, [("content-type", "application/grpc")])
    p.server.send_data(sid, b"\x00\x00\x00\x00\x02hi")
    p.server.send_trailers(sid, [("grpc-status", "0"), ("grpc-message", "")])
    p.pump()
    assert ex.head.status == 200 and ex.head.version == "2"
    assert ex.body == b"\x00\x00\x00\x00\x02hi"
    assert ex.trailers == [("grpc-status", "0"), ("grpc-message", "")]
    assert ex.ended and ex.reset is None
    assert p.client.active_streams == 0 and p.server.active_streams == 0


def test_concurrent_streams_multiplex():
    p = Pair()
    exs = []
    for i in range(10):
        ex = ClientExchange()
        sid = p.client.open_stream(ex, "GET", "a", f"/{i}", [], end_stream=True)
        exs.append((sid, ex))
    p.pump()
    assert len(p.streams) == 10 and all(s.ended for s in p.streams.values())
    for sid, _ in reversed(exs):
        p.server.send_response(sid, 200, [("content-length", "2")])
        p.server.send_data(sid, p.streams[sid].head.target[1:].encode().ljust(2), end_stream=True)
    p.pump()
    for i, (sid, ex) in enumerate(exs):
        assert ex.ended and ex.body.strip() == str(i).encode()
        assert ex.head.content_length == 2 and not ex.head.chunked


def test_flow_control_queues_until_window_opens():
    p = Pair(server_window=65535)
    ex = ClientExchange()
    sid = p.client.open_stream(ex, "POST", "a", "/upload", [])
    big = bytes(range(256)) * 1024  # 256 KiB > 64 KiB windows
    assert p.client.send_data(sid, big, end_stream=True) is False
    p.pump()  # the server acknowledges what it got, windows reopen, the rest flows
    s = p.streams[sid]
    assert s.body == big and s.ended
    assert ex.drained >= 1


def test_max_concurrent_streams_capacity_and_refusal():
    p = Pair(max_concurrent_streams=2)
    assert p.client.capacity() == 2
    a, b = ClientExchange(), ClientExchange()
    p.client.open_stream(a, "GET", "x", "/", [])
    p.client.open_stream(b, "GET", "x", "/", [])
    assert p.client.capacity() == 0


def test_resets_map_to_envoy_reasons():
    p = Pair()
    ex1, ex2 = ClientExchange(), ClientExchange()
    s1 = p.client.open_stream(ex1, "GET", "x", "/", [], end_stream=True)
    s2 = p.client.open_stream(ex2, "GET", "x", "/", [], end_stream=True)
    p.pump()
    p.server.reset(s1, ErrorCodes.REFUSED_STREAM)
    p.server.reset(s2, ErrorCodes.INTERNAL_ERROR)
    p.pump()
    assert ex1.reset == "remote refused stream reset"
    assert ex2.reset == "remote reset"
    # A client cancelling shows up as a reset on the server's stream.
    ex3 = ClientExchange()
    s3 = p.client.open_stream(ex3, "POST", "x", "/", [])
    p.pump()
    p.client.reset(s3)
    p.pump()
    assert p.streams[s3].reset_reason == "remote reset"


def test_goaway_refuses_streams_above_last_id_and_connection_loss():
    p = Pair()
    done, late = ClientExchange(), ClientExchange()
    s1 = p.client.open_stream(done, "GET", "x", "/", [], end_stream=True)
    p.pump()
    p.server.drain()
    p.pump()
    assert p.client.goaway_received and p.client.capacity() == 0
    p.server.send_response(s1, 204, [], end_stream=True)
    p.pump()
    assert done.head.status == 204
    other = H2Codec(True)
    other.initiate()
    ex = ClientExchange()
    other.open_stream(ex, "GET", "x", "/", [])
    other.connection_lost()
    assert ex.reset == "connection termination"
    del late


def test_garbage_is_a_protocol_error():
    server = H2Codec(False, on_request=lambda *a: None)
    server.initiate()
    with pytest.raises(H2ProtocolError):
        server.feed(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x04\x09\x00\x00\x00\x00\x00garbage!")


def test_unhandled_request_is_refused():
    p = Pair()
    p.server.on_request = lambda sid, head, ended: None
    ex = ClientExchange()
    p.client.open_stream(ex, "GET", "x", "/", [], end_stream=True)
    p.pump()
    assert ex.reset == "remote refused stream reset"


def test_end_is_dispatched_once_and_trailers_only_is_one_frame():
    p = Pair()
    ex = ClientExchange()
    sid = p.client.open_stream(ex, "POST", "x", "/grpc.Svc/M", [])
    p.client.send_data(sid, b"abc", end_stream=True)
    p.pump()
    assert p.log.count(("end", sid)) == 1
    # A relay forwards the head first and the end after: still one HEADERS frame ending
    # the stream, with grpc-status visible in the head on the far side.
    p.server.send_response(sid, 200, [("content-type", "application/grpc"),
                                      ("grpc-status", "14"), ("grpc-message", "down")])
    p.server.send_data(sid, b"", end_stream=True)
    p.pump()
    assert ex.head.headers == [("content-type", "application/grpc"), ("grpc-status", "14"),
                               ("grpc-message", "down")]
    assert ex.trailers is None and ex.ended and ex.reset is None


def test_early_trailers_only_answer_while_request_body_still_flows():
    p = Pair()
    ex = ClientExchange()
    sid = p.client.open_stream(ex, "POST", "x", "/grpc.Svc/Upload", [])
    p.client.send_data(sid, b"part1")
    p.pump()
    p.server.send_response(sid, 200, [("grpc-status", "8")])  # refuse early
    p.server.send_data(sid, b"", end_stream=True)  # what a relay does next: dropped
    p.pump()
    assert ex.ended and dict(ex.head.headers)["grpc-status"] == "8"
    p.client.send_data(sid, b"part2", end_stream=True)  # the peer may still send
    p.pump()
    s = p.streams[sid]
    assert s.body == b"part1part2" and s.ended
    # The connection is still good for new streams.
    ex2 = ClientExchange()
    sid2 = p.client.open_stream(ex2, "GET", "x", "/", [], end_stream=True)
    p.pump()
    p.server.send_response(sid2, 204, [], end_stream=True)
    p.pump()
    assert ex2.head.status == 204


from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402


def _frame(ftype: int, flags: int, sid: int, payload: bytes) -> bytes:
    return len(payload).to_bytes(3, "big") + bytes([ftype, flags]) + \
        (sid & 0x7FFFFFFF).to_bytes(4, "big") + payload


_frames = st.builds(_frame, st.integers(0, 10), st.integers(0, 255),
                    st.sampled_from([0, 1, 2, 3, 5, 0x7FFFFFFF]), st.binary(max_size=40))


@settings(max_examples=int(os.environ.get("KETCH_FUZZ_EXAMPLES", "300")), deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(frames=st.lists(_frames, max_size=8), tail=st.binary(max_size=30))
def test_fuzz_server_codec_parses_or_raises_protocol_error(frames, tail):
    """Invariant (as h11's fuzzers state it): any bytes after the preface either parse or
    raise H2ProtocolError; nothing else escapes, and handlers only see well-formed events."""
    seen = []

    class Sink:
        def on_body(self, data):
            seen.append(("body", data))

        def on_trailers(self, headers):
            seen.append(("trailers", headers))

        def on_end(self):
            seen.append(("end",))

        def on_reset(self, reason):
            seen.append(("reset", reason))

    server = H2Codec(False, on_request=lambda sid, head, ended: Sink())
    server.initiate()
    data = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + _frame(4, 0, 0, b"") + b"".join(frames) + tail
    try:
        for i in range(0, len(data), 17):  # arbitrary split points
            server.feed(data[i:i + 17])
    except H2ProtocolError:
        assert server.closed
    server.data_to_send()
    for event in seen:
        assert event[0] in ("body", "trailers", "end", "reset")


@settings(max_examples=int(os.environ.get("KETCH_FUZZ_EXAMPLES", "300")), deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(frames=st.lists(_frames, max_size=8), tail=st.binary(max_size=30))
def test_fuzz_client_codec_against_a_hostile_upstream(frames, tail):
    client = H2Codec(True)
    client.initiate()
    ex = ClientExchange()
    client.open_stream(ex, "GET", "x", "/", [], end_stream=True)
    client.data_to_send()
    data = _frame(4, 0, 0, b"") + b"".join(frames) + tail
    try:
        client.feed(data)
    except H2ProtocolError:
        assert client.closed
        assert ex.reset == "connection termination" or ex.ended


def test_settings_from_envoy_protocol_options():
    from envoy.config.core.v3 import protocol_pb2
    from google.protobuf import wrappers_pb2

    from ketch.proxy.http2 import H2Settings
    from ketch.proxy.protoutil import Unsupported

    s = H2Settings.from_proto(protocol_pb2.Http2ProtocolOptions(
        max_concurrent_streams=wrappers_pb2.UInt32Value(value=7),
        initial_connection_window_size=wrappers_pb2.UInt32Value(value=1 << 21),
        allow_connect=True))
    assert (s.max_concurrent_streams, s.initial_connection_window_size) == (7, 1 << 21)
    assert H2Settings.from_proto(protocol_pb2.Http2ProtocolOptions()) == H2Settings()
    with pytest.raises(Unsupported, match="connection_keepalive"):
        H2Settings.from_proto(protocol_pb2.Http2ProtocolOptions(
            connection_keepalive=protocol_pb2.KeepaliveSettings()))
    # The options reach the wire: a client sees the server's stream limit.
    p = Pair(**{k: v for k, v in s.codec_options().items() if k != "initial_window_size"})
    assert p.client.capacity() == 7
