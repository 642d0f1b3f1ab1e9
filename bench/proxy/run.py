"""Proxy benchmark: direct vs nginx vs Ketch, in one run, on this machine (run by hand).

    .venv/bin/python bench/proxy/run.py [--duration 10] [--rate 1000] [--json out.json]

Shapes, all on loopback with free ports (never the system nginx):
- upstream: an nginx (1 worker) answering ``200 hello`` — the fast local upstream;
- one hop: client → proxy → upstream, for nginx (1 worker, keep-alive upstream pool) and
  Ketch (``ketch proxy --bootstrap``, one process, static bootstrap, router + stats on);
- bare: `bare.py`, a uvloop + httptools forwarder with no features — the floor for Python;
- two hops: client → proxy A ("client sidecar") → proxy B ("server sidecar") → upstream.
Measures: wrk at saturation (1 thread, 32 connections) through one hop, in interleaved rounds
(medians); the open-loop
generator (`loadgen.py`, its own process) at a fixed rate for p50/p99 in every shape; CPU
per 1000 requests/s of each proxy process from /proc (utime+stime over the fixed-rate run)
and its RSS. Prints ratios against nginx and against the direct call from the same run.
Needs ``nginx`` and ``wrk`` (``apt-get install -y nginx-light wrk``). The machine may be
shared: run it on an idle machine, more than once, before trusting a figure.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PY = sys.executable
CLK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_ports(names: tuple[str, ...]) -> dict[str, int]:
    """Distinct free ports: all sockets are held open until every one is chosen."""
    socks = []
    try:
        for _ in names:
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return {n: s.getsockname()[1] for n, s in zip(names, socks)}
    finally:
        for s in socks:
            s.close()


def wait_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), 0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def wait_http(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1) as r:
                if r.status == 200:
                    return
                last = r.status
        except OSError as exc:
            last = exc
        time.sleep(0.1)
    raise RuntimeError(f"no 200 from :{port}: {last!r}")


def pids_of(proc: subprocess.Popen) -> list[int]:
    """The process and its children (nginx workers)."""
    pids = [proc.pid]
    try:
        out = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True)
        pids += [int(p) for p in out.stdout.split()]
    except FileNotFoundError:
        pass
    return pids


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError):
            pass
    return total / CLK


def rss_mb(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            m = re.search(r"VmRSS:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text())
            total += int(m.group(1)) if m else 0
        except OSError:
            pass
    return total / 1024


class Procs:
    def __init__(self) -> None:
        self.procs: list[subprocess.Popen] = []

    def start(self, args: list[str], **kw) -> subprocess.Popen:
        p = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=kw.pop("stderr", None)
                             or subprocess.DEVNULL, **kw)
        self.procs.append(p)
        return p

    def stop_all(self) -> None:
        for p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in reversed(self.procs):
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()


def nginx_conf(tmp: Path, name: str, listen: int, upstream: int | None) -> Path:
    d = tmp / name
    d.mkdir()
    if upstream is None:
        location = 'default_type text/plain; return 200 "hello world\\n";'
        up = ""
    else:
        up = f"upstream up {{ server 127.0.0.1:{upstream}; keepalive 64; }}"
        location = ('proxy_pass http://up; proxy_http_version 1.1; '
                    'proxy_set_header Connection "";')
    conf = d / "nginx.conf"
    conf.write_text(f"""
user root;
worker_processes 1;
daemon off;
master_process on;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {d}/body; proxy_temp_path {d}/proxy;
  fastcgi_temp_path {d}/fcgi; uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;
  keepalive_requests 1000000;
  {up}
  server {{ listen 127.0.0.1:{listen}; location / {{ {location} }} }}
}}
""")
    return conf


def ketch_bootstrap(tmp: Path, name: str, listen: int, upstream: int, admin: int) -> Path:
    hcm = {"@type": "type.googleapis.com/envoy.extensions.filters.network."
                    "http_connection_manager.v3.HttpConnectionManager",
           "statPrefix": name,
           "routeConfig": {"name": name, "virtualHosts": [
               {"name": "all", "domains": ["*"],
                "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "up"}}]}]},
           "httpFilters": [{"name": "envoy.filters.http.router", "typedConfig": {
               "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}]}
    b = {"node": {"id": f"sidecar~127.0.0.1~{name}.default~default.svc.cluster.local",
                  "cluster": f"{name}.default"},
         "admin": {"address": {"socketAddress": {"address": "127.0.0.1", "portValue": admin}}},
         "staticResources": {
             "listeners": [{"name": name, "address": {"socketAddress": {
                 "address": "127.0.0.1", "portValue": listen}},
                 "filterChains": [{"filters": [{
                     "name": "envoy.filters.network.http_connection_manager",
                     "typedConfig": hcm}]}]}],
             "clusters": [{"name": "up", "type": "STATIC", "connectTimeout": "1s",
                           "loadAssignment": {"clusterName": "up", "endpoints": [{
                               "lbEndpoints": [{"endpoint": {"address": {"socketAddress": {
                                   "address": "127.0.0.1", "portValue": upstream}}}}]}]}}]}}
    path = tmp / f"{name}.json"
    path.write_text(json.dumps(b))
    return path


def wrk(port: int, duration: float) -> float:
    out = subprocess.run(["wrk", "-t1", "-c32", f"-d{int(duration)}s",
                          f"http://127.0.0.1:{port}/"], capture_output=True, text=True,
                         check=True).stdout
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        print(f"  wrk :{port}: {errors.group(1)} non-2xx responses", file=sys.stderr)
    return float(m.group(1)) if m else 0.0


def loadgen(port: int, rate: float, duration: float, watched: list[list[int]]) -> dict:
    before = [cpu_seconds(p) for p in watched]
    t0 = time.monotonic()
    out = subprocess.run([PY, str(Path(__file__).with_name("loadgen.py")), "--port", str(port),
                          "--rate", str(rate), "--duration", str(duration), "--warmup", "1"],
                         capture_output=True, text=True, check=True).stdout
    elapsed = time.monotonic() - t0
    result = json.loads(out)
    achieved = result["achieved_rate"] or rate
    result["vcpu_per_krps"] = [round((cpu_seconds(p) - b) / elapsed / (achieved / 1000), 4)
                               for p, b in zip(watched, before)]
    result["rss_mb"] = [round(rss_mb(p), 1) for p in watched]
    return result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--rate", type=float, default=1000.0)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--rounds", type=int, default=3, help="interleaved saturation rounds (medians reported)")
    a = ap.parse_args()
    for tool in ("nginx", "wrk"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is missing: apt-get install -y nginx-light wrk")
    procs = Procs()
    tmp = Path(tempfile.mkdtemp(prefix="ketch-bench-"))
    ports = free_ports(("up", "n1", "n2a", "k1", "k2a", "k2b", "ad1", "ad2a", "ad2b", "b1", "b2a", "b2b"))
    ketch = [str(ROOT / ".venv/bin/ketch")] if (ROOT / ".venv/bin/ketch").exists() else \
        [PY, "-m", "ketch"]
    try:
        nginx = {}
        for name, listen, up in (("upstream", ports["up"], None), ("n1", ports["n1"], ports["up"]),
                                 ("n2a", ports["n2a"], ports["n1"])):
            nginx[name] = procs.start(["nginx", "-p", str(tmp / "x"), "-c",
                                       str(nginx_conf(tmp, name, listen, up))])
        k = {}
        for name, listen, up, admin in (("k1", ports["k1"], ports["up"], ports["ad1"]),
                                        ("k2b", ports["k2b"], ports["up"], ports["ad2b"]),
                                        ("k2a", ports["k2a"], ports["k2b"], ports["ad2a"])):
            boot = ketch_bootstrap(tmp, name, listen, up, admin)
            k[name] = procs.start([*ketch, "proxy", "--bootstrap", str(boot),
                                   "--health-port", "0"],
                                  stderr=open(tmp / f"{name}.log", "w"))
        bare = {}
        for name, listen, up in (("b1", ports["b1"], ports["up"]), ("b2b", ports["b2b"], ports["up"]),
                                 ("b2a", ports["b2a"], ports["b2b"])):
            bare[name] = procs.start([PY, str(Path(__file__).with_name("bare.py")), str(listen), str(up)])
        for port in (ports["up"], ports["n1"], ports["n2a"], ports["k1"], ports["k2a"], ports["b1"],
                     ports["b2a"]):
            wait_http(port)
        time.sleep(1.0)
        pid = {n: pids_of(p) for n, p in {**nginx, **k, **bare}.items()}
        pid["n1w"] = [p for p in pid["n1"] if p != nginx["n1"].pid]  # the worker does the work
        pid["n2aw"] = [p for p in pid["n2a"] if p != nginx["n2a"].pid]

        # Saturation in interleaved rounds (the VM's speed drifts over a minute): each round runs
        # every shape for duration/rounds seconds; the medians and per-round ratios are reported.
        per = max(2.0, a.duration / a.rounds)
        print(f"saturation: {a.rounds} rounds of wrk -t1 -c32 -d{int(per)}s per shape", file=sys.stderr)
        targets = {"direct": ports["up"], "nginx": ports["n1"], "ketch": ports["k1"], "bare": ports["b1"]}
        rounds = [{shape: wrk(port, per) for shape, port in targets.items()} for _ in range(a.rounds)]
        sat = {shape: statistics.median(r[shape] for r in rounds) for shape in targets}
        print(f"fixed rate: {a.rate:g} req/s for {a.duration:g}s", file=sys.stderr)
        fixed = {
            "direct": loadgen(ports["up"], a.rate, a.duration, []),
            "nginx_1hop": loadgen(ports["n1"], a.rate, a.duration, [pid["n1w"]]),
            "ketch_1hop": loadgen(ports["k1"], a.rate, a.duration, [pid["k1"]]),
            "nginx_2hop": loadgen(ports["n2a"], a.rate, a.duration, [pid["n2aw"], pid["n1w"]]),
            "ketch_2hop": loadgen(ports["k2a"], a.rate, a.duration, [pid["k2a"], pid["k2b"]]),
            "bare_1hop": loadgen(ports["b1"], a.rate, a.duration, [pid["b1"]]),
            "bare_2hop": loadgen(ports["b2a"], a.rate, a.duration, [pid["b2a"], pid["b2b"]]),
        }
    finally:
        procs.stop_all()
        if os.environ.get("KEEP_BENCH_TMP"):
            print(f"kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    d = fixed["direct"]

    def added(shape: str, q: str) -> float:
        return round(fixed[shape][q] - d[q], 3)

    summary = {
        "saturated_rps": sat,
        "ketch_vs_nginx_throughput": round(sat["ketch"] / sat["nginx"], 3),
        "saturated_rounds": rounds,
        "ketch_vs_nginx_per_round": [round(r["ketch"] / r["nginx"], 3) for r in rounds],
        "fixed_rate": fixed,
        "bare_vs_nginx_throughput": round(sat["bare"] / sat["nginx"], 3),
        "added_ms": {s: {"p50": added(s, "p50_ms"), "p99": added(s, "p99_ms")}
                     for s in ("nginx_1hop", "ketch_1hop", "nginx_2hop", "ketch_2hop", "bare_1hop",
                               "bare_2hop")},
    }
    n2, k2 = summary["added_ms"]["nginx_2hop"], summary["added_ms"]["ketch_2hop"]
    summary["two_hop_added_vs_nginx"] = {
        q: round(k2[q] / n2[q], 2) if n2[q] > 0 else None for q in ("p50", "p99")}
    b2 = summary["added_ms"]["bare_2hop"]
    summary["bare_two_hop_added_vs_nginx"] = {
        q: round(b2[q] / n2[q], 2) if n2[q] > 0 else None for q in ("p50", "p99")}
    print(json.dumps(summary, indent=2))
    if a.json:
        a.json.write_text(json.dumps(summary, indent=2))
    print(f"\nsaturated: direct {sat['direct']:.0f}  nginx {sat['nginx']:.0f}  "
          f"ketch {sat['ketch']:.0f} bare {sat['bare']:.0f} req/s  "
          f"(ketch/nginx {summary['ketch_vs_nginx_throughput']}, bare/nginx {summary['bare_vs_nginx_throughput']}; "
          f"medians of {a.rounds} rounds, ketch/nginx per round {summary['ketch_vs_nginx_per_round']})")
    for s in ("direct", "nginx_1hop", "ketch_1hop", "bare_1hop", "nginx_2hop", "ketch_2hop", "bare_2hop"):
        f = fixed[s]
        print(f"{s:11s} p50 {f['p50_ms']:.3f} ms  p99 {f['p99_ms']:.3f} ms  "
              f"(from schedule p50 {f['sched_p50_ms']:.3f} p99 {f['sched_p99_ms']:.3f})  "
              f"ok {f['ok']} err {f['errors']}  vCPU/krps {f['vcpu_per_krps']}  "
              f"RSS MB {f['rss_mb']}")
    print(f"two-hop added latency, ketch/nginx: {summary['two_hop_added_vs_nginx']}  "
          f"bare/nginx: {summary['bare_two_hop_added_vs_nginx']}")


if __name__ == "__main__":
    main()
