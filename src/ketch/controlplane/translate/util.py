"""Small helpers shared by the converters: reading specs, names, durations, packing."""

from __future__ import annotations

import re
from enum import Enum
from types import MappingProxyType
from typing import Any, Iterable, Mapping

from google.protobuf import any_pb2, duration_pb2, wrappers_pb2
from google.protobuf.message import Message

DOMAIN_SUFFIX = "cluster.local"

_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ms|us|µs|ns|h|m|s)")
_UNIT = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}


def seconds(text: str | float | int | None) -> float | None:
    """Go-style duration ("1.5s", "100ms", "1m30s") to seconds, as Istio writes them."""
    if text is None:
        return None
    if isinstance(text, (int, float)):
        return float(text)
    s = str(text).strip()
    if not s:
        return None
    pos, total = 0, 0.0
    for m in _DURATION.finditer(s):
        if m.start() != pos:
            raise ValueError(f"bad duration {text!r}")
        total += float(m.group(1)) * _UNIT[m.group(2)]
        pos = m.end()
    if pos != len(s):
        raise ValueError(f"bad duration {text!r}")
    return total


def duration(text: str | float | None) -> duration_pb2.Duration | None:
    secs = seconds(text)
    if secs is None:
        return None
    d = duration_pb2.Duration()
    whole = int(secs)
    d.seconds = whole
    d.nanos = int(round((secs - whole) * 1e9))
    return d


def u32(value: int | None) -> wrappers_pb2.UInt32Value | None:
    return None if value is None else wrappers_pb2.UInt32Value(value=int(value))


def pack(message: Message) -> any_pb2.Any:
    out = any_pb2.Any()
    out.Pack(message)
    return out


def enum_name(value: Any) -> str | None:
    """Model enums may be Python Enums or plain strings; the translators compare names."""
    if value is None:
        return None
    if isinstance(value, Enum):
        value = value.value if isinstance(value.value, str) else value.name
    return str(value)


_MAPPINGS = (dict, MappingProxyType)  # concrete types: an ABC isinstance check is slow here


def attr(obj: Any, *path: str) -> Any:
    """`attr(dr, "spec", "traffic_policy")`: None as soon as a step is missing."""
    for name in path:
        if obj is None:
            return None
        if isinstance(obj, _MAPPINGS):
            obj = obj.get(name)
        else:
            obj = getattr(obj, name, None)
    return obj


def seq(value: Iterable[Any] | None) -> tuple[Any, ...]:
    return tuple(value) if value else ()


def fqdn(host: str, namespace: str) -> str:
    """Istio resolves a short name (no dot) against the config's namespace."""
    if host == "*" or "." in host:
        return host
    return f"{host}.{namespace}.svc.{DOMAIN_SUFFIX}"


def host_matches(pattern: str, host: str) -> bool:
    """Istio host matching: exact, or `*.suffix` wildcard, or `*`."""
    if pattern == "*" or pattern == host:
        return True
    if pattern.startswith("*"):
        return host.endswith(pattern[1:])
    return False


def hosts_intersect(a: str, b: str) -> bool:
    return host_matches(a, b) or host_matches(b, a)


def labels_match(selector: Mapping[str, str] | None, labels: Mapping[str, str]) -> bool:
    if not selector:
        return True
    return all(labels.get(k) == v for k, v in selector.items())


def cluster_name(direction: str, port: int, subset: str | None, host: str) -> str:
    return f"{direction}|{port}|{subset or ''}|{host}"


def visible(export_to: frozenset[str], owner_namespace: str, namespace: str) -> bool:
    """exportTo: `*` everyone, `.` own namespace, `~` nobody, else named namespaces."""
    if not export_to or "*" in export_to:
        return True
    if "~" in export_to:
        return False
    if "." in export_to and namespace == owner_namespace:
        return True
    return namespace in export_to


def export_set(values: Iterable[str] | None, default: frozenset[str]) -> frozenset[str]:
    values = tuple(v.strip() for v in (values or ()) if v and v.strip())
    return frozenset(values) if values else default


def snake_keys(value: Any) -> Any:
    """A raw camelCase dict (e.g. MeshConfig's defaultHttpRetryPolicy) with snake_case keys,
    so `attr` reads it like a model spec."""
    if isinstance(value, dict):
        return {re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", str(k)).lower(): snake_keys(v)
                for k, v in value.items()}
    if isinstance(value, list):
        return [snake_keys(v) for v in value]
    return value
