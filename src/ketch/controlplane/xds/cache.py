"""Generated resources, serialized once and shared between proxies of equal scope.

The generator is called per (snapshot version, proxy scope key, type URL). `scope_key()` is
the translation's promise that it covers every proxy input it reads, so proxies with equal
keys share one generation, one serialization and one digest per resource. The cache holds
one snapshot version at a time: a new version drops everything.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Callable, Hashable, Mapping

from google.protobuf.message import Message

# generate(snapshot, proxy, type_url, names): names are what a proxy asked for by name
# (proxyless gRPC names its listeners), None for a wildcard subscription.
Generate = Callable[[Any, Any, str, "tuple[str, ...] | None"], Mapping[str, Message]]


@dataclass(frozen=True, slots=True)
class Encoded:
    """One resource as sent on the wire: its name, serialized bytes and their digest."""

    name: str
    type_url: str
    body: bytes
    digest: bytes

    @classmethod
    def of(cls, name: str, type_url: str, message: Message) -> Encoded:
        # Deterministic serialization, so equal resources have equal bytes and digests.
        body = message.SerializeToString(deterministic=True)
        return cls(name, type_url, body, hashlib.blake2b(body, digest_size=16).digest())


class GenerationCache:
    def __init__(self, generate: Generate) -> None:
        self._generate = generate
        self._version: object = None
        self._entries: dict[tuple[Hashable, str, object], Mapping[str, Encoded]] = {}
        self.hits = 0
        self.misses = 0

    def __repr__(self) -> str:
        return (f"<GenerationCache version={self._version!r} entries={len(self._entries)} "
                f"hits={self.hits} misses={self.misses}>")

    def resources(self, snapshot: Any, version: object, proxy: Any,
                  type_url: str, names: tuple[str, ...] | None = None) -> Mapping[str, Encoded]:
        if version != self._version:
            self._version = version
            self._entries = {}
        key = (proxy.scope_key(), type_url, names)
        found = self._entries.get(key)
        if found is not None:
            self.hits += 1
            return found
        self.misses += 1
        generated = self._generate(snapshot, proxy, type_url, names)
        encoded = {name: Encoded.of(name, type_url, msg) for name, msg in generated.items()}
        self._entries[key] = encoded
        return encoded
