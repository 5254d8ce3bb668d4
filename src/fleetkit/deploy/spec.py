"""What every deployment runs, whatever runs it: the fleet's processes, the database role
each connects as, each bot's environment file (names only, never values) and the config
they all read."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Literal

import yaml

from fleetkit.config.dashboard import is_loopback
from fleetkit.config.loader import LoadedConfig, demo_config_text
from fleetkit.config.ml import RL_POLICY
from fleetkit.config.models import BotSettings, FleetConfig
from fleetkit.core.errors import ConfigError
from fleetkit.store.roles import DEFAULT_BOT_ROLE_PREFIX, bot_role_name, check_role_name

# runtime.connections reads it; deploy may not import runtime (a test keeps the two equal).
LIVE_CONFIRM_ENV = "FLEET_LIVE_CONFIRM"
# The read-only login (a member of the fleet_reader group, docs/isolation.md) that the
# metrics endpoint and the dashboard connect as: they only read.
DEFAULT_READER_ROLE = "fleet_reader_login"
DASHBOARD_PORT = 8501
METRICS_PORT = 9108
NO_DASHBOARD_AUTH_NOTE = (
    "inside its container the dashboard must listen on every interface, which fleetkit "
    "allows only with dashboard.auth configured: generated, but not started by default (add "
    "users from `fleet dashboard passwd NAME`, or oidc, and regenerate; docs/dashboard.md)")
NO_JOBS_NOTE = ("the config has no enabled jobs or services and `fleet scheduler run` refuses "
                "an empty schedule: generated, but not started by default (add some and "
                "regenerate)")


# Who a fleet process connects to the database as (each bot has its own role): the owner
# (migrations, roles, the broker's heartbeat, the scheduler: they write fleet-wide) or the
# read-only login (what only reads).
DbLogin = Literal["owner", "reader"]


@dataclass(frozen=True, slots=True)
class DbRoles:
    """The login roles a deployment connects as: `<bot_prefix><bot>` for each bot and
    `reader` for what only reads. `fleet db roles --passwords-from` creates them."""

    bot_prefix: str = DEFAULT_BOT_ROLE_PREFIX
    reader: str = DEFAULT_READER_ROLE

    def bot(self, bot_name: str) -> str:
        return bot_role_name(bot_name, self.bot_prefix)

    def every(self, config: FleetConfig) -> tuple[str, ...]:
        """Each bot's role, then the reader's; ConfigError for a name PostgreSQL (or this
        fleet) cannot take, so a bad one is refused when generating, not at deploy time."""
        bots = tuple(self.bot(b.name) for b in config.bots)
        reader = check_role_name(self.reader)
        if reader in bots:
            raise ConfigError(f"--reader-role {reader} is also a bot's role name: pick another")
        return (*bots, reader)

    def roles_args(self, passwords_dir: str) -> tuple[str, ...]:
        """`fleet db roles` creating them all with the passwords in `passwords_dir`."""
        return ("db", "roles", "--passwords-from", passwords_dir,
                "--role-prefix", self.bot_prefix, "--reader-role", self.reader)


@dataclass(frozen=True, slots=True)
class Process:
    """One long-running (or one-shot) fleet process besides the bots."""

    name: str  # service / unit name: migrate, broker, scheduler ...
    description: str
    args: tuple[str, ...]  # after `fleet`
    oneshot: bool = False
    off: str | None = None  # why it is generated but not started by default
    login: DbLogin = "owner"
    after: tuple[str, ...] = ("migrate",)  # one-shots that must have succeeded first

    @property
    def command(self) -> str:
        return " ".join(itertools.takewhile(lambda a: not a.startswith("-"), self.args))


# What the bots (and readers) wait for: the schema, then their roles.
BOTS_AFTER = ("migrate", "roles")
NO_ROUTES_NOTE = ("the config has no notify.routes, so nothing would be delivered: generated, "
                  "but not started by default (add routes, with their tokens in the "
                  "environment or secret files, and regenerate; docs/alerts.md)")



def fleet_processes(config: FleetConfig, roles: DbRoles, passwords_dir: str, *,
                    broker_args: tuple[str, ...] = (),
                    dashboard_host: str = "127.0.0.1") -> tuple[Process, ...]:
    """Everything that runs beside the bots, in start order. `passwords_dir` is where the
    roles one-shot finds each role's `<role>.password`."""
    return (
        Process("migrate", "database migrations (one-shot)", ("db", "upgrade"), oneshot=True,
                after=()),
        Process("roles", "database login roles of the bots and the reader (one-shot)",
                roles.roles_args(passwords_dir), oneshot=True),
        Process("broker", "sandbox broker", ("broker", "serve", *broker_args)),
        Process("scheduler", "scheduled jobs (each period runs once, fleet-wide)",
                ("scheduler", "run"), off=None if config.scheduled_work else NO_JOBS_NOTE),
        Process("metrics", "Prometheus metrics for the whole fleet (local only)",
                ("metrics", "serve", "--host", dashboard_host, "--port", str(METRICS_PORT)),
                login="reader", after=BOTS_AFTER),
        Process("notifier", "alerts: outbox delivery, reports, monitors, Telegram commands",
                ("notify", "run"), off=None if config.notify.routes else NO_ROUTES_NOTE),
        Process("dashboard", "dashboard (local only; controls need a login)",
                ("dashboard", "--host", dashboard_host, "--port", str(DASHBOARD_PORT)),
                login="reader", after=BOTS_AFTER,
                off=None if is_loopback(dashboard_host) or config.dashboard.auth.configured
                else NO_DASHBOARD_AUTH_NOTE),
    )


def require_bots(loaded: LoadedConfig) -> None:
    if not loaded.config.bots:
        raise ConfigError(f"{loaded.source}: no bots configured — add some under `bots:`")


def config_source_text(loaded: LoadedConfig) -> str:
    """The config's text as the user wrote it (the demo's for the built-in fleet)."""
    path = loaded.source_path
    if path is None:
        return demo_config_text()
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None


def source_name(loaded: LoadedConfig) -> str:
    """The config's file name for headers: no absolute path, so output does not depend on
    where the config happens to live."""
    path = loaded.source_path
    return loaded.source if path is None else Path(path).name


def one_line(text: str) -> str:
    """User text made safe for a comment or a unit's Description: one printable line."""
    return "".join(c if c.isprintable() else " " for c in text).strip()


def needs_broker(bot: BotSettings) -> bool:
    return bot.mode == "sandbox"


def needs_internet(bot: BotSettings) -> bool:
    return bot.mode != "sandbox"


def learns(bot: BotSettings) -> bool:
    """A learning bot: it needs the `ml` extra (torch ...) wherever it runs, and may train
    its first models when it starts (`ml.train_if_missing`)."""
    return bot.strategy == RL_POLICY


def learning_bots(config: FleetConfig) -> tuple[str, ...]:
    """The names of the bots that need the `ml` extra, in config order."""
    return tuple(bot.name for bot in config.bots if learns(bot))


def check_models_dirs(loaded: LoadedConfig, home: str) -> None:
    """A learning bot writes its models to ml.models_dir, and a deployed fleet process may
    write under its fleet home only (the volume; ReadWritePaths=): refuse, when generating,
    a models_dir that would leave its first training nowhere to write. Read from the text
    as written, since the loaded config resolved relative ones under this machine's home."""
    learning = set(learning_bots(loaded.config))
    raw = yaml.safe_load(config_source_text(loaded)) or {}
    for bot in raw.get("bots") or ():
        given = (bot.get("ml") or {}).get("models_dir") if isinstance(bot, dict) else None
        if bot.get("name") not in learning or not isinstance(given, str):
            continue
        if given.startswith("~") or (given.startswith("/") and not PurePosixPath(
                given).is_relative_to(home)):
            raise ConfigError(f"bot {bot['name']}: ml.models_dir {given!r} is outside the "
                              f"fleet home ({home}), the only place a deployed bot may write "
                              "its models: give a path relative to the home (the default is "
                              f"models/{bot['name']})")


def bot_env_file(config: FleetConfig, bot: BotSettings, generator: str,
                 database_lines: tuple[str, ...]) -> str:
    """The bot's environment: only the NAMES of what it needs, values left for the operator."""
    where = bot.market if bot.exchange is None else f"{bot.market} on {bot.exchange}"
    lines = [f"# Environment of bot {bot.name} ({bot.mode}, {where}) — written by `{generator}`.",
             "# Yours once you fill it in: regenerating keeps an edited file (delete it to get",
             "# a fresh one). It may hold secrets: keep it private (mode 600), out of git.",
             *database_lines]
    if bot.mode == "sandbox":
        lines.append("# A sandbox bot needs no credentials.")
    elif bot.mode == "paper":
        lines.append("# A paper bot reads public prices only: it needs no credentials.")
    else:
        lines += _live_lines(config, bot)
    return "\n".join(lines) + "\n"


def _live_lines(config: FleetConfig, bot: BotSettings) -> list[str]:
    name = str(bot.exchange)
    venue = config.exchanges[name]
    c = venue.credentials
    lines = [f"# Credentials of exchange {name} (the names come from fleet.yaml, "
             f"exchanges.{name}.credentials):"]
    lines += [f"{env}=" for env in (c.api_key_env, c.secret_env, c.password_env) if env]
    lines += [f"# the {what} is read from the file {path}: make it readable by this bot "
              "(mount it into the container)"
              for what, path in (("api key", c.api_key_file), ("secret", c.secret_file),
                                 ("password", c.password_file)) if path]
    if not venue.testnet:
        lines += [f"# REAL MONEY: {name} is not a testnet. The bot refuses to trade until "
                  f"{LIVE_CONFIRM_ENV} names it",
                  f"# (and live.enabled is true in fleet.yaml): {LIVE_CONFIRM_ENV}={bot.name}",
                  f"{LIVE_CONFIRM_ENV}="]
    return lines
