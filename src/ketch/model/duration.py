"""Protobuf durations as Istio writes them (`"1.5s"`, `"100ms"`, `"1h"`).

Istio's YAML accepts the protobuf JSON form (`"1.5s"`) and, through the Kubernetes-style
parser, Go duration strings (`"1m30s"`, `"100ms"`). Both are accepted here.
"""

from __future__ import annotations

import re

_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_WHOLE = re.compile(r"(?:(?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|μs|ms|s|m|h))+")


class DurationError(ValueError):
    pass


def parse(text: str) -> float:
    """Seconds in `text`; raises DurationError for anything that is not a duration."""
    if not isinstance(text, str):
        raise DurationError(f"duration must be a string, got {type(text).__name__}")
    body = text[1:] if text.startswith("-") else text
    if body in ("0",):
        return 0.0
    if not body or not _WHOLE.fullmatch(body):
        raise DurationError(f"invalid duration {text!r}")
    total = sum(float(num) * _UNITS[unit] for num, unit in _PART.findall(body))
    return -total if text.startswith("-") else total


def seconds(text: str) -> float:
    """`seconds("1.5s") -> 1.5`, `seconds("100ms") -> 0.1`."""
    return parse(text)


def is_valid(text: str) -> bool:
    try:
        parse(text)
    except DurationError:
        return False
    return True
