"""Debounce: 100 ms after the last change, at most 10 s after the first; merging."""

from __future__ import annotations

import asyncio

from ketch.controlplane.xds.debounce import Debouncer, PushLoop, PushRequest


def test_fires_quiet_after_last_change() -> None:
    # binary-exact times (eighths) so the deadline arithmetic is exact
    d = Debouncer(quiet=0.125, max_delay=10.0)
    assert d.deadline() is None and d.take(5.0) is None
    d.add(1.0, full=False, reason="registry")
    d.add(1.0625, full=False, reason="registry")
    assert d.deadline() == 1.1875
    assert d.take(1.18) is None
    got = d.take(1.1875)
    assert got == PushRequest(False, 1.0, 1.0625, frozenset({"registry"}), 2)
    assert d.pending is None and d.take(2.0) is None


def test_max_delay_bounds_a_steady_stream_of_changes() -> None:
    d = Debouncer(quiet=0.1, max_delay=10.0)
    t, fired = 0.0, []
    while t < 25.0:  # a change every 50 ms never goes quiet for 100 ms
        d.add(t, full=False, reason="registry")
        if (r := d.take(t)) is not None:
            fired.append((t, r.first_change))
        t = round(t + 0.05, 2)
    assert [round(at, 2) for at, _ in fired] == [10.0, 20.05]
    assert [first for _, first in fired] == [0.0, 10.05]


def test_config_change_makes_the_merge_full() -> None:
    d = Debouncer()
    d.add(0.0, full=False, reason="registry")
    d.add(0.01, full=True, reason="config")
    d.add(0.02, full=False, reason="registry")
    r = d.take(1.0)
    assert r is not None and r.full and r.reasons == {"registry", "config"} and r.count == 3


async def test_push_loop_merges_a_burst_into_one_push() -> None:
    pushes: list[PushRequest] = []
    done = asyncio.Event()

    async def on_push(r: PushRequest) -> None:
        pushes.append(r)
        done.set()

    loop = PushLoop(on_push, quiet=0.05, max_delay=5.0)
    task = asyncio.create_task(loop.run())
    await asyncio.sleep(0)
    for _ in range(5):
        loop.notify(full=False, reason="registry")
        await asyncio.sleep(0.005)
    loop.notify_threadsafe(full=True, reason="config")
    await asyncio.wait_for(done.wait(), timeout=10)
    await asyncio.sleep(0.2)  # generous: no second push may follow
    task.cancel()
    assert len(pushes) == 1
    assert pushes[0].count == 6 and pushes[0].full
