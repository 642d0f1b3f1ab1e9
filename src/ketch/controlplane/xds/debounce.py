"""Debounce config and registry changes into pushes.

A burst of changes becomes one push: the push fires `quiet` seconds after the last change,
but never later than `max_delay` after the first (Istio's PILOT_DEBOUNCE_AFTER=100ms and
PILOT_DEBOUNCE_MAX=10s). Merged changes are `full` if any of them was a config change; a
batch of registry changes alone is endpoint-only.

`Debouncer` is pure bookkeeping with time passed in; `PushLoop` is the asyncio shell that
sleeps until the deadline and hands the merged request on.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Awaitable, Callable


@dataclass(frozen=True)
class PushRequest:
    full: bool  # a config change (else only the registry changed: endpoints)
    first_change: float  # clock time of the earliest change merged in
    last_change: float
    reasons: frozenset[str]
    count: int = 1

    def merge(self, other: PushRequest) -> PushRequest:
        return PushRequest(
            full=self.full or other.full,
            first_change=min(self.first_change, other.first_change),
            last_change=max(self.last_change, other.last_change),
            reasons=self.reasons | other.reasons,
            count=self.count + other.count,
        )


class Debouncer:
    def __init__(self, quiet: float = 0.1, max_delay: float = 10.0) -> None:
        self.quiet = quiet
        self.max_delay = max_delay
        self._pending: PushRequest | None = None

    def __repr__(self) -> str:
        p = self._pending
        state = "idle" if p is None else f"{p.count} changes, full={p.full}"
        return f"<Debouncer quiet={self.quiet}s max={self.max_delay}s [{state}]>"

    @property
    def pending(self) -> PushRequest | None:
        return self._pending

    def add(self, now: float, *, full: bool, reason: str) -> None:
        change = PushRequest(full, now, now, frozenset({reason}))
        self._pending = change if self._pending is None else self._pending.merge(change)

    def deadline(self) -> float | None:
        p = self._pending
        if p is None:
            return None
        return min(p.last_change + self.quiet, p.first_change + self.max_delay)

    def take(self, now: float) -> PushRequest | None:
        """The merged request if its deadline has passed (and forget it), else None."""
        deadline = self.deadline()
        if deadline is None or now < deadline:
            return None
        p, self._pending = self._pending, None
        return p


class PushLoop:
    """Runs a Debouncer on the event loop; `on_push` gets each merged request in turn."""

    def __init__(self, on_push: Callable[[PushRequest], Awaitable[None]], *,
                 clock: Callable[[], float] = time.monotonic, quiet: float = 0.1,
                 max_delay: float = 10.0) -> None:
        self._on_push = on_push
        self._clock = clock
        self.debouncer = Debouncer(quiet, max_delay)
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None

    def notify(self, *, full: bool, reason: str) -> None:
        """Record a change; call on the loop's thread."""
        self.debouncer.add(self._clock(), full=full, reason=reason)
        self._wake.set()

    def notify_threadsafe(self, *, full: bool, reason: str) -> None:
        """Record a change from any thread (store and registry callbacks run in the writer's)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        # Stamp the time now, in the writer's thread, so convergence counts the hop.
        now = self._clock()
        loop.call_soon_threadsafe(self._add_at, now, full, reason)

    def _add_at(self, now: float, full: bool, reason: str) -> None:
        self.debouncer.add(now, full=full, reason=reason)
        self._wake.set()

    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            self._wake.clear()
            while (deadline := self.debouncer.deadline()) is not None:
                delay = deadline - self._clock()
                if delay > 0:
                    try:
                        # A new change moves the deadline: wake up and recompute it.
                        await asyncio.wait_for(self._wake.wait(), timeout=delay)
                        self._wake.clear()
                    except asyncio.TimeoutError:
                        pass
                    continue
                request = self.debouncer.take(self._clock())
                if request is not None:
                    await self._on_push(request)
