"""The control plane's REST API (docs/contracts.md §3), an aiohttp application.

`make_app(store, registry, proxies, mesh)` wires handlers to what they serve from; the
control-plane process mounts it on 15014. Handlers are thin: parse, call the store or the
registry, shape JSON. Store writes run on the loop thread so store subscribers (the xDS
server's watch) are called on the loop, in order.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Protocol

from aiohttp import web

from ketch.controlplane import rest_views as views
from ketch.controlplane.registry import Registry
from ketch.store import ApplyError, ConfigStore, VersionConflict
from ketch.store.kinds import resolve_kind

log = logging.getLogger(__name__)

STORE = web.AppKey("store", object)
REGISTRY = web.AppKey("registry", Registry)
PROXIES = web.AppKey("proxies", object)
MESH = web.AppKey("mesh", object)


class ProxiesProvider(Protocol):
    """What the xDS server offers the API (contracts §6)."""

    def proxies(self) -> list[dict[str, Any]]: ...

    def config_dump(self, proxy_id: str) -> dict[str, Any] | None: ...

    def metrics_text(self) -> str: ...


def make_app(
    store: ConfigStore, registry: Registry, proxies: ProxiesProvider | None, mesh: Any = None
) -> web.Application:
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app[STORE] = store
    app[REGISTRY] = registry
    app[PROXIES] = proxies
    app[MESH] = mesh
    app.add_routes(
        [
            web.get("/healthz", healthz),
            web.post("/api/v1/config", apply_config),
            web.get("/api/v1/config", list_config),
            web.get("/api/v1/config/{kind}/{namespace}/{name}", get_config),
            web.delete("/api/v1/config/{kind}/{namespace}/{name}", delete_config),
            web.post("/api/v1/registry/instances", register_instance),
            web.get("/api/v1/registry/instances", list_instances),
            web.put("/api/v1/registry/instances/{namespace}/{name}/heartbeat", heartbeat),
            web.delete("/api/v1/registry/instances/{namespace}/{name}", unregister),
            web.get("/api/v1/registry/services", list_services),
            web.get("/api/v1/proxies", list_proxies),
            web.get("/api/v1/proxies/{id}/config", proxy_config),
            web.get("/metrics", metrics),
        ]
    )
    return app


# -- helpers -------------------------------------------------------------------------------


def error(status: int, reason: str, **fields: Any) -> web.Response:
    entry = {
        "file": "", "line": 0, "kind": "", "namespace": "", "name": "", "path": "",
        "reason": reason, "message": reason,
    }
    entry.update(fields)
    return web.json_response({"errors": [entry]}, status=status)


def issues_response(status: int, issues: Any) -> web.Response:
    return web.json_response({"errors": [views.issue_json(i) for i in issues]}, status=status)


def _kind_or_error(name: str) -> str | web.Response:
    kind = resolve_kind(name)
    if kind is None:
        return error(404, f'the server doesn\'t have a resource type "{name}"')
    return kind


# -- config --------------------------------------------------------------------------------


async def healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok")


async def apply_config(request: web.Request) -> web.Response:
    from ketch.model import load_documents, load_text

    store: ConfigStore = request.app[STORE]
    dry_run = request.query.get("dryRun", "").lower() in ("true", "1", "all")
    file = request.query.get("file", "request")
    text = await request.text()
    documents = _json_documents(text, request.content_type)
    if isinstance(documents, web.Response):
        return documents
    result = load_documents(documents, file) if documents is not None else load_text(text, file)
    if result.errors:
        return issues_response(400, result.errors)
    resources = list(result.resources)
    if not resources:
        return error(400, "no objects passed to apply")
    expected = {
        r.key: str(r.metadata.resource_version)
        for r in resources
        if r.metadata.resource_version not in (None, "")
    }
    try:
        changes = store.apply(resources, expected_versions=expected, dry_run=dry_run)
    except VersionConflict as exc:
        return issues_response(409, exc.issues)
    except ApplyError as exc:
        return issues_response(400, exc.issues)
    warnings = [str(i) for i in result.warnings]
    warnings += views.not_enforced_warnings(resources, already=warnings)
    return web.json_response(
        {"changes": views.change_rows(resources, changes, store), "warnings": warnings,
         "dryRun": dry_run}
    )


def _json_documents(text: str, content_type: str) -> list[Any] | None | web.Response:
    """Documents of a JSON body (`{"items": [...]}`, a list, or one object); None for YAML."""
    stripped = text.lstrip()
    if content_type != "application/json" and not stripped.startswith(("{", "[")):
        return None
    try:
        body = json.loads(text)
    except ValueError as exc:
        if content_type == "application/json":
            return error(400, f"invalid JSON: {exc}")
        return None  # YAML flow style; let the YAML loader handle it
    if isinstance(body, dict) and isinstance(body.get("items"), list):
        return body["items"]
    if isinstance(body, list):
        return body
    if isinstance(body, dict):
        return [body]
    return error(400, "expected a JSON object, a list or {\"items\": [...]}")


async def list_config(request: web.Request) -> web.Response:
    store: ConfigStore = request.app[STORE]
    kind = None
    if "kind" in request.query:
        kind = _kind_or_error(request.query["kind"])
        if isinstance(kind, web.Response):
            return kind
    namespace = request.query.get("namespace") or None
    items = [r.to_dict() for r in store.list(kind, namespace)]
    return web.json_response({"items": items, "revision": store.revision})


async def get_config(request: web.Request) -> web.Response:
    store: ConfigStore = request.app[STORE]
    kind = _kind_or_error(request.match_info["kind"])
    if isinstance(kind, web.Response):
        return kind
    namespace = views.key_namespace(kind, request.match_info["namespace"])
    name = request.match_info["name"]
    resource = store.get(kind, namespace, name)
    if resource is None:
        return error(404, f'{kind} "{name}" not found', kind=kind, namespace=namespace, name=name)
    return web.json_response(resource.to_dict())


async def delete_config(request: web.Request) -> web.Response:
    store: ConfigStore = request.app[STORE]
    kind = _kind_or_error(request.match_info["kind"])
    if isinstance(kind, web.Response):
        return kind
    namespace = views.key_namespace(kind, request.match_info["namespace"])
    name = request.match_info["name"]
    try:
        change = store.delete(
            kind, namespace, name, expected_version=request.query.get("resourceVersion")
        )
    except VersionConflict as exc:
        return issues_response(409, exc.issues)
    if change is None:
        return error(404, f'{kind} "{name}" not found', kind=kind, namespace=namespace, name=name)
    return web.json_response(views.change_row(change.resource, "DELETED"))


# -- registry ------------------------------------------------------------------------------


async def register_instance(request: web.Request) -> web.Response:
    registry: Registry = request.app[REGISTRY]
    try:
        body = await request.json()
    except ValueError as exc:
        return error(400, f"invalid JSON: {exc}")
    instance = views.instance_from_json(body)
    if isinstance(instance, str):
        return error(400, instance)
    registry.register(instance)
    return web.json_response(
        {"name": instance.name, "namespace": instance.namespace, "ttlSeconds": registry.ttl}
    )


async def heartbeat(request: web.Request) -> web.Response:
    registry: Registry = request.app[REGISTRY]
    namespace, name = request.match_info["namespace"], request.match_info["name"]
    healthy = True
    if request.can_read_body:
        try:
            body = await request.json()
        except ValueError as exc:
            return error(400, f"invalid JSON: {exc}")
        if isinstance(body, dict) and "healthy" in body:
            if not isinstance(body["healthy"], bool):
                return error(400, "healthy must be true or false", path="healthy")
            healthy = body["healthy"]
    if not registry.heartbeat(namespace, name, healthy=healthy):
        return error(404, f"instance {namespace}/{name} is not registered; register it again",
                     namespace=namespace, name=name)
    return web.json_response({"name": name, "namespace": namespace, "ttlSeconds": registry.ttl})


async def unregister(request: web.Request) -> web.Response:
    registry: Registry = request.app[REGISTRY]
    namespace, name = request.match_info["namespace"], request.match_info["name"]
    if not registry.unregister(namespace, name):
        return error(404, f"instance {namespace}/{name} is not registered",
                     namespace=namespace, name=name)
    return web.json_response({"name": name, "namespace": namespace})


async def list_instances(request: web.Request) -> web.Response:
    registry: Registry = request.app[REGISTRY]
    return web.json_response(
        {"items": [views.instance_json(i) for i in registry.instances()],
         "revision": registry.revision}
    )


async def list_services(request: web.Request) -> web.Response:
    store: ConfigStore = request.app[STORE]
    registry: Registry = request.app[REGISTRY]
    items = views.services(store, registry.instances(), request.app[MESH])
    return web.json_response({"items": items})


# -- proxies and metrics -------------------------------------------------------------------


async def list_proxies(request: web.Request) -> web.Response:
    provider = request.app[PROXIES]
    return web.json_response({"items": list(provider.proxies()) if provider else []})


async def proxy_config(request: web.Request) -> web.Response:
    provider = request.app[PROXIES]
    wanted = request.match_info["id"]
    if provider is None:
        return error(404, "no xDS server is attached to this control plane")
    dump = provider.config_dump(wanted)
    if dump is None:
        match = views.resolve_proxy(wanted, [p.get("id", "") for p in provider.proxies()])
        if isinstance(match, str) and match != wanted:
            dump = provider.config_dump(match)
        elif isinstance(match, list) and match:
            return error(400, f'"{wanted}" matches several proxies: {", ".join(match)}')
    if dump is None:
        return error(404, f'proxy "{wanted}" is not connected')
    return web.json_response(dump)


async def metrics(request: web.Request) -> web.Response:
    provider = request.app[PROXIES]
    parts = [views.own_metrics(request.app[STORE], request.app[REGISTRY])]
    if provider is not None:
        parts.append(provider.metrics_text())
    text = "".join(p if p.endswith("\n") or not p else p + "\n" for p in parts)
    # Prometheus' text exposition format, version 0.0.4.
    return web.Response(body=text.encode(), headers={
        "Content-Type": "text/plain; version=0.0.4; charset=utf-8",
        "X-Content-Type-Options": "nosniff"})
