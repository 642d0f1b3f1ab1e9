"""Translation of Istio config into Envoy xDS resources (see README.md beside this file)."""

from __future__ import annotations

from typing import Any, Collection


def generate(snapshot: Any, proxy: Any, type_url: str,
             names: Collection[str] | None = None) -> dict[str, Any]:
    """Every resource of `type_url` the proxy should have, by name (contracts §6).

    `names` (optional) are the resource names the proxy asked for; proxyless gRPC names its
    listeners (`host:port`) and gets listeners under exactly those names.
    """
    from ketch.controlplane.translate.generator import generate as _generate

    return _generate(snapshot, proxy, type_url, names)


__all__ = ["generate"]
