"""Field-level line numbers for messages, as istioctl points at the offending field.

A loaded resource knows its file, document index and first line; the resolver re-reads the
source text (once per file), finds the resource's node and walks a field path
(`("spec", "http", 0, "route", 0, "destination", "host")`) to the line it starts on.
Reading is injected, so analysis stays testable without files.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

from ketch.model.yamlio import ParseError, line_of, parse_documents

Reader = Callable[[str], "str | None"]


def read_file(name: str) -> str | None:
    try:
        return Path(name).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


class LineResolver:
    def __init__(self, read: Reader = read_file, texts: dict[str, str] | None = None) -> None:
        self._read = read
        self._texts = dict(texts or {})  # e.g. {"-": stdin text}
        self._documents: dict[str, list[yaml.Node | None]] = {}

    def _nodes(self, file: str) -> list[yaml.Node | None]:
        if file not in self._documents:
            text = self._texts.get(file)
            if text is None:
                text = self._read(file)
            try:
                self._documents[file] = [node for _, node in parse_documents(text)] if text else []
            except ParseError:
                self._documents[file] = []
        return self._documents[file]

    def line(self, origin: Any, path: Sequence[str | int]) -> int | None:
        """The line of `path` inside the resource at `origin`, or None when it cannot be found."""
        if origin is None or not getattr(origin, "file", None):
            return None
        nodes = self._nodes(origin.file)
        index = getattr(origin, "document", 0)
        if not 0 <= index < len(nodes) or nodes[index] is None:
            return None
        node = _resource_node(nodes[index], origin.line)
        return line_of(node, list(path)) if node is not None else None


def _resource_node(node: yaml.Node, line: int) -> yaml.Node | None:
    """The document itself, or the `kind: List` item that starts on `line`."""
    if node.start_mark.line + 1 == line:
        return node
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if getattr(key, "value", None) == "items" and isinstance(value, yaml.SequenceNode):
                for item in value.value:
                    if item.start_mark.line + 1 == line:
                        return item
    return node
