"""Pure planning of a mesh's pod network: names, addresses, hosts files, capture rules and
the `ip` commands that realise them. The executor (netexec.py) only runs what is planned.

Every kernel object carries the runtime's prefix (e.g. `k3fa9c`), so cleanup can find
exactly what one runtime created: bridge `<prefix>br`, host veths `<prefix>h<n>`, network
namespaces `<prefix>-<pod>`, host iptables rules commented `ketch:<prefix>`.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

from ketch.runtime.manifest import ServiceSpec

PROXY_UID = 1337
OUTBOUND_PORT = 15001
INBOUND_PORT = 15006
# Ports of the proxy itself that inbound capture must leave alone (istio-iptables excludes
# 15020/15021/15090 and the tunnel port 15008; Ketch's admin 15000 too).
INBOUND_EXCLUDED = (15000, 15008, 15020, 15021, 15090)
IFNAME_MAX = 15


@dataclass(frozen=True)
class MeshNetwork:
    prefix: str
    subnet: ipaddress.IPv4Network

    @property
    def bridge(self) -> str:
        return f"{self.prefix}br"

    @property
    def gateway(self) -> str:
        """The bridge's address: the host as the pods see it (control plane, router)."""
        return str(self.subnet.network_address + 1)

    @property
    def comment(self) -> str:
        return f"ketch:{self.prefix}"


@dataclass(frozen=True)
class PodNetwork:
    pod: str
    netns: str
    veth_host: str
    veth_pod: str
    ip: str


def validate_prefix(prefix: str) -> None:
    if not (prefix.isalnum() and prefix.islower() and 2 <= len(prefix) <= 7):
        raise ValueError(f"runtime prefix must be 2-7 lowercase alphanumerics: {prefix!r}")


def plan_pod(net: MeshNetwork, pod: str, index: int) -> PodNetwork:
    """Index n (0-based) gets address .n+2 (.1 is the bridge) and veth `<prefix>h<n>`."""
    validate_prefix(net.prefix)
    hosts = net.subnet.num_addresses - 3
    if not 0 <= index < hosts:
        raise ValueError(f"pod index {index} outside subnet {net.subnet}")
    veth_host = f"{net.prefix}h{index:x}"
    veth_pod = f"{net.prefix}p{index:x}"
    assert len(veth_host) <= IFNAME_MAX and len(veth_pod) <= IFNAME_MAX
    return PodNetwork(pod=pod, netns=f"{net.prefix}-{pod}", veth_host=veth_host,
                      veth_pod=veth_pod, ip=str(net.subnet.network_address + 2 + index))


def service_names(svc: ServiceSpec) -> tuple[str, ...]:
    """Names a pod may use for a service, as Kubernetes DNS search paths allow."""
    n, ns = svc.name, svc.namespace
    return (f"{n}.{ns}.svc.cluster.local", f"{n}.{ns}.svc", f"{n}.{ns}", n)


def hosts_file(pod: PodNetwork, namespace: str, services: Iterable[ServiceSpec],
               vip: Callable[[str], str]) -> str:
    """/etc/hosts for a pod: its own name, and every service name -> the service's VIP.
    Short names resolve only within the pod's own namespace, as with Kubernetes search
    domains."""
    lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback",
             f"{pod.ip}\t{pod.pod}"]
    for svc in sorted(services, key=lambda s: (s.namespace, s.name)):
        names = service_names(svc)
        if svc.namespace != namespace:
            names = names[:-1]
        address = svc.cluster_ip or vip(svc.hostname)
        lines.append(f"{address}\t{' '.join(names)}")
    return "\n".join(lines) + "\n"


def capture_rules(inbound_excluded: Sequence[int] = INBOUND_EXCLUDED,
                  uid: int = PROXY_UID) -> str:
    """iptables-restore input for a pod's nat table, in istio-iptables' shape: inbound TCP to
    15006, outbound TCP to 15001, the proxy's own traffic (uid/gid 1337) and loopback exempt,
    except the proxy talking to the pod's own IP over lo, which goes through inbound."""
    rules = [
        "*nat",
        ":PREROUTING ACCEPT [0:0]", ":INPUT ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]",
        ":POSTROUTING ACCEPT [0:0]",
        ":ISTIO_INBOUND - [0:0]", ":ISTIO_IN_REDIRECT - [0:0]",
        ":ISTIO_OUTPUT - [0:0]", ":ISTIO_REDIRECT - [0:0]",
        "-A PREROUTING -p tcp -j ISTIO_INBOUND",
        "-A OUTPUT -p tcp -j ISTIO_OUTPUT",
    ]
    rules += [f"-A ISTIO_INBOUND -p tcp --dport {p} -j RETURN" for p in inbound_excluded]
    rules += [
        "-A ISTIO_INBOUND -p tcp -j ISTIO_IN_REDIRECT",
        f"-A ISTIO_IN_REDIRECT -p tcp -j REDIRECT --to-ports {INBOUND_PORT}",
        f"-A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports {OUTBOUND_PORT}",
        "-A ISTIO_OUTPUT -s 127.0.0.6/32 -o lo -j RETURN",
        f"-A ISTIO_OUTPUT ! -d 127.0.0.1/32 -o lo -p tcp -m owner --uid-owner {uid} "
        "-j ISTIO_IN_REDIRECT",
        f"-A ISTIO_OUTPUT -o lo -m owner ! --uid-owner {uid} -j RETURN",
        f"-A ISTIO_OUTPUT -m owner --uid-owner {uid} -j RETURN",
        f"-A ISTIO_OUTPUT ! -d 127.0.0.1/32 -o lo -p tcp -m owner --gid-owner {uid} "
        "-j ISTIO_IN_REDIRECT",
        f"-A ISTIO_OUTPUT -o lo -m owner ! --gid-owner {uid} -j RETURN",
        f"-A ISTIO_OUTPUT -m owner --gid-owner {uid} -j RETURN",
        "-A ISTIO_OUTPUT -d 127.0.0.1/32 -j RETURN",
        "-A ISTIO_OUTPUT -j ISTIO_REDIRECT",
        "COMMIT",
    ]
    return "\n".join(rules) + "\n"


Command = tuple[str, ...]


def bridge_up(net: MeshNetwork) -> list[Command]:
    return [
        ("ip", "link", "add", net.bridge, "type", "bridge"),
        ("ip", "addr", "add", f"{net.gateway}/{net.subnet.prefixlen}", "dev", net.bridge),
        ("ip", "link", "set", net.bridge, "up"),
    ]


def host_forward_rules(net: MeshNetwork, op: str = "-A") -> list[Command]:
    """Let bridged pod traffic through a host FORWARD chain that may default to DROP."""
    tag = ("-m", "comment", "--comment", net.comment)
    return [
        ("iptables", "-w", op, "FORWARD", "-i", net.bridge, *tag, "-j", "ACCEPT"),
        ("iptables", "-w", op, "FORWARD", "-o", net.bridge, *tag, "-j", "ACCEPT"),
    ]


def pod_up(net: MeshNetwork, pod: PodNetwork) -> list[Command]:
    ns = ("ip", "netns", "exec", pod.netns)
    return [
        ("ip", "netns", "add", pod.netns),
        ("ip", "link", "add", pod.veth_host, "type", "veth", "peer", "name", pod.veth_pod),
        ("ip", "link", "set", pod.veth_host, "master", net.bridge),
        ("ip", "link", "set", pod.veth_host, "up"),
        ("ip", "link", "set", pod.veth_pod, "netns", pod.netns),
        (*ns, "ip", "link", "set", pod.veth_pod, "name", "eth0"),
        (*ns, "ip", "addr", "add", f"{pod.ip}/{net.subnet.prefixlen}", "dev", "eth0"),
        (*ns, "ip", "link", "set", "eth0", "up"),
        (*ns, "ip", "link", "set", "lo", "up"),
        # VIPs are not on the bridge: the default route lets connect() to a VIP leave the
        # socket layer so the nat OUTPUT chain can redirect it to the sidecar.
        (*ns, "ip", "route", "add", "default", "via", net.gateway),
    ]


def pod_down(pod: PodNetwork) -> list[Command]:
    # Deleting the namespace destroys its end of the veth, which takes the host end along.
    return [("ip", "link", "del", pod.veth_host), ("ip", "netns", "del", pod.netns)]


def bridge_down(net: MeshNetwork) -> list[Command]:
    return [("ip", "link", "del", net.bridge)]


def choose_subnet(used: Iterable[ipaddress.IPv4Network],
                  base: str = "10.233.0.0/16") -> ipaddress.IPv4Network:
    """The first /24 of `base` that overlaps nothing in use on the host."""
    taken = list(used)
    for candidate in ipaddress.ip_network(base).subnets(new_prefix=24):
        if candidate.network_address.packed[2] == 0:
            continue
        if not any(candidate.overlaps(t) for t in taken):
            return candidate
    raise RuntimeError(f"no free /24 left in {base}")


def owned_by(prefix: str, name: str) -> bool:
    """Does a link or namespace name belong to the runtime with this prefix?"""
    return name == f"{prefix}br" or name.startswith(f"{prefix}-") or (
        name.startswith(prefix) and len(name) > len(prefix) + 1
        and name[len(prefix)] in "hp" and all(c in "0123456789abcdef"
                                             for c in name[len(prefix) + 1:].split("@")[0]))
