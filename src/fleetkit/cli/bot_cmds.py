"""`fleet bot run NAME`: one bot alone — what a container or a systemd unit runs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated

import typer

from fleetkit.cli.errors import fail
from fleetkit.cli.options import ConfigOption, DbOption

if TYPE_CHECKING:
    from fleetkit.config.models import BotSettings

bot_app = typer.Typer(help="Run a single bot.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(bot_app, name="bot")



@bot_app.command("run")
def run(name: Annotated[str, typer.Argument(help="the bot's name in the config")],
        config: ConfigOption = None, db: DbOption = None) -> None:
    """Run one bot in the foreground until SIGINT/SIGTERM (reconciles on boot)."""
    import threading

    from fleetkit.config.loader import load_config
    from fleetkit.runtime.connections import connection_factory
    from fleetkit.runtime.logs import configure_logging
    from fleetkit.runtime.runner import BotRunner
    from fleetkit.runtime.signals import stop_signals
    from fleetkit.runtime.wiring import database_url

    loaded = load_config(config)
    _refuse_without_ml_extra(loaded.config.bots, name)
    configure_logging()
    _report_broken_plugins()
    stop = threading.Event()
    runner = BotRunner(loaded, name, database_url(loaded, db),
                       connection_factory(loaded), stop=stop)
    with stop_signals(stop):
        runner.run()


def _refuse_without_ml_extra(bots: Sequence[BotSettings], name: str) -> None:
    """A learning bot cannot trade without the ml extra: one line with the fix, exit 2,
    rather than a process that starts only to halt (the extra is looked for, not
    imported)."""
    from fleetkit.config.ml import RL_POLICY
    from fleetkit.runtime.ml_bootstrap import missing_ml_package, refused_line

    if any(bot.name == name and bot.strategy == RL_POLICY for bot in bots):
        missing = missing_ml_package()
        if missing is not None:
            fail(refused_line(name, missing))


def _report_broken_plugins() -> None:
    """A package that failed to load was skipped (this bot's strategy came from elsewhere):
    say so once in the bot's log, where an operator looks."""
    from fleetkit.runtime.logs import get_logger
    from fleetkit.strategy.base import STRATEGIES

    for problem in STRATEGIES.problems():
        get_logger("plugins").warning(problem.describe(), action="plugin.failed")
