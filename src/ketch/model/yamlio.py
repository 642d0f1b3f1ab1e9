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
    """SafeLoader without the timestamp resolver: timestamps stay strings, as in Kubernetes."""


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
    loader = _Loader(text)
    try:
        while True:
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
            yield data, node
    finally:
        loader.dispose()


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
