"""The `ketch` command line.

Subcommands live in their own modules and are imported only when invoked, so
`ketch validate` does not pay for grpc or the proxy. Each subsystem owns one
line of COMMANDS: "name": "module:attribute" of a click command or group.
"""

from __future__ import annotations

import importlib

import click

COMMANDS: dict[str, str] = {
    # foundation (model, analysis, store)
    "validate": "ketch.cli.validate:validate",
    "analyze": "ketch.cli.analyze:analyze",
    # control plane and the CLI against its REST API
    "control-plane": "ketch.cli.controlplane:control_plane",
    "apply": "ketch.cli.client:apply",
    "get": "ketch.cli.client:get",
    "delete": "ketch.cli.client:delete",
    "proxy-status": "ketch.cli.client:proxy_status",
    "proxy-config": "ketch.cli.client:proxy_config",
    # data plane
    "proxy": "ketch.cli.proxy:proxy",
    # local runtime
    "up": "ketch.cli.runtime:up",
    "down": "ketch.cli.runtime:down",
    "logs": "ketch.cli.runtime:logs",
    "restart": "ketch.cli.runtime:restart",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, _, attr = target.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and module_name.startswith(exc.name):
                return _not_built(cmd_name)
            raise
        return getattr(module, attr)


def _not_built(name: str) -> click.Command:
    def fail() -> None:
        raise click.UsageError(f"'{name}' is not built yet")

    return click.Command(name, callback=fail, help="(not built yet)")


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="ketch")
def main() -> None:
    """Ketch: a service mesh that speaks Istio's language."""
