"""Resident memory under connection churn: Ketch against nginx, in one run (run by hand).

    .venv/bin/python bench/proxy/churn.py [--rounds 10] [--per-round 2000] [--concurrency 50]

The throughput benchmark (`run.py`) keeps 32 connections open, so it never sees what fresh
connections cost. Here each request opens its own connection (`--concurrency` at a time),
and after every round the RSS of the Ketch proxy and of the nginx proxy worker is printed,
then once more after the Ketch sweep has had the time to trim (`heap.py`). Prints one JSON
object: the RSS series in MB and the connections made.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import (ROOT, Procs, free_ports, ketch_bootstrap, nginx_conf, pids_of, rss_mb,  # noqa: E402
                 wait_http)

REQUEST = b"GET / HTTP/1.1\r\nHost: bench.local\r\n\r\n"


async def one(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(REQUEST)
    await reader.readuntil(b"hello world\n")
    writer.close()


async def churn(port: int, n: int, concurrency: int) -> None:
    for _ in range(0, n, concurrency):
        await asyncio.gather(*(one(port) for _ in range(concurrency)))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--per-round", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=50)
    ap.add_argument("--settle", type=float, default=32.0, help="seconds for the trim sweep at the end")
    a = ap.parse_args()
    if shutil.which("nginx") is None:
        sys.exit("nginx is missing: apt-get install -y nginx-light")
    tmp = Path(tempfile.mkdtemp(prefix="ketch-churn-"))
    ports = free_ports(("up", "n1", "k1", "ad1"))
    procs = Procs()
    try:
        procs.start(["nginx", "-p", str(tmp / "x"), "-c", str(nginx_conf(tmp, "upstream", ports["up"], None))])
        n1 = procs.start(["nginx", "-p", str(tmp / "x"), "-c", str(nginx_conf(tmp, "n1", ports["n1"], ports["up"]))])
        k1 = procs.start([str(ROOT / ".venv/bin/ketch"), "proxy", "--bootstrap",
                          str(ketch_bootstrap(tmp, "k1", ports["k1"], ports["up"], ports["ad1"])),
                          "--health-port", "0"])
        for port in (ports["up"], ports["n1"], ports["k1"]):
            wait_http(port)
        time.sleep(1.0)
        watched = {"ketch": [k1.pid], "nginx": [p for p in pids_of(n1) if p != n1.pid]}
        series = {name: [round(rss_mb(p), 1)] for name, p in watched.items()}
        for r in range(a.rounds):
            for name, port in (("ketch", ports["k1"]), ("nginx", ports["n1"])):
                asyncio.run(churn(port, a.per_round, a.concurrency))
                series[name].append(round(rss_mb(watched[name]), 1))
            print(f"round {r + 1}: " + "  ".join(f"{n} {s[-1]} MB" for n, s in series.items()), file=sys.stderr)
        time.sleep(a.settle)
        settled = {name: round(rss_mb(p), 1) for name, p in watched.items()}
    finally:
        procs.stop_all()
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps({"connections_per_proxy": a.rounds * a.per_round, "concurrency": a.concurrency,
                      "rss_mb_after_each_round": series, "rss_mb_settled": settled}, indent=2))


if __name__ == "__main__":
    main()
