"""tcp-echo, as Istio's sample: `tcp_echo PORTS PREFIX` listens on each comma-separated
port and answers every line with `PREFIX line`."""

from __future__ import annotations

import asyncio
import signal
import sys


def reply(prefix: str, line: bytes) -> bytes:
    return prefix.encode() + b" " + line


async def handle(prefix: str, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            line = await reader.readline()
            if not line or not line.endswith(b"\n"):
                break
            writer.write(reply(prefix, line))
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


async def start(ports: list[int], prefix: str, host: str = "0.0.0.0") -> list[asyncio.Server]:
    servers = []
    for port in ports:
        servers.append(await asyncio.start_server(
            lambda r, w: handle(prefix, r, w), host, port, reuse_address=True))
    return servers


async def _main(ports: list[int], prefix: str) -> None:
    servers = await start(ports, prefix)
    print(f"listening on {','.join(map(str, ports))} with prefix {prefix!r}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    for server in servers:
        server.close()


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    ports = [int(p) for p in (args[0] if args else "9000").split(",") if p]
    prefix = args[1] if len(args) > 1 else "hello"
    asyncio.run(_main(ports, prefix))


if __name__ == "__main__":
    main()
