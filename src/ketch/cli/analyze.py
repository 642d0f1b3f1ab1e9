"""`ketch analyze`: cross-resource analysis with Istio's messages, as istioctl.

Input is files (`-f PATH`, repeatable; file, directory or `-`), the live mesh (the control
plane's config and registered workloads, when no `-f` is given), or files over the live mesh
(`--live`). Exit 79 when a message at or above `--failure-threshold` (default Error) is
found, 0 otherwise; exit 1 when the input cannot be read at all (unreadable files, broken
YAML, no control plane). Resources that fail validation are reported as IST0106.
"""

from __future__ import annotations

import io
import sys
from typing import Any

import click

LEVELS = ("Error", "Warning", "Info")
DEFAULT_CONTROL_PLANE = "http://127.0.0.1:15014"


def _fail(lines: list[str]) -> None:
    for line in lines:
        click.echo(f"Error: {line}", err=True)
    sys.exit(1)


def _load_files(inputs: tuple[str, ...]) -> tuple[Any, str]:
    from ketch.analyze.run import unattributed
    from ketch.model import load_paths

    # stdin is read here once, so field lines can be found in it as in files
    stdin_text = sys.stdin.read() if "-" in inputs else ""
    result = load_paths(inputs, stdin=io.StringIO(stdin_text))
    broken = unattributed(result.errors)
    if broken:
        _fail([str(i) for i in broken] + [f"{len(broken)} error(s) reading the input"])
    for issue in result.warnings:
        if not issue.kind or not issue.name:
            click.echo(f"Warning: {issue}", err=True)
    return result, stdin_text


def _load_live(url: str) -> tuple[Any, tuple[Any, ...]]:
    from ketch.analyze.live import LiveError, fetch_live
    from ketch.model import LoadResult, load_documents

    try:
        live = fetch_live(url)
    except LiveError as exc:
        _fail([f"{exc}; is `ketch control-plane` running? (set --control-plane or KETCH_CONTROL_PLANE)"])
    loaded = load_documents(live.documents, file=url)
    # Like istioctl for cluster resources, live ones are named without a file:line origin.
    resources = tuple(r.with_origin(None) for r in loaded.resources)
    return LoadResult(resources, loaded.errors, loaded.warnings), live.workloads


@click.command("analyze")
@click.argument("files", nargs=-1)
@click.option("-f", "--filename", "paths", multiple=True,
              help="File, directory (*.yaml, *.yml, *.json, recursively) or - for stdin. Repeatable.")
@click.option("--live", is_flag=True,
              help="Analyze the files over the live mesh's config (without -f, the live mesh is analyzed).")
@click.option("--control-plane", "control_plane", envvar="KETCH_CONTROL_PLANE", default=DEFAULT_CONTROL_PLANE,
              show_default=True, metavar="URL", help="The control plane's HTTP API, for the live mesh.")
@click.option("-o", "--output", type=click.Choice(["text", "log", "json", "yaml"]), default="text",
              show_default=True, help="Output format (log is istioctl's name for text).")
@click.option("--failure-threshold", type=click.Choice(LEVELS, case_sensitive=False), default="Error",
              show_default=True, help="The severity level of analysis at which to set a non-zero exit code.")
@click.option("--output-threshold", type=click.Choice(LEVELS, case_sensitive=False), default="Info",
              show_default=True, help="The severity level of analysis at which to display messages.")
@click.option("--meshConfigFile", "mesh_config_file", type=click.Path(exists=True, dir_okay=False),
              help="Overrides the mesh config values to use for analysis.")
@click.option("-S", "--suppress", "suppressions", multiple=True,
              help='Suppress messages by code and resource, e.g. "IST0118=Service web.default" or '
                   '"IST01*=VirtualService *.default" (shell-style wildcards). Repeatable.')
@click.option("-L", "--list-analyzers", is_flag=True, help="List the analyzers available to run.")
def analyze(files: tuple[str, ...], paths: tuple[str, ...], live: bool, control_plane: str, output: str,
            failure_threshold: str, output_threshold: str, mesh_config_file: str | None,
            suppressions: tuple[str, ...], list_analyzers: bool) -> None:
    """Analyze Istio configuration and print validation messages."""
    from ketch.analyze import Level, analyze as run_analysis, exit_code
    from ketch.analyze.analyzers import ALL
    from ketch.analyze.lines import LineResolver
    from ketch.analyze.output import render_json, render_text, render_yaml
    from ketch.analyze.suppress import Suppression
    from ketch.model import LoadResult, MeshConfig, MeshConfigError, load_mesh_config

    if list_analyzers:
        for a in ALL:
            click.echo(f"* {a.name}:\n    {a.description}")
        return
    try:
        suppress = [Suppression.parse(s) for s in suppressions]
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--suppress") from None
    try:
        mesh = load_mesh_config(mesh_config_file) if mesh_config_file else MeshConfig()
    except (MeshConfigError, OSError) as exc:
        _fail([f"mesh config {mesh_config_file}: {exc}"])

    inputs = (*paths, *files)
    result, stdin_text, workloads = LoadResult(), "", ()
    if live or not inputs:
        result, workloads = _load_live(control_plane)
    if inputs:
        from_files, stdin_text = _load_files(inputs)
        result = result + from_files  # files come last: they win over the live config

    messages = run_analysis(result.resources, mesh=mesh, load_errors=result.errors,
                            lines=LineResolver(texts={"-": stdin_text}), suppressions=suppress,
                            workloads=workloads)
    shown = [m for m in messages if m.level >= Level.parse(output_threshold)]
    if output == "json":
        click.echo(render_json(shown), nl=False)
    elif output == "yaml":
        click.echo(render_yaml(shown), nl=False)
    else:
        namespaces = {r.metadata.namespace for r in result.resources if r.metadata.namespace} or {"default"}
        click.echo(render_text(shown, namespaces), nl=False)
    sys.exit(exit_code(messages, Level.parse(failure_threshold)))
