"""Resource: one typed, immutable config object (apiVersion, kind, metadata, spec)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from ketch.model.base import Spec
from ketch.model.kinds import KINDS, KindInfo, kind_id
from ketch.model.meta import ObjectMeta, Origin, ResourceKey


class Resource(BaseModel):
    """A config object. Equality (and hashing of the key) ignores `origin`."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    api_version: str
    kind: str
    metadata: ObjectMeta
    spec: Spec
    origin: Origin | None = None

    @property
    def kind_id(self) -> str:
        """The KINDS key: `kind`, except `Gateway.gateway.networking.k8s.io` for the Gateway API's."""
        return kind_id(self.api_version, self.kind) or self.kind

    @property
    def info(self) -> KindInfo:
        return KINDS[self.kind_id]

    @property
    def key(self) -> ResourceKey:
        return ResourceKey(self.kind_id, self.metadata.namespace or "", self.metadata.name)

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def namespace(self) -> str:
        return self.metadata.namespace or ""

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Resource):
            return NotImplemented
        return (
            self.api_version == other.api_version
            and self.kind == other.kind
            and self.metadata == other.metadata
            and self.spec == other.spec
        )

    def __hash__(self) -> int:
        return hash((self.kind_id, self.metadata.namespace, self.metadata.name))

    def __repr__(self) -> str:
        return f"Resource({self.kind} {self.key.namespace}/{self.key.name})"

    def with_meta(self, **changes: Any) -> Resource:
        """A copy with metadata fields replaced: `r.with_meta(resource_version="7")`."""
        return self.model_copy(update={"metadata": self.metadata.model_copy(update=changes)})

    def with_origin(self, origin: Origin | None) -> Resource:
        return self.model_copy(update={"origin": origin})

    def to_dict(self) -> dict[str, Any]:
        """Plain data in Istio's YAML shape (camelCase keys, unset fields omitted)."""
        out: dict[str, Any] = {"apiVersion": self.api_version, "kind": self.kind, "metadata": self.metadata.to_dict()}
        spec = self.spec.to_dict()
        field = KINDS[self.kind_id].spec_field if self.kind_id in KINDS else "spec"
        if field is None:
            out.update(spec)
        else:
            out[field] = spec
        return out
