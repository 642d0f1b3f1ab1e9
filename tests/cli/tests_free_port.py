"""A URL on loopback where nothing listens (bound then closed, so no other test has it)."""

from __future__ import annotations

import socket


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"
