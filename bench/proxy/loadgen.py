"""Open-loop HTTP/1.1 load generator: a fixed request rate, latency percentiles as JSON.

Requests start on a fixed schedule (i / rate) whatever the responses do, each on a free
keep-alive connection (a new one is opened when all are busy), so a slow target meets more
load, not less (no coordinated omission). Latency is measured from the write of each
request (p50/p90/p99/max) and, as a check, from its scheduled start (sched_*), which also
holds the generator's own timer lateness (~1 ms with event-loop timers).

    python bench/proxy/loadgen.py --port 8080 --rate 1000 --duration 10 [--warmup 2]

Prints one JSON object: sent, ok, errors, achieved_rate, p50_ms, p90_ms, p99_ms, max_ms,
sched_p50_ms, sched_p99_ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections import deque


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    i = min(len(sorted_values) - 1, max(0, int(round(q / 100 * (len(sorted_values) - 1)))))
    return sorted_values[i]


class Conn:
    __slots__ = ("reader", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer


async def run(host: str, port: int, rate: float, duration: float, warmup: float,
              path: str, conns: int) -> dict:
    loop = asyncio.get_running_loop()
    request = (f"GET {path} HTTP/1.1\r\nHost: bench.local\r\nUser-Agent: ketch-loadgen\r\n\r\n"
               ).encode()
    idle: deque[Conn] = deque()
    for _ in range(conns):
        idle.append(Conn(*await asyncio.open_connection(host, port)))
    latencies: list[float] = []
    service: list[float] = []  # from the moment the request was written
    errors = 0
    ok = 0
    measure_from = 0.0

    async def one(scheduled: float) -> None:
        nonlocal errors, ok
        conn = idle.pop() if idle else Conn(*await asyncio.open_connection(host, port))
        try:
            sent = time.perf_counter()
            conn.writer.write(request)
            head = await conn.reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            if length:
                await conn.reader.readexactly(length)
            done = time.perf_counter()
            status_ok = head[9:12] == b"200"
        except (OSError, asyncio.IncompleteReadError, ValueError):
            errors += 1
            conn.writer.close()
            return
        idle.append(conn)
        if scheduled >= measure_from:
            if status_ok:
                ok += 1
                latencies.append((done - scheduled) * 1000.0)
                service.append((done - sent) * 1000.0)
            else:
                errors += 1

    total = int(rate * (warmup + duration))
    start = time.perf_counter() + 0.05
    measure_from = start + warmup
    tasks = set()
    for i in range(total):
        scheduled = start + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            # Event-loop timers have ~1 ms resolution: requests fire up to ~1 ms late (and
            # then back to back), so the "service" figures, timed from the write, are the
            # ones to compare; spinning for precision would eat a core of a 2-core machine.
            await asyncio.sleep(delay)
        t = loop.create_task(one(scheduled))
        tasks.add(t)
        t.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.wait(tasks, timeout=30)
    elapsed = time.perf_counter() - measure_from
    latencies.sort()
    service.sort()
    return {"sent": int(rate * duration), "ok": ok, "errors": errors,
            "achieved_rate": round(ok / elapsed, 1) if elapsed > 0 else 0.0,
            "p50_ms": round(percentile(service, 50), 3),
            "p90_ms": round(percentile(service, 90), 3),
            "p99_ms": round(percentile(service, 99), 3),
            "max_ms": round(service[-1], 3) if service else float("nan"),
            "sched_p50_ms": round(percentile(latencies, 50), 3),
            "sched_p99_ms": round(percentile(latencies, 99), 3)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--rate", type=float, default=1000.0)
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--warmup", type=float, default=2.0)
    ap.add_argument("--path", default="/")
    ap.add_argument("--conns", type=int, default=16)
    a = ap.parse_args()
    try:
        import uvloop
        uvloop.install()
    except ImportError:  # pragma: no cover
        pass
    print(json.dumps(asyncio.run(run(a.host, a.port, a.rate, a.duration, a.warmup, a.path,
                                     a.conns))))


if __name__ == "__main__":
    main()
