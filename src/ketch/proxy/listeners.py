"""Listeners: bound sockets, accept, original destination, filter-chain selection, hand-off.

A connection accepted on a listener with `use_original_dst` (15001/15006) is handed to the
listener whose address equals the original destination (SO_ORIGINAL_DST), else `0.0.0.0:PORT`,
else it stays (contracts §4). In process mode (no iptables; explicit HTTP proxy), a connection
that was not redirected is inspected instead: `CONNECT host:port` is answered `200` and the
tunnelled bytes are handed off as if they had been sent to host:port; an absolute-form request
(`GET http://host:port/...`) is handed off to that port's listener with its bytes.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import struct

from ketch.proxy.config import FilterChain, ListenerConfig, select_chain
from ketch.proxy.hcm import Http1Downstream
from ketch.proxy.stats import ListenerStats
from ketch.proxy.tcp_proxy import TcpDownstream

SO_ORIGINAL_DST = 80
INSPECT_TIMEOUT = 1.0  # how long to wait for a client's first bytes before choosing without them
_HTTP_METHODS = (b"GET ", b"POST", b"PUT ", b"HEAD", b"DELE", b"OPTI", b"PATC", b"CONN", b"TRAC")


def original_dst(sock: socket.socket | None) -> tuple[str, int] | None:
    if sock is None:
        return None
    try:
        if sock.family == socket.AF_INET:
            raw = sock.getsockopt(socket.SOL_IP, SO_ORIGINAL_DST, 16)
            port, ip = struct.unpack_from("!2xH4s", raw)
            return socket.inet_ntoa(ip), port
        if sock.family == socket.AF_INET6:
            raw = sock.getsockopt(socket.IPPROTO_IPV6, SO_ORIGINAL_DST, 28)
            port = struct.unpack_from("!2xH", raw)[0]
            return socket.inet_ntop(socket.AF_INET6, raw[8:24]), port
    except OSError:
        return None
    return None


def parse_client_hello(data: bytes) -> tuple[str, tuple[str, ...]] | None:
    """SNI and ALPN from a TLS ClientHello (None when incomplete or not TLS)."""
    try:
        if len(data) < 5 or data[0] != 0x16:
            return None
        rec_len = struct.unpack_from("!H", data, 3)[0]
        body = data[5:5 + rec_len]
        if len(body) < rec_len or body[0] != 1:
            return None
        p = 4 + 2 + 32
        p += 1 + body[p]
        p += 2 + struct.unpack_from("!H", body, p)[0]
        p += 1 + body[p]
        end = p + 2 + struct.unpack_from("!H", body, p)[0]
        p += 2
        sni, alpn = "", []
        while p + 4 <= end:
            etype, elen = struct.unpack_from("!HH", body, p)
            ext = body[p + 4:p + 4 + elen]
            if etype == 0 and len(ext) > 5:
                n = struct.unpack_from("!H", ext, 3)[0]
                sni = ext[5:5 + n].decode("ascii", "replace")
            elif etype == 16 and len(ext) > 2:
                q = 2
                while q < len(ext):
                    n = ext[q]
                    alpn.append(ext[q + 1:q + 1 + n].decode("ascii", "replace"))
                    q += 1 + n
            p += 4 + elen
        return sni, tuple(alpn)
    except (IndexError, struct.error):
        return None


class AcceptProtocol(asyncio.Protocol):
    """First protocol of every accepted connection: decides where it goes, then steps aside."""

    def __init__(self, manager: ListenerManager, listener: ListenerConfig) -> None:
        self.manager = manager
        self.listener = listener
        self.transport = None
        self.buf = b""
        self.timer = None
        self.dst: tuple[str, int] = ("", 0)
        self.peer: tuple[str, int] = ("", 0)
        self.redirected = False
        self.explicit = False

    def connection_made(self, transport) -> None:
        self.transport = transport
        m = self.manager
        stats = m.listener_stats(self.listener)
        stats.downstream_cx_total.value += 1
        local = transport.get_extra_info("sockname")[:2]
        self.peer = transport.get_extra_info("peername")[:2]
        self.dst = local
        target = self.listener
        if target.use_original_dst or target.original_dst_filter:
            od = original_dst(transport.get_extra_info("socket"))
            if od is not None and od != tuple(local):
                self.dst, self.redirected = od, True
                if target.use_original_dst:  # hand-off (virtualOutbound); the filter alone only re-addresses
                    target = m.handoff_target(od) or target
            elif target.use_original_dst and m.state.explicit_proxy:
                self.explicit = True
        self.listener = target
        if self.explicit or target.inspect:
            self.timer = m.state.loop.call_later(INSPECT_TIMEOUT, self._decide)
            return
        self._decide()

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if self.explicit:
            if b"\r\n" not in self.buf and len(self.buf) < 8192:
                return
            self._explicit_proxy()
            return
        if len(self.buf) >= 5 and self.buf[0] == 0x16:
            if parse_client_hello(self.buf) is None and len(self.buf) < 16384:
                return
        self._decide()

    def eof_received(self) -> bool:
        self._decide()
        return True

    def connection_lost(self, exc) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _explicit_proxy(self) -> None:
        line = self.buf.split(b"\r\n", 1)[0]
        parts = line.split(b" ")
        self.explicit = False
        if len(parts) == 3 and parts[0] == b"CONNECT":
            host, _, port = parts[1].decode("latin-1").rpartition(":")
            rest = self.buf.split(b"\r\n\r\n", 1)
            if len(rest) < 2:
                self.explicit = True  # wait for the end of the CONNECT head
                return
            self.transport.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            self.buf = rest[1]
            self._resolve_then_decide(host.strip("[]"), int(port) if port.isdigit() else 443)
            return
        if len(parts) == 3 and parts[1][:7].lower() == b"http://":
            authority = parts[1][7:].split(b"/", 1)[0].decode("latin-1")
            host, sep, port = authority.rpartition(":")
            if not sep or not port.isdigit():
                host, port = authority, "80"
            self._resolve_then_decide(host.strip("[]"), int(port))
            return
        self._decide()

    def _resolve_then_decide(self, host: str, port: int) -> None:
        m = self.manager
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.transport.pause_reading()

        async def resolve() -> None:
            ip = await self._destination_ip(host, port)
            self.dst = (ip, port)
            self.listener = m.handoff_target(self.dst) or self.listener
            self.transport.resume_reading()
            self._decide()

        m.state.loop.create_task(resolve())

    async def _destination_ip(self, host: str, port: int) -> str:
        try:
            ipaddress.ip_address(host)
            return host
        except ValueError:
            pass
        m = self.manager
        if m.handoff_target(("0.0.0.0", port)) is not None:
            # A mesh name (`reviews`) reached through HTTP_PROXY: that port's listener routes
            # by Host, so DNS (slow or absent for mesh names) is not asked.
            return "0.0.0.0"
        try:
            infos = await m.state.loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            return infos[0][4][0]
        except OSError:
            return host

    def _decide(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        t = self.transport
        if t is None or t.is_closing():
            return
        self.explicit = False
        self.transport = None  # decided once
        lc = self.listener
        sni, transport_proto, alpn = "", "raw_buffer", ()
        if self.buf[:1] == b"\x16":
            transport_proto = "tls"
            hello = parse_client_hello(self.buf)
            if hello is not None:
                sni, alpn = hello
        elif self.buf.startswith(b"PRI * HTTP/2.0"):
            alpn = ("h2c",)
        elif self.buf[:4] in _HTTP_METHODS:
            alpn = ("http/1.1",)
        chain = select_chain(lc, self.dst[0], self.dst[1], self.peer[0], sni, transport_proto, alpn)
        m = self.manager
        if chain is None:
            m.listener_stats(lc).no_filter_chain_match.value += 1
            t.close()
            return
        proto = m.make_protocol(lc, chain, self.peer, self.dst, self.redirected or self.dst != t.get_extra_info("sockname")[:2])
        t.set_protocol(proto)
        proto.connection_made(t)
        if self.buf:
            proto.data_received(self.buf)
            self.buf = b""


class ListenerManager:
    """Binds listeners that bind_to_port, swaps their configs, drains the removed ones."""

    def __init__(self, state) -> None:
        self.state = state
        self.servers: dict[str, tuple[asyncio.base_events.Server, ListenerConfig]] = {}
        self._stats: dict[str, ListenerStats] = {}

    def listener_stats(self, lc: ListenerConfig) -> ListenerStats:
        key = f"{lc.host}_{lc.port}"
        s = self._stats.get(key)
        if s is None:
            s = self._stats[key] = ListenerStats(self.state.store, key)
        return s

    def handoff_target(self, dst: tuple[str, int]) -> ListenerConfig | None:
        by_addr = self.state.snapshot.by_addr
        return by_addr.get(dst) or by_addr.get(("0.0.0.0", dst[1])) or by_addr.get(("::", dst[1]))

    def make_protocol(self, lc: ListenerConfig, chain: FilterChain, peer, dst, redirected: bool):
        od = dst if redirected else None
        if chain.http is not None:
            proto = Http1Downstream(self.state, chain.http, peer, dst, od, True, self.listener_stats(lc))
        else:
            proto = TcpDownstream(self.state, chain.tcp, peer, od or dst, self.listener_stats(lc))
        proto.listener_name = lc.name
        return proto

    async def apply(self, listeners: dict[str, ListenerConfig]) -> None:
        """Bind new listeners, re-point kept ones, close removed ones (their connections drain).

        New sockets are bound before anything is closed, so a port already in use raises
        OSError with nothing changed (the update is NACKed); only a listener taking over an
        address another one just gave up is bound after that one closed.
        """
        loop = self.state.loop
        to_close = [n for n, (_, old) in self.servers.items()
                    if (new := listeners.get(n)) is None or not new.bind_to_port
                    or (new.host, new.port) != (old.host, old.port)]
        freed = {(self.servers[n][1].host, self.servers[n][1].port) for n in to_close}
        to_bind = [n for n, lc in listeners.items() if lc.bind_to_port and (n not in self.servers or n in to_close)]
        early: dict[str, socket.socket] = {}
        try:
            for n in to_bind:
                lc = listeners[n]
                if (lc.host, lc.port) not in freed:
                    early[n] = self._bind(lc)
        except OSError:
            for sock in early.values():
                sock.close()
            raise
        for n in to_close:
            self.servers.pop(n)[0].close()
        for name, lc in listeners.items():
            if name in self.servers:
                self.servers[name] = (self.servers[name][0], lc)
        for name in to_bind:
            lc = listeners[name]
            sock = early.get(name) or self._bind(lc)
            server = await loop.create_server(lambda n=name: AcceptProtocol(self, self.servers[n][1]), sock=sock,
                                              backlog=1024)
            self.servers[name] = (server, lc)

    def _bind(self, lc: ListenerConfig) -> socket.socket:
        family = socket.AF_INET6 if ":" in lc.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if self.state.reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            sock.bind((lc.host, lc.port))
        except OSError:
            sock.close()
            raise
        sock.setblocking(False)
        return sock

    def bound_port(self, name: str) -> int | None:
        entry = self.servers.get(name)
        if entry is None or not entry[0].sockets:
            return None
        return entry[0].sockets[0].getsockname()[1]

    def close(self) -> None:
        for server, _ in self.servers.values():
            server.close()
        self.servers.clear()
