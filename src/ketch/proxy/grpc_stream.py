"""A minimal gRPC bidirectional-streaming client over the proxy's own HTTP/2 code.

ADS needs one long-lived bidi stream; grpcio's asyncio stack would add ~13 MB of resident
memory to every sidecar, so the proxy speaks the gRPC wire format itself: an h2c stream
`POST /<service>/<method>` with `content-type: application/grpc` and `te: trailers`, each
message framed as 1 byte compressed-flag + 4 bytes big-endian length + protobuf bytes, the
status in the trailers (`grpc-status`, `grpc-message`).

`await GrpcStream.open(host, port, path)`, `write(message)`, `await read() -> bytes | None`
(None: the server ended the stream with status OK), `close()`. Failures raise `GrpcError`.
"""

from __future__ import annotations

import asyncio
from urllib.parse import unquote

from google.protobuf.message import Message

from ketch.proxy.http2_io import connect_h2

MAX_MESSAGE = 64 * 1024 * 1024


class GrpcError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"grpc status {status}: {message}")
        self.status = status
        self.message = message


_EOF = object()


class GrpcStream:
    def __init__(self) -> None:
        self.conn = None
        self.stream = None
        self.buf = b""
        self.queue: asyncio.Queue = asyncio.Queue()

    @classmethod
    async def open(cls, host: str, port: int, path: str, timeout: float = 10.0) -> GrpcStream:
        self = cls()
        try:
            self.conn = await connect_h2(host, port, timeout=timeout)
        except asyncio.TimeoutError:
            raise GrpcError(14, f"connect to {host}:{port} timed out") from None
        except OSError as exc:
            raise GrpcError(14, f"connect to {host}:{port}: {exc}") from None
        self.stream = self.conn.open_stream(self, "POST", f"{host}:{port}", path, [
            ("content-type", "application/grpc"), ("te", "trailers"), ("user-agent", "ketch-proxy")])
        return self

    def write(self, message: Message) -> None:
        data = message.SerializeToString()
        self.stream.send_data(b"\x00" + len(data).to_bytes(4, "big") + data)

    async def read(self) -> bytes | None:
        item = await self.queue.get()
        if item is _EOF:
            self.queue.put_nowait(_EOF)  # later reads see the end too
            return None
        if isinstance(item, GrpcError):
            self.queue.put_nowait(item)
            raise item
        return item

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()

    # -- http2 client stream handler
    def _status(self, headers) -> None:
        h = dict(headers)
        status = h.get("grpc-status")
        if status is None:
            return
        if status != "0":
            self.queue.put_nowait(GrpcError(int(status) if status.isdigit() else 2,
                                            unquote(h.get("grpc-message", ""))))
        else:
            self.queue.put_nowait(_EOF)

    def on_response_head(self, head) -> None:
        if head.status != 200:
            self.queue.put_nowait(GrpcError(14, f"HTTP status {head.status}"))
            return
        self._status(head.headers)  # trailers-only response

    def on_response_body(self, data: bytes) -> None:
        self.buf += data
        while len(self.buf) >= 5:
            n = int.from_bytes(self.buf[1:5], "big")
            if self.buf[0] != 0 or n > MAX_MESSAGE:
                self.queue.put_nowait(GrpcError(13, "compressed or oversized message"))
                self.buf = b""
                return
            if len(self.buf) < 5 + n:
                return
            self.queue.put_nowait(self.buf[5:5 + n])
            self.buf = self.buf[5 + n:]

    def on_response_trailers(self, headers) -> None:
        self._status(headers)

    def on_response_end(self) -> None:
        self.queue.put_nowait(GrpcError(13, "stream ended without status") if self.queue.empty() else _EOF)

    def on_upstream_reset(self, reason: str) -> None:
        self.queue.put_nowait(GrpcError(14, reason))

    def on_drain(self) -> None:
        pass
