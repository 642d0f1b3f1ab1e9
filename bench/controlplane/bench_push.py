"""Control-plane push benchmark (run by hand, not a test).

    .venv/bin/python bench/controlplane/bench_push.py [--services 1000] [--endpoints 5]
        [--clients 100] [--procs 4] [--rounds 20] [--shared-scope]

Starts `ketch control-plane`, applies N ServiceEntries with E endpoints each (the first
service's endpoints come from the registration API), connects C ADS clients (grpc.aio, in
separate processes, each ACKing like Envoy: CDS, EDS for every cluster, LDS, RDS "80"), then
measures, over repeated rounds:
- apply -> every client ACKed: POST one new ServiceEntry; the time until every client has
  ACKed a CDS response holding the new cluster, and until every client also has its endpoints;
- one endpoint change -> every client has it: register one more instance of the first
  service; the time until every client received the EDS response showing it;
- control-plane CPU seconds per full push and its resident memory (from /proc).
Clocks: time.time() in every process of this one machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import queue
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

CDS = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
EDS = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
LDS = "type.googleapis.com/envoy.config.listener.v3.Listener"
RDS = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
DOMAIN = "bench.example"
FIRST = f"svc-0000.{DOMAIN}"
FIRST_CLUSTER = f"outbound|80||{FIRST}"


# -- the clients (child processes) ----------------------------------------------------------

async def ads_client(index: int, addr: str, shared: bool, out: mp.Queue) -> None:
    import grpc
    from envoy.config.endpoint.v3.endpoint_pb2 import ClusterLoadAssignment
    from envoy.service.discovery.v3 import ads_pb2_grpc
    from envoy.service.discovery.v3.discovery_pb2 import DiscoveryRequest
    from google.protobuf.wrappers_pb2 import StringValue

    ip = "10.200.0.1" if shared else f"10.200.{index // 250}.{index % 250 + 1}"
    channel = grpc.aio.insecure_channel(addr, options=[
        ("grpc.max_receive_message_length", 256 * 1024 * 1024)])
    call = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel).StreamAggregatedResources()
    first = DiscoveryRequest(type_url=CDS)
    first.node.id = f"sidecar~{ip}~bench-{index}.default~default.svc.cluster.local"
    first.node.metadata.fields["NAMESPACE"].string_value = "default"
    first.node.metadata.fields["LABELS"].struct_value.fields["app"].string_value = "bench-client"
    await call.write(first)
    await call.write(DiscoveryRequest(type_url=LDS))
    nonces: dict[str, str] = {}
    eds_names: list[str] = []
    async for resp in call:
        t = time.time()
        # Cluster.name and ClusterLoadAssignment.cluster_name are field 1: read just that.
        names = [StringValue.FromString(a.value).value for a in resp.resources]
        nonces[resp.type_url] = resp.nonce
        subscribed = {CDS: [], LDS: [], RDS: ["80"], EDS: eds_names}[resp.type_url]
        await call.write(DiscoveryRequest(type_url=resp.type_url, resource_names=subscribed,
                                          response_nonce=resp.nonce, version_info=resp.version_info))
        report: dict = {"i": index, "type": resp.type_url.rsplit(".", 1)[-1], "t": t,
                        "version": resp.version_info, "n": len(names)}
        if resp.type_url == CDS:
            clusters = sorted(n for n in names if n.startswith("outbound|"))
            report["new"] = [n for n in clusters if "new-" in n]
            if clusters != eds_names:
                eds_names = clusters
                await call.write(DiscoveryRequest(type_url=EDS, resource_names=eds_names,
                                                  response_nonce=nonces.get(EDS, "")))
        elif resp.type_url == LDS and RDS not in nonces:
            nonces[RDS] = ""
            await call.write(DiscoveryRequest(type_url=RDS, resource_names=["80"]))
        elif resp.type_url == EDS:
            report["names"] = [n for n in names if "new-" in n]
            if FIRST_CLUSTER in names:
                cla = ClusterLoadAssignment.FromString(resp.resources[names.index(FIRST_CLUSTER)].value)
                report["first_endpoints"] = sum(len(g.lb_endpoints) for g in cla.endpoints)
        out.put(report)


def client_process(indices: list[int], addr: str, shared: bool, out: mp.Queue) -> None:
    async def main() -> None:
        await asyncio.gather(*(ads_client(i, addr, shared, out) for i in indices))
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass


# -- the driver ---------------------------------------------------------------------------

def post(url: str, body: bytes, content_type: str) -> dict:
    req = urllib.request.Request(url, data=body, headers={"Content-Type": content_type})
    with urllib.request.urlopen(req, timeout=120) as resp:
        return json.loads(resp.read())


def service_entry(i: int, endpoints: int, name: str | None = None) -> str:
    host = f"{name or f'svc-{i:04d}'}.{DOMAIN}"
    eps = "".join(f"\n  - address: 10.{i // 200 % 250}.{i % 200}.{e + 1}" for e in range(endpoints))
    body = (f"  workloadSelector: {{labels: {{app: svc-{i:04d}}}}}" if i == 0 and name is None
            else f"  endpoints:{eps}")
    return (f"apiVersion: networking.istio.io/v1\nkind: ServiceEntry\n"
            f"metadata: {{name: {name or f'svc-{i:04d}'}, namespace: default}}\n"
            f"spec:\n  hosts: [{host}]\n  ports: [{{number: 80, name: http, protocol: HTTP}}]\n"
            f"  location: MESH_INTERNAL\n  resolution: STATIC\n{body}\n")


def register(base: str, k: int) -> None:
    post(f"{base}/api/v1/registry/instances", json.dumps({
        "name": f"svc-0000-{k}", "namespace": "default", "labels": {"app": "svc-0000"},
        "address": f"10.250.0.{k + 1}", "ports": {"http": 8080}}).encode(), "application/json")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def drain_until(q: mp.Queue, done, deadline: float) -> None:
    while not done():
        left = deadline - time.time()
        if left <= 0:
            raise TimeoutError("clients did not converge in time")
        try:
            yield q.get(timeout=min(left, 1.0))
        except queue.Empty:
            continue


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--services", type=int, default=1000)
    ap.add_argument("--endpoints", type=int, default=5)
    ap.add_argument("--clients", type=int, default=100)
    ap.add_argument("--procs", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--partial-updates", action=argparse.BooleanOptionalAction, default=True,
                    help="control plane sends only changed RDS/EDS resources (its default); "
                         "--no-partial-updates: the whole subscribed set on every push")
    ap.add_argument("--profile", metavar="FILE", help="run the control plane under cProfile")
    ap.add_argument("--shared-scope", action="store_true",
                    help="give every client the same IP and labels (one generation shared)")
    args = ap.parse_args()

    xds_port, http_port = free_port(), free_port()
    base = f"http://127.0.0.1:{http_port}"
    launcher = (["-m", "cProfile", "-o", args.profile, "-m", "ketch"] if args.profile
                else ["-m", "ketch"])
    cp = subprocess.Popen([sys.executable, *launcher, "control-plane", "--host", "127.0.0.1",
                           "--xds-port", str(xds_port), "--http-port", str(http_port),
                           "--registry-ttl", "86400", "--log-level", "warning",
                           *([] if args.partial_updates else ["--no-partial-updates"])])
    procs: list[mp.Process] = []
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(f"{base}/healthz", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        t = time.time()
        docs = "---\n".join(service_entry(i, args.endpoints) for i in range(args.services))
        post(f"{base}/api/v1/config", docs.encode(), "application/yaml")
        for k in range(args.endpoints):
            register(base, k)
        print(f"applied {args.services} services x {args.endpoints} endpoints in {time.time() - t:.2f}s")

        q: mp.Queue = mp.Queue()
        per = [list(range(args.clients))[p::args.procs] for p in range(args.procs)]
        for indices in per:
            proc = mp.Process(target=client_process, args=(indices, f"127.0.0.1:{xds_port}",
                                                           args.shared_scope, q), daemon=True)
            proc.start()
            procs.append(proc)
        t = time.time()
        ready: set[int] = set()
        for r in drain_until(q, lambda: len(ready) == args.clients, time.time() + 600):
            if r["type"] == "ClusterLoadAssignment" and r["n"] >= args.services:
                ready.add(r["i"])
        print(f"{args.clients} clients connected and synced in {time.time() - t:.2f}s; "
              f"control plane RSS {rss_mb(cp.pid):.0f} MB")
        time.sleep(1.0)
        while True:  # drop the initial chatter
            try:
                q.get_nowait()
            except queue.Empty:
                break

        cds_times, serve_times, eds_times, cpu = [], [], [], []
        for rnd in range(args.rounds):
            name = f"new-{rnd:03d}"
            cluster = f"outbound|80||{name}.{DOMAIN}"
            has_cds: set[int] = set()
            has_eds: set[int] = set()
            cpu0 = cpu_seconds(cp.pid)
            t0 = time.time()
            post(f"{base}/api/v1/config", service_entry(args.services + rnd, args.endpoints, name).encode(),
                 "application/yaml")
            last_cds = last_eds = t0
            for r in drain_until(q, lambda: len(has_cds) == len(has_eds) == args.clients, t0 + 120):
                if r["type"] == "Cluster" and cluster in r.get("new", ()):
                    if r["i"] not in has_cds:
                        has_cds.add(r["i"]); last_cds = max(last_cds, r["t"])
                elif r["type"] == "ClusterLoadAssignment" and cluster in r.get("names", ()):
                    if r["i"] not in has_eds:
                        has_eds.add(r["i"]); last_eds = max(last_eds, r["t"])
            time.sleep(0.5)  # let the rest of the push (RDS) finish before reading CPU
            cpu.append(cpu_seconds(cp.pid) - cpu0)
            cds_times.append(last_cds - t0)
            serve_times.append(last_eds - t0)

            # one endpoint change: a new instance of the first service via the registry
            seen: set[int] = set()
            t0 = time.time()
            register(base, args.endpoints + rnd)
            want = args.endpoints + rnd + 1
            last = t0
            for r in drain_until(q, lambda: len(seen) == args.clients, t0 + 120):
                if r.get("first_endpoints") == want and r["i"] not in seen:
                    seen.add(r["i"]); last = max(last, r["t"])
            eds_times.append(last - t0)
            time.sleep(0.3)

        ms = lambda xs, p: f"{pct(xs, p) * 1000:.0f} ms"  # noqa: E731
        print(f"apply -> all {args.clients} ACKed CDS: p50 {ms(cds_times, 50)}, p99 {ms(cds_times, 99)}")
        print(f"apply -> all have the new endpoints: p50 {ms(serve_times, 50)}, p99 {ms(serve_times, 99)}")
        print(f"endpoint change -> all have it: p50 {ms(eds_times, 50)}, p99 {ms(eds_times, 99)}")
        print(f"control-plane CPU per full push: mean {statistics.mean(cpu):.2f} s "
              f"(max {max(cpu):.2f} s); RSS {rss_mb(cp.pid):.0f} MB")
        print(f"({args.rounds} rounds, {os.cpu_count()} cores, debounce 100 ms included, "
              f"{'shared' if args.shared_scope else 'distinct'} proxy scopes, "
              f"{'partial' if args.partial_updates else 'full'} RDS/EDS responses)")
    finally:
        for proc in procs:
            proc.terminate()
        cp.terminate()
        cp.wait(timeout=30)


if __name__ == "__main__":
    main()
