"""The thin executor for netplan: runs `ip`/`iptables` commands, writes hosts files, opens
sockets inside a pod's namespace, and removes everything a runtime prefix owns."""

from __future__ import annotations

import asyncio
import ctypes
import ipaddress
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import threading
from pathlib import Path
from typing import Sequence

from ketch.runtime import netplan
from ketch.runtime.netplan import MeshNetwork, PodNetwork

NETNS_RUN = Path("/var/run/netns")
NETNS_ETC = Path("/etc/netns")
CLONE_NEWNET = 0x40000000


class NetError(RuntimeError):
    pass


def pod_mode_available() -> tuple[bool, str]:
    """(available, reason): pod mode needs root on Linux and the ip/iptables tools."""
    if os.name != "posix" or not Path("/proc/self/ns/net").exists():
        return False, "not Linux"
    if os.geteuid() != 0:
        return False, "not root"
    for tool in ("ip", "iptables-restore", "setpriv"):
        if shutil.which(tool) is None:
            return False, f"{tool} not installed"
    return True, ""


def probe_pod_mode() -> tuple[bool, str]:
    """pod_mode_available, then really create a namespace with a nat rule in it (a
    container may be root yet lack CAP_SYS_ADMIN/CAP_NET_ADMIN)."""
    ok, why = pod_mode_available()
    if not ok:
        return ok, why
    name = f"kprobe{os.getpid()}"
    try:
        run(["ip", "netns", "add", name])
        run(["ip", "netns", "exec", name, "iptables", "-t", "nat", "-A", "OUTPUT", "-p", "tcp",
             "-j", "REDIRECT", "--to-ports", "15001"])
        return True, ""
    except NetError as exc:
        return False, str(exc)
    finally:
        run(["ip", "netns", "del", name], check=False)


def run(cmd: Sequence[str], *, input: str | None = None, check: bool = True) -> str:
    proc = subprocess.run(list(cmd), input=input, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise NetError(f"{' '.join(cmd)}: {proc.stderr.strip() or proc.returncode}")
    return proc.stdout


def run_all(cmds: Sequence[Sequence[str]]) -> None:
    for cmd in cmds:
        run(cmd)


def used_subnets() -> list[ipaddress.IPv4Network]:
    out = run(["ip", "-4", "-o", "addr", "show"], check=False)
    out += run(["ip", "-4", "route", "show"], check=False)
    nets = []
    for match in re.finditer(r"(\d+\.\d+\.\d+\.\d+/\d+)", out):
        try:
            nets.append(ipaddress.ip_network(match.group(1), strict=False))
        except ValueError:
            continue
    return nets


def setup_bridge(net: MeshNetwork) -> None:
    run_all(netplan.bridge_up(net))
    run_all(netplan.host_forward_rules(net, "-I"))


def claim_subnet(prefix: str, base: str = "10.233.0.0/16") -> MeshNetwork:
    """Choose a free /24 and create the bridge on it, under a host-wide lock, so two
    runtimes starting at once never pick the same subnet."""
    import fcntl

    with open("/run/ketch-subnets.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        net = MeshNetwork(prefix, netplan.choose_subnet(used_subnets(), base))
        setup_bridge(net)
        return net


def setup_pod(net: MeshNetwork, pod: PodNetwork, hosts: str, rules: str | None) -> None:
    etc = NETNS_ETC / pod.netns
    etc.mkdir(parents=True, exist_ok=True)
    (etc / "hosts").write_text(hosts)
    run_all(netplan.pod_up(net, pod))
    if rules is not None:
        run(["ip", "netns", "exec", pod.netns, "iptables-restore"], input=rules)


def write_hosts(pod: PodNetwork, hosts: str) -> None:
    path = NETNS_ETC / pod.netns / "hosts"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(hosts)
    os.replace(tmp, path)


def teardown_pod(pod: PodNetwork) -> None:
    kill_netns_processes(pod.netns)
    for cmd in netplan.pod_down(pod):
        run(cmd, check=False)
    shutil.rmtree(NETNS_ETC / pod.netns, ignore_errors=True)


def kill_netns_processes(netns: str) -> None:
    out = run(["ip", "netns", "pids", netns], check=False)
    for pid in (int(p) for p in out.split() if p.isdigit()):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def leftovers(prefix: str) -> dict[str, list[str]]:
    """Kernel objects owned by `prefix`: netns, links, host iptables rules, /etc/netns."""
    netns = [line.split()[0] for line in run(["ip", "netns", "list"], check=False).splitlines()
             if line.strip() and netplan.owned_by(prefix, line.split()[0])]
    links = []
    for line in run(["ip", "-o", "link", "show"], check=False).splitlines():
        parts = line.split(":", 2)
        if len(parts) >= 2:
            name = parts[1].strip().split("@")[0]
            if netplan.owned_by(prefix, name):
                links.append(name)
    rules = [line for line in run(["iptables", "-w", "-S", "FORWARD"], check=False).splitlines()
             if f"ketch:{prefix}" in line]
    etc = [p.name for p in NETNS_ETC.glob(f"{prefix}-*")] if NETNS_ETC.is_dir() else []
    return {"netns": netns, "links": links, "iptables": rules, "etc": etc}


def cleanup_prefix(prefix: str) -> dict[str, list[str]]:
    """Remove everything `prefix` owns; returns what was found (and removed)."""
    found = leftovers(prefix)
    for ns in found["netns"]:
        kill_netns_processes(ns)
        run(["ip", "netns", "del", ns], check=False)
    for link in found["links"]:
        run(["ip", "link", "del", link], check=False)
    for rule in found["iptables"]:
        args = shlex.split(rule)  # -S output quotes the comment
        if args[:1] == ["-A"]:
            args[0] = "-D"
            run(["iptables", "-w", *args], check=False)
    for name in found["etc"]:
        shutil.rmtree(NETNS_ETC / name, ignore_errors=True)
    return found


# -- sockets inside a pod ------------------------------------------------------------------
_libc = None


def _setns(fd: int) -> None:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def _in_netns(netns: str, fn, *args):
    """Run fn in a fresh thread switched into `netns` (setns affects only that thread);
    sockets made there stay in that namespace."""
    result: dict[str, object] = {}

    def target() -> None:
        try:
            fd = os.open(NETNS_RUN / netns, os.O_RDONLY)
            try:
                _setns(fd)
            finally:
                os.close(fd)
            result["value"] = fn(*args)
        except BaseException as exc:  # handed to the caller
            result["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join()
    if "error" in result:
        raise result["error"]  # type: ignore[misc]
    return result["value"]


def connect_in_netns(netns: str, host: str, port: int, timeout: float = 1.0) -> socket.socket:
    def make() -> socket.socket:
        sock = socket.create_connection((host, port), timeout=timeout)
        sock.setblocking(False)
        return sock

    return _in_netns(netns, make)


async def open_in_netns(netns: str | None, host: str, port: int, timeout: float = 1.0):
    """asyncio streams to host:port from inside `netns` (None: the host namespace)."""
    if netns is None:
        return await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    sock = await asyncio.to_thread(connect_in_netns, netns, host, port, timeout)
    return await asyncio.open_connection(sock=sock)


async def http_get_status(netns: str | None, host: str, port: int, path: str,
                          timeout: float = 1.0) -> int:
    """Status of a plain HTTP/1.1 GET, or 0 when nothing answers."""
    try:
        reader, writer = await open_in_netns(netns, host, port, timeout)
    except (OSError, asyncio.TimeoutError):
        return 0
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
                     .encode())
        line = await asyncio.wait_for(reader.readline(), timeout)
        parts = line.split()
        return int(parts[1]) if len(parts) >= 2 and parts[1].isdigit() else 0
    except (OSError, asyncio.TimeoutError):
        return 0
    finally:
        writer.close()


async def tcp_open(netns: str | None, host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        _, writer = await open_in_netns(netns, host, port, timeout)
    except (OSError, asyncio.TimeoutError):
        return False
    writer.close()
    return True
