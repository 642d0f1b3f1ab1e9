"""The REST app on a real loopback port in a background thread, for CLI tests."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from aiohttp import web

from ketch.controlplane.registry import Registry
from ketch.controlplane.rest import make_app
from ketch.store import MemoryStore


class ServedAPI:
    def __init__(self, proxies: Any = None) -> None:
        self.store = MemoryStore()
        self.registry = Registry()
        self._proxies = proxies
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.url = ""

    def __enter__(self) -> "ServedAPI":
        self._thread.start()
        if not self._ready.wait(30):
            raise RuntimeError("REST app did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(30)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        runner = web.AppRunner(make_app(self.store, self.registry, self._proxies))
        self._loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        self._loop.run_until_complete(site.start())
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(runner.cleanup())
        self._loop.close()
