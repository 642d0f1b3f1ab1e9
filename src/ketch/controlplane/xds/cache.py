"""Generated resources, serialized once and shared between proxies.

The generator is called per (snapshot version, proxy scope key, type URL, names).
`scope_key()` is the translation's promise that it covers every proxy input it reads, so
proxies with equal keys share one generation. Below that, a resource *object* the generator
hands to several proxies (translation memoizes per snapshot) is serialized once: the encoding
is keyed by object identity, holding the object so its id cannot be reused. The cache holds
one snapshot version at a time: a new version drops the generated sets, but keeps the
encodings of the previous version's objects for the new one to pick up (translation hands
the very same message objects across versions when their inputs did not change, e.g. the
load assignments of services a registry change did not touch), so those are not encoded
again; an encoding not used by the new version is dropped with the version after.

An `Encoded` resource carries its bytes in three forms: the message (`body`), its digest (to
tell what changed), and the ready-made `resources` entry of a DiscoveryResponse (`entry`), so
a response to a proxy is a join of bytes rather than a protobuf build per proxy.
"""

from __future__ import annotations

import hashlib
import weakref
from dataclasses import dataclass
from typing import Any, Callable, Hashable, Iterator, Mapping

from google.protobuf.message import Message

# generate(snapshot, proxy, type_url, names): names are what a proxy asked for by name
# (proxyless gRPC names its listeners), None for a wildcard subscription.
Generate = Callable[[Any, Any, str, "tuple[str, ...] | None"], Mapping[str, Message]]


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        bits, n = n & 0x7F, n >> 7
        if n:
            out.append(bits | 0x80)
        else:
            out.append(bits)
            return bytes(out)


def length_delimited(field: int, data: bytes) -> bytes:
    """One protobuf length-delimited field (wire type 2); field numbers below 16."""
    return bytes(((field << 3) | 2,)) + varint(len(data)) + data


@dataclass(frozen=True, slots=True, eq=False)
class Encoded:
    """One resource as sent on the wire."""

    name: str
    type_url: str
    body: bytes
    digest: bytes
    entry: bytes  # DiscoveryResponse field 2: Any{type_url=1, value=2}

    @classmethod
    def of(cls, name: str, type_url: str, message: Message) -> Encoded:
        # Deterministic serialization, so equal resources have equal bytes and digests.
        body = message.SerializeToString(deterministic=True)
        any_bytes = length_delimited(1, type_url.encode()) + length_delimited(2, body)
        return cls(name, type_url, body, hashlib.blake2b(body, digest_size=16).digest(),
                   length_delimited(2, any_bytes))


def same(old: Encoded | None, new: Encoded) -> bool:
    # Shared encodings make identity the common case; digests decide otherwise.
    return old is new or (old is not None and old.digest == new.digest)


class ResourceSet(Mapping[str, Encoded]):
    """An immutable name -> Encoded mapping, shared by every proxy that gets exactly it.

    Sharing makes the per-proxy work of a push O(1) in the common case: the fingerprint
    (over names and digests), the name-sorted list and subsets by subscribed names are each
    computed once per set, not once per proxy."""

    __slots__ = ("_items", "_fingerprint", "_ordered", "_selections", "_wire", "_diffs",
                 "__weakref__")

    def __init__(self, items: Mapping[str, Encoded]) -> None:
        self._items = dict(items)
        self._fingerprint: bytes | None = None
        self._ordered: tuple[Encoded, ...] | None = None
        self._selections: dict[frozenset[str], ResourceSet] = {}
        self._wire: bytes | None = None
        # id(earlier set) -> (weak ref to it, changed resources, names it has and this lacks);
        # weak, so sets of old versions are not kept alive by the newer ones
        self._diffs: dict[int, tuple[Any, tuple[Encoded, ...], frozenset[str]]] = {}

    def __getitem__(self, name: str) -> Encoded:
        return self._items[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"<ResourceSet {len(self._items)} resources>"

    def fingerprint(self) -> bytes:
        if self._fingerprint is None:
            h = hashlib.blake2b(digest_size=16)
            for r in self.ordered():
                h.update(r.name.encode())
                h.update(b"\0")
                h.update(r.digest)
            self._fingerprint = h.digest()
        return self._fingerprint

    def ordered(self) -> tuple[Encoded, ...]:
        if self._ordered is None:
            self._ordered = tuple(self._items[n] for n in sorted(self._items))
        return self._ordered

    def wire(self) -> bytes:
        """The `resources` fields of a DiscoveryResponse carrying this whole set."""
        if self._wire is None:
            self._wire = b"".join(r.entry for r in self.ordered())
        return self._wire

    def changes_since(self, sent: ResourceSet) -> tuple[tuple[Encoded, ...], frozenset[str]]:
        """The resources of this set that `sent` lacks or holds with other bytes (name
        order), and the names `sent` has that this set lacks; once per pair of sets, so
        proxies that were sent the same set share the comparison."""
        found = self._diffs.get(id(sent))
        if found is None or found[0]() is not sent:
            items = sent._items
            changed = tuple(r for r in self.ordered() if not same(items.get(r.name), r))
            gone = frozenset(n for n in items if n not in self._items)
            found = self._diffs[id(sent)] = (weakref.ref(sent), changed, gone)
        return found[1], found[2]

    def select(self, names: frozenset[str]) -> ResourceSet:
        """The subset a proxy subscribed to by name."""
        found = self._selections.get(names)
        if found is None:
            items = self._items
            found = ResourceSet({n: items[n] for n in names if n in items})
            self._selections[names] = found
        return found


class GenerationCache:
    def __init__(self, generate: Generate) -> None:
        self._generate = generate
        self._version: object = None
        self._entries: dict[tuple[Hashable, str, object], ResourceSet] = {}
        self._by_object: dict[int, tuple[Message, Encoded]] = {}
        self._previous_objects: dict[int, tuple[Message, Encoded]] = {}
        # (names, ids of the generated messages) -> the set: proxies of different scope that
        # got the very same memoized messages share one ResourceSet.
        self._by_output: dict[tuple[tuple[str, ...], tuple[int, ...]], ResourceSet] = {}
        self.hits = 0
        self.misses = 0

    def __repr__(self) -> str:
        return (f"<GenerationCache version={self._version!r} entries={len(self._entries)} "
                f"hits={self.hits} misses={self.misses}>")

    def resources(self, snapshot: Any, version: object, proxy: Any, type_url: str,
                  names: tuple[str, ...] | None = None) -> ResourceSet:
        if version != self._version:
            self._version = version
            self._entries = {}
            self._previous_objects, self._by_object = self._by_object, {}
            self._by_output = {}
        key = (proxy.scope_key(), type_url, names)
        found = self._entries.get(key)
        if found is not None:
            self.hits += 1
            return found
        self.misses += 1
        generated = self._generate(snapshot, proxy, type_url, names)
        # The ids are of messages this cache holds (in _by_object) once encoded, so they
        # cannot be reused by other objects while the signature is kept.
        signature = (tuple(generated), tuple(map(id, generated.values())))
        shared = self._by_output.get(signature)
        if shared is None:
            shared = ResourceSet({n: self._encode(n, type_url, m) for n, m in generated.items()})
            if all(id(m) in self._by_object for m in generated.values()):
                self._by_output[signature] = shared
        self._entries[key] = shared
        return shared

    def _encode(self, name: str, type_url: str, message: Message) -> Encoded:
        known = self._by_object.get(id(message))
        if known is not None and known[0] is message and known[1].name == name:
            return known[1]
        known = self._previous_objects.get(id(message))
        if (known is not None and known[0] is message and known[1].name == name
                and known[1].type_url == type_url):
            self._by_object[id(message)] = known
            return known[1]
        encoded = Encoded.of(name, type_url, message)
        self._by_object[id(message)] = (message, encoded)
        return encoded
