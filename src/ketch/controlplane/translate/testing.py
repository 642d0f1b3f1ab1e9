"""Helpers for tests and tools: config from YAML text, a proxy node from a few fields.

`load_configs` uses `ketch.model` (validated, typed specs). Before that model existed a
plain attribute view was used; it remains as `attribute_view` for inputs the model does not
load (e.g. partial specs in table tests).
"""

from __future__ import annotations

import re
from typing import Any, Iterable, Mapping

import yaml

from ketch.controlplane.node import ProxyNode

_MAP_FIELDS = {
    "labels", "selector", "headers", "without_headers", "query_params", "set", "add",
    "source_labels", "annotations", "match_labels",
}


def _snake(name: str) -> str:
    name = re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name)
    return name.lower()


class Obj:
    """Read-only attributes over a dict; unset fields read as None (as in the model)."""

    def __init__(self, data: Mapping[str, Any]):
        self.__dict__["_data"] = dict(data)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return self._data.get(name)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("read-only")

    def __repr__(self) -> str:
        return f"Obj({self._data!r})"


def _convert(value: Any, key: str = "") -> Any:
    if isinstance(value, Mapping):
        if key in _MAP_FIELDS or (key == "ports" and all(
                isinstance(v, int) for v in value.values())):
            return {str(k): _convert(v) for k, v in value.items()}
        return Obj({_snake(str(k)): _convert(v, _snake(str(k))) for k, v in value.items()})
    if isinstance(value, list):
        return tuple(_convert(v, key) for v in value)
    return value


def attribute_view(doc: Mapping[str, Any]) -> Obj:
    """A YAML document as a Resource-like object: `.kind`, `.metadata`, `.spec`."""
    meta = dict(doc.get("metadata") or {})
    meta.setdefault("namespace", "default")
    meta.setdefault("labels", {})
    meta.setdefault("annotations", {})
    return Obj({
        "kind": doc.get("kind"),
        "api_version": doc.get("apiVersion"),
        "metadata": Obj({_snake(k): _convert(v, _snake(k)) for k, v in meta.items()}),
        "spec": _convert(doc.get("spec") or {}),
    })


def load_configs(text: str, file: str = "-") -> list[Any]:
    """Resources from YAML text through the model; falls back to attribute views if the
    model package is unavailable. Raises ValueError on validation errors."""
    try:
        from ketch.model import load_text  # type: ignore[attr-defined]
    except ImportError:
        return [attribute_view(d) for d in yaml.safe_load_all(text) if d]
    result = load_text(text, file=file)
    if result.errors:
        raise ValueError("\n".join(str(e) for e in result.errors))
    return list(result.resources)


def proxy(namespace: str = "default", labels: Mapping[str, str] | None = None, *,
          kind: str = "sidecar", ip: str = "10.0.0.1", name: str = "client",
          interception: str = "REDIRECT", generator: str = "") -> ProxyNode:
    meta: dict[str, Any] = {"NAMESPACE": namespace, "LABELS": dict(labels or {}),
                            "INTERCEPTION_MODE": interception, "WORKLOAD_NAME": name}
    if generator:
        meta["GENERATOR"] = generator
    return ProxyNode.from_id(f"{kind}~{ip}~{name}.{namespace}~{namespace}.svc.cluster.local",
                             meta)


def docs(paths: Iterable[str]) -> str:
    return "\n---\n".join(open(p).read() for p in paths)
