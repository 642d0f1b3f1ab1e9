"""What the sample servers share: trace-header propagation, pod identity, serving."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
from typing import Mapping

from aiohttp import web

# Headers an application must copy from its inbound request onto its outbound calls so that
# the mesh can stitch one trace (and Istio's routing on end-user) across services.
PROPAGATED_HEADERS: tuple[str, ...] = (
    "x-request-id",
    "x-b3-traceid",
    "x-b3-spanid",
    "x-b3-parentspanid",
    "x-b3-sampled",
    "x-b3-flags",
    "b3",
    "x-ot-span-context",
    "traceparent",
    "tracestate",
    "x-cloud-trace-context",
    "grpc-trace-bin",
    "sw8",
    "end-user",
    "user-agent",
)


def forward_headers(incoming: Mapping[str, str]) -> dict[str, str]:
    """The subset of `incoming` that travels on to the next hop (names lower-cased)."""
    lowered = {k.lower(): v for k, v in incoming.items()}
    return {name: lowered[name] for name in PROPAGATED_HEADERS if name in lowered}


def pod_name(environ: Mapping[str, str] | None = None) -> str:
    env = os.environ if environ is None else environ
    return env.get("POD_NAME") or env.get("HOSTNAME") or "unknown"


def server_args(description: str, default_port: int) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("port", nargs="?", type=int, default=default_port)
    parser.add_argument("--host", default="0.0.0.0")
    return parser


async def start_site(app: web.Application, host: str, port: int) -> web.AppRunner:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True)
    await site.start()
    return runner


async def _serve_until_signalled(app: web.Application, host: str, port: int) -> None:
    runner = await start_site(app, host, port)
    print(f"listening on {host}:{port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()


def serve(app: web.Application, host: str, port: int) -> None:
    asyncio.run(_serve_until_signalled(app, host, port))
