"""The `fleet` command: one typer app assembled from the command modules (each exports a
`register(app)`; none imports this module), and one place that turns errors
into a single clear line and the right exit code (2 for anything the user must fix) — and,
when the command was given --json, into a JSON error object on stdout as well."""

from __future__ import annotations

import gc
import itertools
import json
import os
import re
import sys
import traceback
from collections.abc import Callable, Sequence

if not sys.stdout.isatty():
    # rich assumes 80 columns without a terminal, which truncates long option names in
    # --help; piped help should read like a terminal's. (Read when typer is imported.)
    os.environ.setdefault("TERMINAL_WIDTH", "120")

import typer

from fleetkit.cli import (
    backtest_cmd,
    bot_cmds,
    broker_cmds,
    calendar_cmds,
    collector_cmds,
    dashboard_cmds,
    data_cmds,
    data_status_cmd,
    db_cmds,
    deploy_cmds,
    exchange_cmds,
    fleet_cmds,
    jobs_cmds,
    metrics_cmds,
    ml_cmds,
    model_cmds,
    notify_cmds,
    option_quote_cmds,
    reconcile_cmd,
    straddle_cmds,
    train_cmds,
)
from fleetkit.cli.errors import fail
from fleetkit.core.errors import DatabaseUnavailableError, FleetError, UserError

__all__ = ["app", "build_app", "entry", "fail", "main"]

# Each command module adds its commands; this order is `fleet --help`'s (commands first,
# then groups, each in the order added).
COMMANDS: tuple[Callable[[typer.Typer], None], ...] = (
    backtest_cmd.register, bot_cmds.register, broker_cmds.register, calendar_cmds.register,
    dashboard_cmds.register, data_cmds.register, db_cmds.register, deploy_cmds.register,
    exchange_cmds.register, fleet_cmds.register, jobs_cmds.register, metrics_cmds.register,
    ml_cmds.register, model_cmds.register, notify_cmds.register, option_quote_cmds.register,
    collector_cmds.register, data_status_cmd.register, straddle_cmds.register,
    reconcile_cmd.register, train_cmds.register)


def build_app() -> typer.Typer:
    """The `fleet` command with every command module's commands added."""
    app = typer.Typer(
        name="fleet",
        help="Run a fleet of trading bots unattended: sandbox broker, risk rails, one "
             "database.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    for register in COMMANDS:
        register(app)
    return app


app = build_app()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    as_json = wants_json(args)
    try:
        # Without standalone mode click returns a command's exit code instead of exiting.
        result = app(args=args, standalone_mode=False)
        if isinstance(result, int):
            return result
    except typer.Exit as exc:
        return int(exc.exit_code or 0)
    except typer.Abort:
        typer.echo("aborted", err=True)
        return 130
    except UserError as exc:
        return report_error(exc, exc.exit_code, as_json=as_json)
    except DatabaseUnavailableError as exc:
        # At the command line an unreachable database is a setting to fix, not a pause.
        return report_error(exc, 2, as_json=as_json)
    except FleetError as exc:
        return report_error(exc, 1, as_json=as_json)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        return _unexpected(exc, as_json=as_json)
    return 0


def wants_json(args: Sequence[str]) -> bool:
    """Every command spells its machine-readable flag `--json` (an argument after `--` is
    not an option)."""
    return "--json" in itertools.takewhile(lambda arg: arg != "--", args)


def error_kind(exc: BaseException) -> str:
    """The error's class for machines: DatabaseUnavailableError -> database_unavailable."""
    name = type(exc).__name__.removesuffix("Error") or type(exc).__name__
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


def report_error(exc: FleetError, exit_code: int, *, as_json: bool) -> int:
    """One line on stderr naming the problem and the fix; under --json also the error
    object on stdout."""
    typer.echo(f"error: {exc}", err=True)
    if as_json:
        json_error(error_kind(exc), str(exc), exit_code)
    return exit_code


def json_error(kind: str, message: str, exit_code: int) -> None:
    """What every --json command prints on stdout when it fails, so a script that parses
    stdout gets JSON either way (the shape is documented in docs/reliability.md)."""
    typer.echo(json.dumps({"error": {"kind": kind, "message": message,
                                     "exit_code": exit_code}}, indent=2))


def _unexpected(exc: Exception, *, as_json: bool) -> int:
    """A usage error from typer's own click, or a bug: never a bare traceback."""
    if _is_usage_error(exc):
        exc.show()  # type: ignore[attr-defined]
        code = int(exc.exit_code)  # type: ignore[attr-defined]
        if as_json:
            json_error("usage", exc.format_message(), code)  # type: ignore[attr-defined]
        return code
    if os.environ.get("FLEET_DEBUG"):
        traceback.print_exc()
    else:
        typer.echo(f"internal error: {type(exc).__name__}: {exc} "
                   "(set FLEET_DEBUG=1 for the traceback)", err=True)
    if as_json:
        json_error("internal", f"{type(exc).__name__}: {exc}", 1)
    return 1


def _is_usage_error(exc: Exception) -> bool:
    # typer vendors its own click, so match click's exceptions by shape, not by class.
    return callable(getattr(exc, "show", None)) and isinstance(getattr(exc, "exit_code", None),
                                                               int)


def entry() -> None:
    """The `fleet` console script (what systemd units and containers run)."""
    code = main()
    gc.freeze()  # a quick interpreter teardown, as in fleetkit.__main__ (why: see there)
    sys.exit(code)
