"""The `fleet` command: one typer app, sub-apps per area, and one place that turns errors
into a single clear line and the right exit code (2 for anything the user must fix)."""

from __future__ import annotations

import os
import sys
import traceback
from typing import NoReturn

if not sys.stdout.isatty():
    # rich assumes 80 columns without a terminal, which truncates long option names in
    # --help; piped help should read like a terminal's. (Read when typer is imported.)
    os.environ.setdefault("TERMINAL_WIDTH", "120")

import typer

from fleetkit.core.errors import DatabaseUnavailableError, FleetError, UserError

app = typer.Typer(
    name="fleet",
    help="Run a fleet of trading bots unattended: sandbox broker, risk rails, one database.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _register() -> None:
    # Imported for their side effect of adding commands to `app`.
    from fleetkit.cli import (  # noqa: F401
        backtest_cmd,
        bot_cmds,
        broker_cmds,
        calendar_cmds,
        dashboard_cmds,
        db_cmds,
        deploy_cmds,
        exchange_cmds,
        fleet_cmds,
        jobs_cmds,
        metrics_cmds,
        notify_cmds,
        reconcile_cmd,
    )


def fail(message: str, code: int = 2) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def main(argv: list[str] | None = None) -> int:
    _register()
    try:
        # Without standalone mode click returns a command's exit code instead of exiting.
        result = app(args=argv, standalone_mode=False)
        if isinstance(result, int):
            return result
    except typer.Exit as exc:
        return int(exc.exit_code or 0)
    except typer.Abort:
        typer.echo("aborted", err=True)
        return 130
    except UserError as exc:
        typer.echo(f"error: {exc}", err=True)
        return exc.exit_code
    except DatabaseUnavailableError as exc:
        # At the command line an unreachable database is a setting to fix, not a pause.
        typer.echo(f"error: {exc}", err=True)
        return 2
    except FleetError as exc:
        typer.echo(f"error: {exc}", err=True)
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        return _unexpected(exc)
    return 0


def _unexpected(exc: Exception) -> int:
    """A usage error from typer's own click, or a bug: never a bare traceback."""
    if _is_usage_error(exc):
        exc.show()  # type: ignore[attr-defined]
        return int(exc.exit_code)  # type: ignore[attr-defined]
    if os.environ.get("FLEET_DEBUG"):
        traceback.print_exc()
    else:
        typer.echo(f"internal error: {type(exc).__name__}: {exc} "
                   "(set FLEET_DEBUG=1 for the traceback)", err=True)
    return 1


def _is_usage_error(exc: Exception) -> bool:
    # typer vendors its own click, so match click's exceptions by shape, not by class.
    return callable(getattr(exc, "show", None)) and isinstance(getattr(exc, "exit_code", None),
                                                               int)


def entry() -> None:
    sys.exit(main())
