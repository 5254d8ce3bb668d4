"""`fleet broker serve` and `fleet broker faults`: the sandbox broker and its fault injection."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer

from fleetkit.cli.errors import fail
from fleetkit.cli.options import ConfigOption, JsonOption

if TYPE_CHECKING:
    from fleetkit.brokers.sandbox.faults import FaultConfig, SandboxStats

# Command bodies import what they need: bot processes load this module too.

broker_app = typer.Typer(help="The sandbox broker.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(broker_app, name="broker")



@broker_app.command()
def serve(config: ConfigOption = None,
          host: Annotated[str | None, typer.Option(help="address to bind (default from config)")]
          = None,
          port: Annotated[int | None, typer.Option(help="port (default from config)")] = None,
          db: Annotated[str | None, typer.Option(
              "--db", help="fleet database for heartbeats (default: $FLEET_DB_URL)")] = None
          ) -> None:
    """Serve the sandbox venue over HTTP until SIGINT/SIGTERM; its book persists."""
    import threading

    from fleetkit.config.loader import load_config
    from fleetkit.runtime.logs import configure_logging
    from fleetkit.runtime.sandbox_service import serve_sandbox
    from fleetkit.runtime.signals import stop_signals

    loaded = load_config(config)
    configure_logging()
    stop = threading.Event()
    with stop_signals(stop):
        serve_sandbox(loaded, stop, host=host, port=port, fleet_db=db)


@broker_app.command()
def faults(config: ConfigOption = None,
           assignments: Annotated[list[str] | None, typer.Option(
               "--set", metavar="NAME=VALUE",
               help="change one fault setting, e.g. --set drop_ack_probability=0.05 "
                    "(repeatable)")] = None,
           clear: Annotated[bool, typer.Option(
               "--clear", help="switch every fault off (before applying any --set)")] = False,
           as_json: JsonOption = False) -> None:
    """Show the running sandbox broker's fault injection and counters; change them live."""
    from fleetkit.brokers.sandbox.client import SandboxClient
    from fleetkit.brokers.sandbox.faults import FaultConfig
    from fleetkit.config.loader import load_config
    from fleetkit.core.errors import BadBrokerReplyError, TransientBrokerError

    changes = _assignments(assignments or [])
    try:
        FaultConfig().with_text(changes)  # a typo is refused before anything is contacted
    except ValueError as exc:
        fail(f"--set: {exc}")
    url = load_config(config).config.sandbox.base_url
    with SandboxClient(url, "fleet-cli") as client:
        try:
            current = client.faults()
            if clear or changes:
                current = client.set_faults(
                    (FaultConfig() if clear else current).with_text(changes))
            stats = client.stats()
        except TransientBrokerError as exc:
            fail(f"no sandbox broker answers at {url} ({exc}); start one with `fleet up` or "
                 "`fleet broker serve`, or point sandbox.url at it")
        except BadBrokerReplyError as exc:
            fail(f"{url} did not answer as a sandbox broker with fault injection: {exc}")
    if as_json:
        typer.echo(json.dumps(_as_json(url, current, stats), indent=2))
    else:
        typer.echo("\n".join(_describe(url, current, stats)))


def _assignments(items: list[str]) -> dict[str, str]:
    changes: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            fail(f"--set {item!r}: expected NAME=VALUE, e.g. --set reject_probability=0.1")
        changes[name.strip()] = value
    return changes


def _as_json(url: str, config: FaultConfig, stats: SandboxStats) -> dict[str, object]:
    from fleetkit.brokers.sandbox.wire import submission_counts_to_dict

    return {"url": url, "faults": config.to_dict(),
            "injected": dict(stats.faults),
            "submissions": stats.submissions, "duplicates": stats.duplicates,
            "accounts": {name: submission_counts_to_dict(counts)
                         for name, counts in sorted(stats.accounts.items())}}


def _describe(url: str, config: FaultConfig, stats: SandboxStats) -> list[str]:
    settings = config.to_dict()
    on = [f"{name}={value:g}" for name, value in settings.items()
          if name != "seed" and isinstance(value, int | float) and value]
    lines = [f"sandbox broker at {url}",
             f"faults (seed {config.seed}): {', '.join(on)}" if on else "faults: off"]
    if config.garbage_probability:
        lines.append(f"garbage kinds: {', '.join(config.garbage_kinds)}")
    injected = [f"{kind} {count}" for kind, count in stats.faults.items()
                if count and kind != "requests"]
    lines.append(f"injected into {stats.faults.get('requests', 0)} account requests: "
                 + (", ".join(injected) if injected else "nothing"))
    lines.append(f"submissions: {stats.submissions} from {len(stats.accounts)} accounts, "
                 f"{stats.duplicates} resent client order ids")
    lines += [f"  {name}: {counts.duplicates} resent of {counts.submissions}"
              for name, counts in sorted(stats.accounts.items()) if counts.duplicates]
    return lines
