"""Writers for analysis results, in istioctl's text, JSON and YAML shapes."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

import yaml

from ketch.analyze.messages import Message


def as_dict(m: Message) -> dict[str, Any]:
    return {
        "code": m.code,
        "level": m.level.label,
        "resource": str(m.resource),
        "message": m.text,
        "origin": m.origin,
        "documentationUrl": m.type.url,
    }


def no_issues_line(namespaces: Iterable[str]) -> str:
    names = sorted(set(namespaces))
    target = f"namespace: {names[0]}" if len(names) == 1 else "all namespaces"
    return f"\u2714 No validation issues found when analyzing {target}."


def render_text(messages: Sequence[Message], namespaces: Iterable[str]) -> str:
    if not messages:
        return no_issues_line(namespaces) + "\n"
    return "".join(f"{m}\n" for m in messages)


def render_json(messages: Sequence[Message]) -> str:
    return json.dumps([as_dict(m) for m in messages], indent=2, ensure_ascii=False) + "\n"


def render_yaml(messages: Sequence[Message]) -> str:
    return yaml.safe_dump([as_dict(m) for m in messages], sort_keys=False, allow_unicode=True)
