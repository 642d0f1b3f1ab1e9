"""YAML parsing that keeps the node tree, so an Issue can point at the line of a field.

Documents are parsed once into nodes (libyaml when available) and constructed from them;
the line of a field is looked up in the node tree only when there is something to report,
so valid documents pay nothing for line numbers.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import yaml

from ketch.model.base import json_name

_BaseLoader: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_BaseLoader):  # type: ignore[misc, valid-type]
    """SafeLoader without the timestamp resolver (timestamps stay strings, as in Kubernetes)
    that notes duplicate mapping keys instead of silently keeping the last one."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.duplicate_keys: list[tuple[int, str, int]] = []  # (line, key, first line)

    def construct_mapping(self, node: yaml.Node, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, yaml.MappingNode):
            seen: dict[str, int] = {}
            for key_node, _ in node.value:
                if isinstance(key_node, yaml.ScalarNode) and key_node.value != "<<":
                    line = key_node.start_mark.line + 1
                    if key_node.value in seen:
                        self.duplicate_keys.append((line, key_node.value, seen[key_node.value]))
                    else:
                        seen[key_node.value] = line
        return super().construct_mapping(node, deep=deep)


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in _BaseLoader.yaml_implicit_resolvers.items()
}


class ParseError(Exception):
    def __init__(self, line: int, reason: str) -> None:
        super().__init__(reason)
        self.line = line
        self.reason = reason


def parse_documents(text: str) -> Iterator[tuple[Any, yaml.Node | None]]:
    """Yield (data, node) per document; raise ParseError (with its line) on bad YAML."""
    for data, node, _ in parse_documents_checked(text):
        yield data, node


def parse_documents_checked(text: str) -> Iterator[tuple[Any, yaml.Node | None, list[tuple[int, str, int]]]]:
    """Like parse_documents, with each document's duplicate keys: (line, key, first line)."""
    loader = _Loader(text)
    try:
        while True:
            loader.duplicate_keys = []
            try:
                if not loader.check_node():
                    return
                node = loader.get_node()
                data = loader.construct_document(node) if node is not None else None
            except yaml.MarkedYAMLError as exc:
                mark = exc.problem_mark or exc.context_mark
                line = mark.line + 1 if mark is not None else 1
                raise ParseError(line, f"invalid YAML: {exc.problem or exc}") from exc
            except yaml.YAMLError as exc:
                raise ParseError(1, f"invalid YAML: {exc}") from exc
            yield data, node, loader.duplicate_keys
    finally:
        loader.dispose()


def path_at_line(node: yaml.Node | None, line: int) -> list[str | int]:
    """The field path of the mapping key written on `line` (for reporting duplicate keys)."""
    if node is None:
        return []
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                continue
            if key_node.start_mark.line + 1 == line:
                return [key_node.value]
            if value_node.start_mark.line + 1 <= line <= value_node.end_mark.line + 1:
                inner = path_at_line(value_node, line)
                if inner:
                    return [key_node.value, *inner]
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            if item.start_mark.line + 1 <= line <= item.end_mark.line + 1:
                inner = path_at_line(item, line)
                if inner:
                    return [i, *inner]
    return []


def _candidates(name: str) -> tuple[str, ...]:
    return (name, json_name(name), name.rstrip("_"))


def line_of(node: yaml.Node | None, path: Sequence[str | int]) -> int:
    """1-based line of the deepest node on `path` (keys compared in both spellings)."""
    if node is None:
        return 0
    line = node.start_mark.line + 1
    for part in path:
        if isinstance(node, yaml.MappingNode):
            names = _candidates(str(part))
            for key_node, value_node in node.value:
                if isinstance(key_node, yaml.ScalarNode) and key_node.value in names:
                    line = key_node.start_mark.line + 1
                    node = value_node
                    break
            else:
                return line
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line
