"""The base of every spec class: frozen, strict about unknown fields, camelCase on the wire.

Attribute names are the snake_case field names of Istio's protos (a trailing underscore
where the name is a Python keyword, e.g. `from_`); YAML/JSON keys are the proto JSON
names (lowerCamelCase). Both spellings are accepted on input, as Istio accepts both.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


def json_name(field: str) -> str:
    """The proto JSON name of a snake_case field: `consecutive_5xx_errors` -> `consecutive5xxErrors`."""
    parts = field.rstrip("_").split("_")
    return parts[0] + "".join(p[:1].upper() + p[1:] for p in parts[1:])


class Spec(BaseModel):
    """A frozen message of the Istio (or Kubernetes) API."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        populate_by_name=True,
        alias_generator=json_name,
        validate_default=False,
    )

    def to_dict(self) -> dict[str, Any]:
        """Plain data in the YAML shape: camelCase keys, unset fields omitted."""
        return self.model_dump(by_alias=True, exclude_defaults=True, mode="json")


class OpenSpec(Spec):
    """A message we model loosely: known fields typed, anything else kept as written."""

    model_config = ConfigDict(extra="allow")
