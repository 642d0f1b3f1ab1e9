"""Helpers for analyzer tests: load YAML text, run the analysis, compare (code, resource) pairs."""

from __future__ import annotations

import textwrap
from typing import Any

from ketch.analyze import Message, analyze
from ketch.analyze.lines import LineResolver
from ketch.model import MeshConfig, load_text


def messages(yaml_text: str, mesh: Any = None, codes: set[str] | None = None,
             allow_invalid: bool = False) -> list[Message]:
    text = textwrap.dedent(yaml_text)
    result = load_text(text, file="test.yaml")
    # A planted mistake must reach the analyzers, not be rejected by the loader.
    assert allow_invalid or not result.errors, [str(e) for e in result.errors]
    lines = LineResolver(read=lambda name: None, texts={"test.yaml": text})
    found = analyze(result.resources, mesh=mesh or MeshConfig(), load_errors=result.errors, lines=lines)
    return [m for m in found if codes is None or m.code in codes]


def pairs(yaml_text: str, mesh: Any = None, codes: set[str] | None = None) -> list[tuple[str, str]]:
    """Sorted (code, `Kind ns/name`) of every message (or of those with the given codes)."""
    return sorted((m.code, str(m.resource)) for m in messages(yaml_text, mesh, codes))


def texts(yaml_text: str, code: str, mesh: Any = None) -> list[str]:
    return sorted(m.text for m in messages(yaml_text, mesh, {code}))


SERVICE_REVIEWS = """
apiVersion: v1
kind: Service
metadata: {name: reviews, labels: {app: reviews}}
spec:
  selector: {app: reviews}
  ports: [{name: http, port: 9080}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: reviews-v1}
spec:
  selector: {matchLabels: {app: reviews, version: v1}}
  template:
    metadata: {labels: {app: reviews, version: v1}}
    spec: {containers: [{name: reviews, image: x}]}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  subsets:
  - {name: v1, labels: {version: v1}}
"""
