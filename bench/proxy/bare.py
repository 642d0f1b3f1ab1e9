"""The floor: a bare uvloop + httptools HTTP/1.1 forwarder with no features (benchmark only).

    python bench/proxy/bare.py LISTEN_PORT UPSTREAM_PORT

One downstream connection ↔ one kept-alive upstream connection; content-length bodies only;
headers passed through unchanged. It is what "Python on the hot path" costs before any
routing, statistics or Envoy semantics, measured in the same run as nginx and Ketch.
"""

from __future__ import annotations

import asyncio
import sys

import httptools
import uvloop


class Upstream(asyncio.Protocol):
    def __init__(self, down: Downstream) -> None:
        self.down = down
        self.transport = None
        self.parser = httptools.HttpResponseParser(self)
        self.buf: list[bytes] = []

    def connection_made(self, transport) -> None:
        self.transport = transport
        if self.down.waiting:
            transport.write(b"".join(self.down.waiting))
            self.down.waiting.clear()

    def data_received(self, data: bytes) -> None:
        self.buf.append(data)
        self.parser.feed_data(data)

    def on_message_complete(self) -> None:
        out = b"".join(self.buf)
        self.buf.clear()
        self.down.transport.write(out)

    def connection_lost(self, exc) -> None:
        if self.down.transport is not None:
            self.down.transport.close()


class Downstream(asyncio.Protocol):
    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.transport = None
        self.parser = httptools.HttpRequestParser(self)
        self.up: Upstream | None = None
        self.waiting: list[bytes] = []
        self.buf: list[bytes] = []

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.up = Upstream(self)
        asyncio.get_running_loop().create_task(asyncio.get_running_loop().create_connection(
            lambda: self.up, "127.0.0.1", self.upstream_port))

    def data_received(self, data: bytes) -> None:
        self.buf.append(data)
        self.parser.feed_data(data)

    def on_message_complete(self) -> None:
        out = b"".join(self.buf)
        self.buf.clear()
        if self.up is not None and self.up.transport is not None:
            self.up.transport.write(out)
        else:
            self.waiting.append(out)

    def connection_lost(self, exc) -> None:
        if self.up is not None and self.up.transport is not None:
            self.up.transport.close()


async def main(listen: int, upstream: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Downstream(upstream), "127.0.0.1", listen, backlog=1024)
    await server.serve_forever()


if __name__ == "__main__":
    uvloop.install()
    asyncio.run(main(int(sys.argv[1]), int(sys.argv[2])))
