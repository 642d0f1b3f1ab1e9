"""Suppressing messages, as istioctl does: `-S "IST0102=Namespace frod"` on the command line,
or the `galley.istio.io/analyze-suppress: IST0101,IST0118` annotation on a resource."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from ketch.analyze.messages import Message, ResourceRef

ANNOTATION = "galley.istio.io/analyze-suppress"


@dataclass(frozen=True)
class Suppression:
    """`code` and `resource` are shell-style patterns; resource is `Kind name.namespace`
    (istioctl's spelling) or `Kind namespace/name`."""

    code: str
    resource: str

    @classmethod
    def parse(cls, text: str) -> "Suppression":
        code, sep, resource = text.partition("=")
        if not sep or not code.strip() or not resource.strip():
            raise ValueError(f"suppression {text!r} is not of the form CODE=Kind name[.namespace]")
        return cls(code.strip(), " ".join(resource.split()))

    def matches(self, m: Message) -> bool:
        if not fnmatch.fnmatchcase(m.code, self.code):
            return False
        r = m.resource
        spellings = {str(r), f"{r.kind} {r.name}.{r.namespace}" if r.namespace else f"{r.kind} {r.name}"}
        return any(fnmatch.fnmatchcase(s, self.resource) for s in spellings)


def annotated_codes(annotations: Mapping[str, str] | None) -> frozenset[str]:
    value = (annotations or {}).get(ANNOTATION, "")
    return frozenset(c.strip() for c in value.split(",") if c.strip())


def apply(messages: Iterable[Message], suppressions: Sequence[Suppression],
          annotations: Mapping[ResourceRef, Mapping[str, str]]) -> list[Message]:
    """The messages no suppression and no resource annotation silences."""
    kept = []
    for m in messages:
        codes = annotated_codes(annotations.get(m.resource))
        if "*" in codes or m.code in codes:
            continue
        if any(s.matches(m) for s in suppressions):
            continue
        kept.append(m)
    return kept
