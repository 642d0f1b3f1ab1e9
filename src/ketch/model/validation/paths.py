"""Field paths as Issues print them: `spec.http[0].route[1].weight`."""

from __future__ import annotations

import re

_TOKEN = re.compile(r"([^.\[\]]+)|\[(\d+)\]|\[([^\]]*)\]")


def parse_path(path: str) -> list[str | int]:
    out: list[str | int] = []
    for name, index, key in _TOKEN.findall(path):
        if name:
            out.append(name)
        elif index:
            out.append(int(index))
        else:
            out.append(key)
    return out


class Path:
    """An immutable path builder: `p / "http" / 0 / "route"`."""

    __slots__ = ("text",)

    def __init__(self, text: str = "") -> None:
        self.text = text

    def __truediv__(self, part: str | int) -> Path:
        if isinstance(part, int):
            return Path(f"{self.text}[{part}]")
        return Path(f"{self.text}.{part}" if self.text else part)

    def key(self, key: str | int) -> Path:
        """A map entry: `spec.portLevelMtls[8080]`."""
        return Path(f"{self.text}[{key}]")

    def __str__(self) -> str:
        return self.text
