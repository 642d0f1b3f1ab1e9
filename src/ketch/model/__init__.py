"""The Istio API model: typed, immutable config objects, their loader and validation.

See README.md beside this file and docs/contracts.md §1.
"""

from ketch.model.kinds import GATEWAY_API_GATEWAY, KINDS, KindInfo, kind_id
from ketch.model.loader import LoadResult, dump_yaml, expand_paths, load_documents, load_paths, load_text
from ketch.model.mesh import MeshConfig, MeshConfigError, load_mesh_config, validate_mesh_config
from ketch.model.meta import Issue, ObjectMeta, Origin, ResourceKey
from ketch.model.resource import Resource
from ketch.model.validation import validate, warnings

__all__ = [
    "GATEWAY_API_GATEWAY",
    "KINDS",
    "Issue",
    "KindInfo",
    "LoadResult",
    "MeshConfig",
    "MeshConfigError",
    "ObjectMeta",
    "Origin",
    "Resource",
    "ResourceKey",
    "dump_yaml",
    "expand_paths",
    "kind_id",
    "load_documents",
    "load_mesh_config",
    "load_paths",
    "load_text",
    "validate",
    "validate_mesh_config",
    "warnings",
]
