"""`ketch proxy`: run the data plane from an Envoy bootstrap, or as a sidecar / router."""

from __future__ import annotations

import json
import logging
import sys

import click


def _run(bootstrap, concurrency: int, drain_timeout: float, health_port: int, print_bootstrap: bool) -> None:
    from google.protobuf import json_format

    from ketch.proxy.runner import run

    if print_bootstrap:
        click.echo(json.dumps(json_format.MessageToDict(bootstrap), indent=2))
        return
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    sys.exit(run(bootstrap, concurrency=concurrency, drain_timeout=drain_timeout,
                 health_port=health_port if health_port > 0 else None))


_common = [
    click.option("--concurrency", type=int, default=1, show_default=True, help="worker processes (SO_REUSEPORT)"),
    click.option("--drain-timeout", type=float, default=5.0, show_default=True, help="seconds to drain on SIGTERM"),
    click.option("--health-port", type=int, default=15021, show_default=True, help="/healthz/ready port (0: off)"),
    click.option("--print-bootstrap", is_flag=True, help="print the bootstrap and exit"),
]


def common(f):
    for opt in reversed(_common):
        f = opt(f)
    return f


@click.group(invoke_without_command=True)
@click.option("--bootstrap", "bootstrap_path", type=click.Path(exists=True, dir_okay=False),
              help="Envoy v3 bootstrap (YAML or JSON)")
@common
@click.pass_context
def proxy(ctx: click.Context, bootstrap_path: str | None, concurrency: int, drain_timeout: float,
          health_port: int, print_bootstrap: bool) -> None:
    """The Ketch proxy: an Envoy-semantics sidecar and gateway."""
    if ctx.invoked_subcommand is not None:
        return
    if bootstrap_path is None:
        raise click.UsageError("give --bootstrap FILE, or use `ketch proxy sidecar|router`")
    from ketch.proxy.bootstrap import load_bootstrap
    from ketch.proxy.protoutil import Unsupported

    try:
        b = load_bootstrap(bootstrap_path)
    except Unsupported as exc:
        raise click.ClickException(str(exc)) from None
    _run(b, concurrency, drain_timeout, health_port, print_bootstrap)


def _mode_command(kind: str):
    @click.command(kind, help=f"Run as a {kind}, bootstrapped from flags and environment (contracts §5).")
    @click.option("--control-plane", help="xDS address HOST:PORT [$KETCH_CONTROL_PLANE_XDS, 127.0.0.1:15010]")
    @click.option("--workload", help="workload (pod) name [$POD_NAME]")
    @click.option("--namespace", help="namespace [$POD_NAMESPACE]")
    @click.option("--label", "labels", multiple=True, help="k=v (repeatable)")
    @click.option("--service-account", help="service account [$SERVICE_ACCOUNT]")
    @click.option("--ip", help="instance IP [$INSTANCE_IP]")
    @click.option("--interception", type=click.Choice(["REDIRECT", "NONE"]), default="REDIRECT", show_default=True)
    @click.option("--admin-port", type=int, default=15000, show_default=True)
    @common
    def cmd(control_plane, workload, namespace, labels, service_account, ip, interception, admin_port,
            concurrency, drain_timeout, health_port, print_bootstrap) -> None:
        from ketch.proxy.bootstrap import BootstrapOptions, build_bootstrap

        parsed = {}
        for item in labels:
            k, sep, v = item.partition("=")
            if not sep:
                raise click.BadParameter(f"label {item!r} is not k=v", param_hint="--label")
            parsed[k] = v
        opts = BootstrapOptions.from_env(kind, control_plane=control_plane, workload=workload, namespace=namespace,
                                         labels=parsed, service_account=service_account, ip=ip,
                                         interception=interception, admin_port=admin_port)
        _run(build_bootstrap(opts), concurrency, drain_timeout, health_port, print_bootstrap)

    return cmd


proxy.add_command(_mode_command("sidecar"))
proxy.add_command(_mode_command("router"))
