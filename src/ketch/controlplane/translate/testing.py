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


def load_case(case_dir: Any, samples_dir: Any = None) -> tuple[Any, dict[str, ProxyNode]]:
    """A golden/simulation case directory: `input.yaml` (config), optional `case.yaml` with
    `samples` (paths under the Istio samples), `instances` and `proxies`."""
    from pathlib import Path

    from ketch.controlplane.instance import WorkloadInstance
    from ketch.controlplane.snapshot import Snapshot

    case_dir = Path(case_dir)
    meta = {}
    if (case_dir / "case.yaml").exists():
        meta = yaml.safe_load((case_dir / "case.yaml").read_text()) or {}
    texts = [Path(samples_dir, p).read_text() for p in meta.get("samples", ())]
    if (case_dir / "input.yaml").exists():
        texts.append((case_dir / "input.yaml").read_text())
    configs = load_configs("\n---\n".join(texts), file=str(case_dir / "input.yaml"))
    instances = [WorkloadInstance(
        name=i["name"], namespace=i.get("namespace", "default"), address=i["address"],
        labels=i.get("labels", {}), ports=i.get("ports", {}),
        service_account=i.get("serviceAccount", "default"), locality=i.get("locality", ""),
        weight=i.get("weight", 1), healthy=i.get("healthy", True),
    ) for i in meta.get("instances", ())]
    snapshot = Snapshot.build(configs, instances, meta.get("mesh"), "golden")
    proxies = {p["name"]: proxy(
        p.get("namespace", "default"), p.get("labels", {}), kind=p.get("type", "sidecar"),
        ip=p.get("ip", "10.0.0.1"), name=p["name"], interception=p.get("interception", "REDIRECT"),
        generator=p.get("generator", ""),
    ) for p in meta.get("proxies", ())}
    return snapshot, proxies


def spec_view(data: Mapping[str, Any]) -> Any:
    """A spec fragment in Istio's YAML shape (camelCase) as attributes, for converter tests."""
    return _convert(data)
