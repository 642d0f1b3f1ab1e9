"""The live mesh as analysis input: config and registered workloads from the control plane's
REST API (docs/contracts.md §3), as `istioctl analyze` reads a live cluster."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ketch.analyze.context import Workload

Fetch = Callable[[str], Any]  # URL -> decoded JSON; raises LiveError


class LiveError(Exception):
    pass


@dataclass(frozen=True)
class LiveState:
    documents: tuple[dict[str, Any], ...]  # resource dicts, as GET /api/v1/config lists them
    workloads: tuple[Workload, ...]        # registered instances, standing in for pods


def http_fetch(timeout: float = 5.0) -> Fetch:
    def fetch(url: str) -> Any:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 (http only)
                return json.loads(resp.read().decode("utf-8"))
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise LiveError(f"cannot read {url}: {reason}") from exc
    return fetch


def _items(body: Any) -> list[Any]:
    if isinstance(body, dict):
        body = body.get("items", [])
    return [i for i in body if isinstance(i, dict)] if isinstance(body, list) else []


def fetch_live(base_url: str, fetch: Fetch | None = None) -> LiveState:
    fetch = fetch or http_fetch()
    base = base_url.rstrip("/")
    documents = _items(fetch(f"{base}/api/v1/config"))
    workloads = tuple(
        Workload(str(i.get("namespace") or "default"), str(i.get("name") or ""),
                 {str(k): str(v) for k, v in (i.get("labels") or {}).items()})
        for i in _items(fetch(f"{base}/api/v1/registry/instances"))
    )
    return LiveState(tuple(documents), workloads)
