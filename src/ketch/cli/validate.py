"""`ketch validate -f PATH...`: Istio's validation of config files, as `istioctl validate`.

Exit 0 when every document is valid (warnings are printed but do not fail); exit 1 with one
line per error, `FILE:LINE: Kind ns/name: FIELD.PATH: reason`.
"""

from __future__ import annotations

import json
import sys

import click


@click.command("validate")
@click.option(
    "-f",
    "--filename",
    "paths",
    multiple=True,
    required=True,
    help="File, directory (*.yaml, *.yml, *.json, recursively) or - for stdin. Repeatable.",
)
@click.option("-o", "--output", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("-q", "--quiet", is_flag=True, help="Print errors only, no warnings or summary.")
def validate(paths: tuple[str, ...], output: str, quiet: bool) -> None:
    """Validate Istio and Kubernetes config the way istiod's webhook does."""
    from ketch.model import load_paths

    result = load_paths(paths)  # `-` reads sys.stdin
    if output == "json":
        report = {
            "valid": result.ok,
            "resources": len(result.resources),
            "errors": [i.to_dict() for i in result.errors],
            "warnings": [] if quiet else [i.to_dict() for i in result.warnings],
        }
        click.echo(json.dumps(report, indent=2))
        sys.exit(0 if result.ok else 1)
    for issue in result.errors:
        click.echo(str(issue))
    if not quiet:
        for issue in result.warnings:
            click.echo(f"Warning: {issue}", err=True)
    if result.errors:
        if not quiet:
            click.echo(f"Error: {len(result.errors)} error(s) in the input", err=True)
        sys.exit(1)
    if not quiet:
        click.echo(f"validated {len(result.resources)} resource(s): no errors", err=True)
