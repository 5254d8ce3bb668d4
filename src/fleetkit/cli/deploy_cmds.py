"""`fleet deploy compose | systemd`: deployment files generated from the fleet config."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from fleetkit.cli.errors import fail
from fleetkit.cli.options import ConfigOption

if TYPE_CHECKING:
    from fleetkit.deploy.files import Bundle

# Command bodies import what they need: bot processes load this module too.

deploy_app = typer.Typer(help="Generate deployment files (Docker Compose, systemd) from the "
                              "fleet config.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(deploy_app, name="deploy")


OutOption = Annotated[Path, typer.Option(
    "--out", "-o", help="directory to write (created if missing)")]
ForceOption = Annotated[bool, typer.Option(
    "--force", help="write even where --out holds files fleet deploy did not write: the "
                    "generated ones are overwritten, others left alone")]
_IMAGE = re.compile(r"^[a-z0-9][a-z0-9._/:@-]*$")
RolePrefixOption = Annotated[str, typer.Option(
    "--role-prefix", help="each bot connects to PostgreSQL as PREFIX + its name (give a "
                          "second fleet on the same server its own)")]
ReaderRoleOption = Annotated[str, typer.Option(
    "--reader-role", help="the read-only role the metrics endpoint and the dashboard "
                          "connect as")]


@deploy_app.command()
def compose(out: OutOption, config: ConfigOption = None, force: ForceOption = False,
            image: Annotated[str, typer.Option(
                help="the fleetkit image every fleet service runs (build it from the "
                     "Dockerfile); with plugin packages, the one the fleet's own image is "
                     "built from")] = "fleetkit:latest",
            role_prefix: RolePrefixOption = "fleet_bot_",
            reader_role: ReaderRoleOption = "fleet_reader_login") -> None:
    """Write docker-compose.yml, config/fleet.yaml, env/<bot>.env and secrets.sh into --out."""
    from fleetkit.config.loader import load_config
    from fleetkit.deploy.compose import compose_bundle
    from fleetkit.deploy.spec import DbRoles

    if not _IMAGE.match(image):
        fail(f"--image {image!r} is not an image reference (e.g. fleetkit:latest)")
    loaded = load_config(config)
    roles = DbRoles(bot_prefix=role_prefix, reader=reader_role)
    bundle = compose_bundle(loaded, image=image, roles=roles)
    _write(out, bundle, force)
    for note in bundle.notes:
        typer.echo(f"note: {note}")
    own_image = any(f.path == "image/Dockerfile" for f in bundle.files)
    typer.echo(f"next: `sh {out / 'secrets.sh'}` (the database passwords, one file per role), "
               f"`docker build -t {image} .` in the fleetkit source, then "
               + ("`docker compose build` (the fleet's own image) and " if own_image else "")
               + f"`docker compose up -d` in {out} (docs/deploy.md)")


@deploy_app.command()
def systemd(out: OutOption, config: ConfigOption = None, force: ForceOption = False,
            prefix: Annotated[str, typer.Option(help="unit name prefix")] = "fleet",
            user: Annotated[str, typer.Option(help="system user the fleet runs as")] = "fleet",
            home: Annotated[str, typer.Option(help="FLEET_HOME: data, the only writable path")]
            = "/var/lib/fleet",
            fleet_bin: Annotated[str, typer.Option(
                "--fleet-bin", help="the installed `fleet` executable")]
            = "/opt/fleetkit/bin/fleet",
            role_prefix: RolePrefixOption = "fleet_bot_",
            reader_role: ReaderRoleOption = "fleet_reader_login") -> None:
    """Write systemd units (a fleet-bot@ template, broker, migrate, roles, ..., a target),
    env files and install.sh into --out."""
    from fleetkit.config.loader import load_config
    from fleetkit.deploy.spec import DbRoles
    from fleetkit.deploy.systemd import SystemdOptions, systemd_bundle

    try:
        options = SystemdOptions(prefix=prefix, user=user, home=home, fleet_bin=fleet_bin,
                                 roles=DbRoles(bot_prefix=role_prefix, reader=reader_role))
    except ValueError as exc:
        fail(str(exc))
    loaded = load_config(config)
    bundle = systemd_bundle(loaded, options)
    _write(out, bundle, force)
    for note in bundle.notes:
        typer.echo(f"note: {note}")
    typer.echo(f"next: as root, `sh {out / 'install.sh'}` (DRY_RUN=1 to only print; it "
               f"creates each missing database password in /etc/{prefix}/db), then enable what "
               "this host runs (docs/deploy.md)")


def _write(out: Path, bundle: Bundle, force: bool) -> None:
    from fleetkit.deploy.files import write_bundle

    report = write_bundle(out, bundle, force=force)
    typer.echo(f"wrote {len(report.written)} files to {out}")
    if report.kept:
        typer.echo(f"kept {len(report.kept)} edited env files as they are (delete one to "
                   f"regenerate it): {', '.join(report.kept)}")
    if report.removed:
        typer.echo(f"removed {len(report.removed)} files this config no longer needs: "
                   f"{', '.join(report.removed)}")
