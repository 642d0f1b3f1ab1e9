"""The CLI against the control plane's REST API, in the manner of kubectl and istioctl:
`ketch apply|get|delete` and `ketch proxy-status|proxy-config`.

The address comes from `--control-plane URL`, else `$KETCH_CONTROL_PLANE`, else
http://127.0.0.1:15014. `apply` validates locally first (so errors name file and line), then
sends the documents as one atomic batch; the server validates again and answers with what it
created, configured or left unchanged.
"""

from __future__ import annotations

import json
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Callable, Sequence

import click

from ketch.cli import client_tables as tables

DEFAULT_URL = "http://127.0.0.1:15014"
VERBS = {"ADDED": "created", "MODIFIED": "configured", "UNCHANGED": "unchanged",
         "DELETED": "deleted"}


class ControlPlane:
    """A tiny JSON client for the REST API; a control plane that cannot be reached is one
    clear ClickException, never a traceback."""

    def __init__(self, url: str, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        if "://" not in self.url:
            self.url = "http://" + self.url
        self.timeout = timeout

    def call(self, method: str, path: str, *, params: dict[str, str] | None = None,
             body: Any = None) -> tuple[int, Any]:
        url = self.url + path
        if params:
            url += "?" + urllib.parse.urlencode(params)
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(url, data=data, method=method)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as resp:
                return resp.status, _decode(resp.read())
        except urllib.error.HTTPError as err:
            return err.code, _decode(err.read())
        except (urllib.error.URLError, OSError) as err:
            reason = getattr(err, "reason", err)
            raise click.ClickException(
                f"cannot reach the Ketch control plane at {self.url} ({reason}); is "
                "`ketch control-plane` running? (set --control-plane or KETCH_CONTROL_PLANE)"
            ) from None


def _decode(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return raw.decode(errors="replace")


def _server_error(status: int, body: Any) -> click.ClickException:
    errors = body.get("errors") if isinstance(body, dict) else None
    if errors:
        return click.ClickException("\n".join(e.get("message") or e.get("reason", "") for e in errors))
    return click.ClickException(f"the control plane answered {status}: {body}")


control_plane_option = click.option(
    "--control-plane", "control_plane", envvar="KETCH_CONTROL_PLANE", default=DEFAULT_URL,
    show_default=True, metavar="URL", help="The control plane's HTTP API.")
filename_option = click.option(
    "-f", "--filename", "paths", multiple=True,
    help="File, directory (*.yaml, *.yml, *.json) or - for stdin. Repeatable.")


# -- apply ----------------------------------------------------------------------------------


@click.command("apply")
@filename_option
@click.option("--dry-run", is_flag=True, help="Validate and report, store nothing.")
@control_plane_option
def apply(paths: tuple[str, ...], dry_run: bool, control_plane: str) -> None:
    """Apply Istio and Kubernetes config to the control plane, atomically."""
    from ketch.model import load_paths

    if not paths:
        raise click.UsageError("give the config with -f PATH (file, directory or -)")
    result = load_paths(paths, stdin=sys.stdin)
    for issue in result.warnings:
        click.echo(f"Warning: {issue}", err=True)
    if result.errors:
        for issue in result.errors:
            click.echo(str(issue))
        click.echo(f"Error: {len(result.errors)} error(s); nothing was applied", err=True)
        sys.exit(1)
    if not result.resources:
        raise click.ClickException("no objects passed to apply")
    status, body = ControlPlane(control_plane).call(
        "POST", "/api/v1/config", params={"dryRun": "true"} if dry_run else None,
        body={"items": [r.to_dict() for r in result.resources]})
    if status != 200:
        for line in _located_errors(body, result.resources):
            click.echo(line)
        click.echo("Error: the control plane rejected the config; nothing was applied", err=True)
        sys.exit(1)
    for warning in body.get("warnings", []):
        if not warning.startswith("request:"):  # the loader's own, already shown with lines
            click.echo(f"Warning: {warning}", err=True)
    suffix = " (dry run)" if dry_run else ""
    for change in body.get("changes", []):
        click.echo(f"{change['displayName']}/{change['name']} {VERBS[change['type']]}{suffix}")


def _located_errors(body: Any, resources: Sequence[Any]) -> list[str]:
    """Server errors as `FILE:LINE: ...`, with the file and line of our own documents."""
    errors = body.get("errors") if isinstance(body, dict) else None
    if not errors:
        return [f"Error: unexpected answer from the control plane: {body}"]
    origins = {(r.key.kind, r.key.namespace, r.key.name): r.origin for r in resources}
    lines = []
    for e in errors:
        origin = origins.get((e.get("kind"), e.get("namespace"), e.get("name")))
        if origin is None or e.get("line"):
            lines.append(e.get("message") or e.get("reason", ""))
            continue
        ident = f"{e['namespace']}/{e['name']}" if e.get("namespace") else e.get("name", "")
        parts = [f"{origin.file}:{origin.line}", f"{e['kind']} {ident}", e.get("path"), e["reason"]]
        lines.append(": ".join(p for p in parts if p))
    return lines


# -- get ------------------------------------------------------------------------------------

Fetch = Callable[[ControlPlane, str, "str | None", "str | None"], list[dict[str, Any]]]


def _fetch_config(cp: ControlPlane, kind: str, name: str | None,
                  namespace: str | None) -> list[dict[str, Any]]:
    """Objects from the config store; NotFound for a named object that is not there."""
    if name is not None:
        path = "/api/v1/config/" + "/".join(
            urllib.parse.quote(p, safe="") for p in (kind, namespace or "-", name))
        status, body = cp.call("GET", path)
        if status == 404:
            click.echo(f'Error from server (NotFound): {_plural(kind)} "{name}" not found',
                       err=True)
            sys.exit(1)
        if status != 200:
            raise _server_error(status, body)
        return [body]
    params = {"kind": kind}
    if namespace is not None:
        params["namespace"] = namespace
    status, body = cp.call("GET", "/api/v1/config", params=params)
    if status != 200:
        raise _server_error(status, body)
    return body.get("items", [])


# Kinds served by something other than the config store register a fetcher here (the local
# runtime will serve live `pods` and `services` this way); everything else is config.
def _runtime_pods(cp: ControlPlane, kind: str, name: str | None, ns: str | None) -> list[dict[str, Any]]:
    from ketch.runtime.state import pod_items

    items = pod_items(None, name, ns)
    if name and not items:
        click.echo(f'Error from server (NotFound): pods "{name}" not found', err=True)
        sys.exit(1)
    return items


def _runtime_or_config_services(cp: ControlPlane, kind: str, name: str | None,
                                 ns: str | None) -> list[dict[str, Any]]:
    # The runtime knows the VIP each Service got; without a running mesh, the stored objects.
    from ketch.runtime.state import service_items

    return service_items(None, name, ns) or _fetch_config(cp, kind, name, ns)


KIND_SOURCES: dict[str, Fetch] = {"Pod": _runtime_pods, "Service": _runtime_or_config_services}


def _plural(kind: str) -> str:
    from ketch.store.kinds import plural_name

    return plural_name(kind)


def _resolve(kind: str) -> str:
    from ketch.store.kinds import resolve_kind

    resolved = resolve_kind(kind)
    if resolved is None:
        raise click.ClickException(f'the server doesn\'t have a resource type "{kind}"')
    return resolved


def _namespaced(kind: str) -> bool:
    from ketch.model.kinds import KINDS

    return KINDS[kind].namespaced


@click.command("get")
@click.argument("kind")
@click.argument("name", required=False)
@click.option("-n", "--namespace", default=None, help="Namespace (default: default).")
@click.option("-A", "--all-namespaces", is_flag=True, help="List across all namespaces.")
@click.option("-o", "--output", type=click.Choice(["yaml", "json", "wide", "name"]),
              default=None, help="Output format (default: a table).")
@control_plane_option
def get(kind: str, name: str | None, namespace: str | None, all_namespaces: bool,
        output: str | None, control_plane: str) -> None:
    """Show config objects: `ketch get vs`, `ketch get dr reviews -o yaml`, `ketch get se -A`."""
    kind = _resolve(kind)
    if name and all_namespaces:
        raise click.UsageError("a resource cannot be retrieved by name across all namespaces")
    ns = None if all_namespaces or not _namespaced(kind) else (namespace or "default")
    fetch = KIND_SOURCES.get(kind, _fetch_config)
    items = fetch(ControlPlane(control_plane), kind, name, ns)
    if output in ("yaml", "json"):
        doc: Any = items[0] if name else {"apiVersion": "v1", "kind": "List", "items": items}
        if output == "json":
            click.echo(json.dumps(doc, indent=2))
        else:
            import yaml

            click.echo(yaml.safe_dump(doc, sort_keys=False).rstrip())
        return
    if not items:
        where = "" if ns is None else f" in {ns} namespace"
        click.echo(f"No resources found{where}.", err=True)
        return
    if output == "name":
        from ketch.store.kinds import display_name

        for item in items:
            click.echo(f"{display_name(kind)}/{item['metadata']['name']}")
        return
    click.echo(tables.get_table(kind, items, now=time.time(), all_namespaces=all_namespaces,
                                wide=output == "wide"))


# -- delete ---------------------------------------------------------------------------------


@click.command("delete")
@click.argument("args", nargs=-1)
@filename_option
@click.option("-n", "--namespace", default=None, help="Namespace (default: default).")
@click.option("--ignore-not-found", is_flag=True, help="Treat absent objects as deleted.")
@control_plane_option
def delete(args: tuple[str, ...], paths: tuple[str, ...], namespace: str | None,
           ignore_not_found: bool, control_plane: str) -> None:
    """Delete config: `ketch delete vs reviews [-n NS]` or `ketch delete -f PATH`."""
    targets: list[tuple[str, str, str]] = []
    if paths:
        if args:
            raise click.UsageError("give either KIND NAME... or -f PATH, not both")
        from ketch.model import load_paths

        result = load_paths(paths, stdin=sys.stdin, validate=False)
        for issue in result.errors:
            click.echo(f"Warning: skipped: {issue}", err=True)
        targets = [(r.key.kind, r.key.namespace, r.key.name) for r in result.resources]
    elif len(args) >= 2:
        kind = _resolve(args[0])
        ns = (namespace or "default") if _namespaced(kind) else "-"
        targets = [(kind, ns, name) for name in args[1:]]
    else:
        raise click.UsageError("give KIND NAME... or -f PATH")
    cp = ControlPlane(control_plane)
    failed = False
    from ketch.store.kinds import display_name

    for kind, ns, name in targets:
        path = "/api/v1/config/" + "/".join(
            urllib.parse.quote(p, safe="") for p in (kind, ns or "-", name))
        status, body = cp.call("DELETE", path)
        if status == 200:
            click.echo(f'{display_name(kind)} "{name}" deleted')
        elif status == 404 and ignore_not_found:
            continue
        elif status == 404:
            click.echo(f'Error from server (NotFound): {_plural(kind)} "{name}" not found',
                       err=True)
            failed = True
        else:
            click.echo(f"Error: {_server_error(status, body).message}", err=True)
            failed = True
    if failed:
        sys.exit(1)


# -- proxy-status and proxy-config ----------------------------------------------------------


@click.command("proxy-status")
@click.argument("proxy", required=False)
@control_plane_option
def proxy_status(proxy: str | None, control_plane: str) -> None:
    """Sync status of every connected proxy per xDS type (SYNCED, STALE, NACK, NOT SENT)."""
    cp = ControlPlane(control_plane)
    status, body = cp.call("GET", "/api/v1/proxies")
    if status != 200:
        raise _server_error(status, body)
    items = body.get("items", [])
    if proxy:
        items = [p for p in items if p.get("id", "").startswith(proxy)
                 or tables.proxy_name(p.get("id", "")).startswith(proxy)]
        if not items:
            raise click.ClickException(f'proxy "{proxy}" is not connected')
    host = urllib.parse.urlsplit(cp.url).netloc
    click.echo(tables.status_table(items, f"ketch@{host}"))


_SECTIONS = {"listeners": "listener", "routes": "route", "clusters": "cluster",
             "endpoints": "endpoint", "all": "all"}


@click.command("proxy-config")
@click.argument("section", type=click.Choice(
    [*_SECTIONS, *(v for v in _SECTIONS.values() if v != "all")]))
@click.argument("proxy")
@click.option("-o", "--output", type=click.Choice(["short", "json", "yaml"]), default="short",
              help="short: istioctl's table; json/yaml: the Envoy config_dump section.")
@click.option("--fqdn", default=None, help="clusters: only this service FQDN.")
@click.option("--port", type=int, default=None, help="clusters, listeners, endpoints: only this port.")
@click.option("--subset", default=None, help="clusters: only this subset.")
@click.option("--direction", type=click.Choice(["inbound", "outbound"]), default=None,
              help="clusters: only this direction.")
@click.option("--name", default=None, help="routes: only this route config name.")
@click.option("--cluster", default=None, help="endpoints: only this cluster.")
@click.option("--address", default=None, help="listeners, endpoints: only this address.")
@control_plane_option
def proxy_config(section: str, proxy: str, output: str, control_plane: str,
                 **filters: Any) -> None:
    """What a proxy was sent, as istioctl shows it: listeners, routes, clusters, endpoints.

    PROXY is the proxy id, a unique prefix of it, or its pod name (`reviews-v1-xyz.default`).
    The filters narrow the tables, as istioctl's do."""
    section = section if section in _SECTIONS else section + "s"
    status, body = ControlPlane(control_plane).call(
        "GET", f"/api/v1/proxies/{urllib.parse.quote(proxy, safe='~')}/config")
    if status != 200:
        raise _server_error(status, body)
    parts = tables.sections(body)
    if output in ("json", "yaml"):
        doc = _section_items(parts, section) if section != "all" else body
        if output == "json":
            click.echo(json.dumps(doc, indent=2))
        else:
            import yaml

            click.echo(yaml.safe_dump(doc, sort_keys=False).rstrip())
        return
    order = ["clusters", "listeners", "routes", "endpoints"] if section == "all" else [section]
    click.echo("\n\n".join(_section_table(parts, name, filters) for name in order))


def _section_items(parts: dict[str, dict[str, Any]], section: str) -> list[dict[str, Any]]:
    getters = {"listeners": tables.listeners, "clusters": tables.clusters,
               "routes": tables.route_configs, "endpoints": tables.endpoint_configs}
    return getters[section](parts.get(section, {}))


def _keep(section: str, row: list[str], f: dict[str, Any]) -> bool:
    """istioctl's filters, on the table's cells."""
    port = None if f.get("port") is None else str(f["port"])
    if section == "clusters":
        return ((f.get("fqdn") is None or row[0] == f["fqdn"])
                and (port is None or row[1] == port)
                and (f.get("subset") is None or row[2] == f["subset"])
                and (f.get("direction") is None or row[3] == f["direction"]))
    if section == "listeners":
        return ((f.get("address") is None or row[0] == f["address"])
                and (port is None or row[1] == port))
    if section == "routes":
        return f.get("name") is None or row[0] == f["name"]
    host, _, ep_port = row[0].rpartition(":")
    return ((f.get("cluster") is None or row[3] == f["cluster"])
            and (f.get("address") is None or host == f["address"])
            and (port is None or ep_port == port))


_TABLES = {
    "clusters": (tables.CLUSTER_HEADERS, tables.cluster_rows),
    "listeners": (tables.LISTENER_HEADERS, tables.listener_rows),
    "routes": (tables.ROUTE_HEADERS, tables.route_rows),
    "endpoints": (tables.ENDPOINT_HEADERS, tables.endpoint_rows),
}


def _section_table(parts: dict[str, dict[str, Any]], section: str,
                   filters: dict[str, Any]) -> str:
    headers, rows_of = _TABLES[section]
    rows = [r for r in rows_of(_section_items(parts, section)) if _keep(section, r, filters)]
    return tables.render(headers, rows)
