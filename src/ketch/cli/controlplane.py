"""`ketch control-plane`: run Ketch's istiod (see ketch.controlplane.server)."""

from __future__ import annotations

import logging
from pathlib import Path

import click


@click.command("control-plane")
@click.option("--state-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Persist config here (default: in memory).")
@click.option("--xds-port", type=int, default=15010, show_default=True, help="gRPC ADS port.")
@click.option("--http-port", type=int, default=15014, show_default=True,
              help="REST API and /metrics port.")
@click.option("--meshConfigFile", "mesh_config_file", default=None,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Istio MeshConfig YAML.")
@click.option("--host", default="0.0.0.0", show_default=True, help="Address to listen on.")
@click.option("--registry-ttl", type=float, default=30.0, show_default=True,
              help="Seconds without heartbeat before a registered instance is dropped.")
@click.option("--debounce-after", type=float, default=0.1, show_default=True,
              help="Seconds of quiet after a change before pushing (PILOT_DEBOUNCE_AFTER).")
@click.option("--debounce-max", type=float, default=10.0, show_default=True,
              help="Longest a change waits for the quiet (PILOT_DEBOUNCE_MAX).")
@click.option("--partial-updates/--no-partial-updates", default=True, show_default=True,
              help="Pushes send only changed RDS/EDS resources (Envoy state-of-the-world "
                   "semantics); --no-partial-updates resends the whole subscribed set.")
@click.option("--log-level", default="info", show_default=True,
              type=click.Choice(["debug", "info", "warning", "error"]))
def control_plane(state_dir: Path | None, xds_port: int, http_port: int,
                  mesh_config_file: Path | None, host: str, registry_ttl: float,
                  debounce_after: float, debounce_max: float, partial_updates: bool,
                  log_level: str) -> None:
    """Run the control plane: config store, registry, xDS server and REST API."""
    from ketch.controlplane.server import ControlPlane, ControlPlaneOptions, main

    logging.basicConfig(level=log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    options = ControlPlaneOptions(state_dir=state_dir, host=host, xds_port=xds_port,
                                  http_port=http_port, mesh_config_file=mesh_config_file,
                                  registry_ttl=registry_ttl, partial_updates=partial_updates,
                                  debounce_quiet=debounce_after, debounce_max=debounce_max)

    def ready(cp: ControlPlane) -> None:
        click.echo(f"ketch control-plane ready: xds {host}:{cp.xds_port} http {host}:{cp.http_port}",
                   err=True)

    from ketch.model.mesh import MeshConfigError
    from ketch.store import StoreError

    try:
        code = main(options, on_ready=ready)
    except MeshConfigError as exc:
        raise click.ClickException("invalid mesh config:\n" + "\n".join(str(i) for i in exc.issues))
    except (StoreError, OSError) as exc:
        raise click.ClickException(str(exc))
    raise SystemExit(code)
