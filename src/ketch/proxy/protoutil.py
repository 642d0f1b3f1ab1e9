"""Small helpers shared by the config compilers: field allowlists, durations, fractions.

The proxy NACKs any field it cannot honour. Each compiler names the fields it implements
(`check_fields`); a set field outside that list raises `Unsupported` with a reason that the
ADS client sends back verbatim in the NACK.
"""

from __future__ import annotations

from collections.abc import Iterable

from google.protobuf.message import Message


class Unsupported(ValueError):
    """A resource uses something this proxy cannot honour (the reason goes into the NACK)."""


def check_fields(msg: Message, allowed: Iterable[str], where: str) -> None:
    allowed_set = set(allowed)
    for field, _ in msg.ListFields():
        if field.name not in allowed_set:
            raise Unsupported(f"{where}: field '{field.name}' is not supported")


def dur(d: Message | None, default: float | None = None) -> float | None:
    """A google.protobuf.Duration as float seconds (None when unset)."""
    if d is None:
        return default
    return d.seconds + d.nanos / 1e9


def opt_dur(parent: Message, field: str, default: float | None = None) -> float | None:
    if not parent.HasField(field):
        return default
    return dur(getattr(parent, field))


_DENOM = {0: 100, 1: 10_000, 2: 1_000_000}


def fraction(fp: Message) -> float:
    """An envoy.type.v3.FractionalPercent as a probability in [0, 1]."""
    denom = _DENOM.get(fp.denominator, 100)
    return min(1.0, fp.numerator / denom)


def uint(parent: Message, field: str, default: int) -> int:
    """A google.protobuf.UInt32Value field, or its default when unset."""
    if parent.HasField(field):
        return int(getattr(parent, field).value)
    return default
