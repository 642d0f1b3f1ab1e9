"""A load client in the manner of fortio.

    python -m ketch.samples.fortio load -c 3 -qps 0 -n 30 http://httpbin:8000/get
    python -m ketch.samples.fortio server            # an echo server on 8080

`load` prints fortio's status-code histogram (`Code 200 : 17 (56.7 %)`); `-json FILE`
(`-` for stdout) writes fortio's result keys (`RetCodes`, `DurationHistogram`, ...).
Each of the `-c` workers keeps its own connection, as fortio's threads do.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable

import aiohttp
from aiohttp import web

from ketch.samples.common import serve

ERROR_CODE = -1  # fortio's code for "no HTTP response"


@dataclass
class LoadResult:
    codes: Counter = field(default_factory=Counter)
    durations: list[float] = field(default_factory=list)
    elapsed: float = 0.0

    @property
    def calls(self) -> int:
        return sum(self.codes.values())

    def histogram_lines(self) -> list[str]:
        total = self.calls or 1
        return [f"Code {code} : {count} ({100.0 * count / total:.1f} %)"
                for code, count in sorted(self.codes.items())]

    def to_json(self) -> dict[str, object]:
        durations = sorted(self.durations)
        avg = sum(durations) / len(durations) if durations else 0.0

        def pct(p: float) -> float:
            return durations[min(len(durations) - 1, int(p / 100 * len(durations)))] \
                if durations else 0.0

        return {
            "RetCodes": {str(k): v for k, v in sorted(self.codes.items())},
            "DurationHistogram": {
                "Count": len(durations), "Avg": avg,
                "Min": durations[0] if durations else 0.0,
                "Max": durations[-1] if durations else 0.0,
                "Percentiles": [{"Percentile": p, "Value": pct(p)} for p in (50, 75, 90, 99)],
            },
            "ActualQPS": self.calls / self.elapsed if self.elapsed else 0.0,
            "ActualDuration": self.elapsed,
        }


async def run_load(url: str, *, concurrency: int, calls: int | None, qps: float,
                   duration: float, clock: Callable[[], float] = time.monotonic,
                   timeout: float = 30.0) -> LoadResult:
    result = LoadResult()
    started = clock()
    issued = 0

    def next_slot() -> int | None:
        nonlocal issued
        if calls is not None and issued >= calls:
            return None
        if calls is None and clock() - started >= duration:
            return None
        issued += 1
        return issued - 1

    async def worker() -> None:
        connector = aiohttp.TCPConnector(limit=1)
        async with aiohttp.ClientSession(connector=connector, trust_env=True,
                                         timeout=aiohttp.ClientTimeout(total=timeout)) as s:
            while (slot := next_slot()) is not None:
                if qps > 0:
                    wait = started + slot / qps - clock()
                    if wait > 0:
                        await asyncio.sleep(wait)
                t0 = clock()
                try:
                    async with s.get(url) as resp:
                        await resp.read()
                        code = resp.status
                except (aiohttp.ClientError, asyncio.TimeoutError):
                    code = ERROR_CODE
                result.durations.append(clock() - t0)
                result.codes[code] += 1

    await asyncio.gather(*(worker() for _ in range(max(1, concurrency))))
    result.elapsed = clock() - started
    return result


def _load(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="fortio load")
    parser.add_argument("-c", type=int, default=4, help="connections (workers)")
    parser.add_argument("-n", type=int, default=None, help="total calls")
    parser.add_argument("-qps", type=float, default=8.0, help="queries/s, 0 = max")
    parser.add_argument("-t", default="5s", help="duration when -n is not given")
    parser.add_argument("-json", default=None, help="write JSON results to FILE ('-' stdout)")
    parser.add_argument("-loglevel", default="Info")
    parser.add_argument("-timeout", default="30s")
    parser.add_argument("url")
    args = parser.parse_args(argv)
    duration = float(args.t.rstrip("s"))
    result = asyncio.run(run_load(args.url, concurrency=args.c, calls=args.n, qps=args.qps,
                                  duration=duration, timeout=float(args.timeout.rstrip("s"))))
    avg_ms = 1000 * sum(result.durations) / max(1, len(result.durations))
    out = sys.stderr if args.json == "-" else sys.stdout
    print(f"Starting at {args.qps:g} qps with {args.c} thread(s) against {args.url}", file=out)
    print(f"All done {result.calls} calls (plus 0 warmup) {avg_ms:.3f} ms avg, "
          f"{result.calls / (result.elapsed or 1):.1f} qps", file=out)
    for line in result.histogram_lines():
        print(line, file=out)
    if args.json:
        text = json.dumps(result.to_json(), indent=2)
        if args.json == "-":
            print(text)
        else:
            with open(args.json, "w") as fh:
                fh.write(text)
    return 0


async def _curl(url: str, flags: list[str]) -> int:
    """fortio curl: one GET, printing the status line, headers and body."""
    headers = dict(flags[i + 1].split(":", 1) for i, f in enumerate(flags[:-1]) if f == "-H")
    headers = {k.strip(): v.strip() for k, v in headers.items()}
    try:
        async with aiohttp.ClientSession(trust_env=True) as s:
            async with s.get(url, headers=headers) as resp:
                body = await resp.read()
                print(f"HTTP/1.1 {resp.status} {resp.reason}")
                for k, v in resp.headers.items():
                    print(f"{k}: {v}")
                print()
                sys.stdout.write(body.decode("utf-8", "replace"))
                sys.stdout.flush()
                return 0 if resp.status < 400 else 1
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


async def _echo(request: web.Request) -> web.Response:
    body = await request.read()
    status = int(request.query.get("status", "200"))
    return web.Response(body=body or b"", status=status)


def make_server_app() -> web.Application:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", _echo)
    return app


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] not in ("load", "server", "curl"):
        print("usage: fortio load|curl|server [flags] [url]", file=sys.stderr)
        sys.exit(2)
    if args[0] == "load":
        sys.exit(_load(args[1:]))
    if args[0] == "curl":
        sys.exit(asyncio.run(_curl(args[-1], args[1:-1])))
    port = 8080
    if "-http-port" in args:
        port = int(args[args.index("-http-port") + 1])
    serve(make_server_app(), "0.0.0.0", port)


if __name__ == "__main__":
    main()
