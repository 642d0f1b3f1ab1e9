"""Publishing gateway ports on the host: a plain TCP relay from a host address to the
gateway pod, standing in for a Kubernetes LoadBalancer/NodePort."""

from __future__ import annotations

import asyncio


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        writer.close()


async def _relay(target: tuple[str, int], reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter) -> None:
    try:
        up_reader, up_writer = await asyncio.wait_for(asyncio.open_connection(*target), 5.0)
    except (OSError, asyncio.TimeoutError):
        writer.close()
        return
    try:
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
    finally:
        up_writer.close()
        writer.close()


async def publish(host: str, port: int, target: tuple[str, int]) -> asyncio.Server:
    return await asyncio.start_server(lambda r, w: _relay(target, r, w), host, port,
                                      reuse_address=True)
