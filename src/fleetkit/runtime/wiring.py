"""Turning config into parts: instruments, limits, sizing, and a bot ready to trade.

Only this layer knows both the config and the concrete adapters.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path

from fleetkit.brokers.sandbox.catalog import load_catalog, parse_catalog
from fleetkit.brokers.sandbox.chains import TICK as FUTURE_TICK
from fleetkit.brokers.sandbox.contracts import ContractRules, load_contract_rules
from fleetkit.brokers.sandbox.listing import perpetual_instrument
from fleetkit.brokers.sandbox.perpetuals import PERPETUALS
from fleetkit.brokers.sandbox.pricing import SandboxInstrument
from fleetkit.config.loader import LoadedConfig
from fleetkit.config.models import BotSettings, FleetConfig
from fleetkit.core.errors import ConfigError
from fleetkit.core.instruments import AssetClass, Instrument, instrument_key, market
from fleetkit.core.market_data import interval_seconds
from fleetkit.engine.assembly import AssembledBot, BotRecipe, assemble_bot
from fleetkit.engine.assembly import order_sync as engine_order_sync
from fleetkit.engine.execution import BotIdentity
from fleetkit.engine.exits import ExitRules
from fleetkit.engine.ports import Broker, Clock, Ledger, MarketData
from fleetkit.engine.reconcile import Tolerances
from fleetkit.engine.rolls import ContractSource
from fleetkit.engine.sync import OrderSync
from fleetkit.engine.trader import Sizing
from fleetkit.risk.rails import RiskLimits
from fleetkit.strategy.base import spec

MARKET_DATA_DB_URL_ENV = "FLEET_MARKET_DATA_DB_URL"


def sandbox_catalog(config: FleetConfig) -> dict[str, SandboxInstrument]:
    catalog = load_catalog()
    if config.sandbox.instruments:
        try:
            extra = parse_catalog({_entry_key(e): _entry_body(e)
                                   for e in config.sandbox.instruments})
        except ValueError as exc:
            raise ConfigError(f"sandbox.instruments: {exc}") from None
        catalog.update(extra)
    return catalog


def derivatives_path(loaded: LoadedConfig) -> Path | None:
    """sandbox.derivatives_file, a relative path taken from the config file's directory."""
    return loaded.path_of(loaded.config.sandbox.derivatives_file)


def sandbox_contract_rules(loaded: LoadedConfig) -> dict[str, ContractRules]:
    """The sandbox's index derivatives rules: the shipped ones with the config's
    derivatives_file laid over them; ConfigError naming the file, key and fix if bad."""
    path = derivatives_path(loaded)
    rules = load_contract_rules(path)
    if path is not None:  # the shipped spots are in the shipped catalog
        catalog = sandbox_catalog(loaded.config)
        for root, rule in rules.items():
            if rule.spot not in catalog:
                raise ConfigError(f"{path}: {root}.spot: {rule.spot!r} is no instrument the "
                                  "sandbox prices; add it under sandbox.instruments or name "
                                  "one it prices, like 'NSE:NIFTY 50'")
    return rules


def _entry_key(entry: Mapping[str, object]) -> str:
    try:
        return instrument_key(str(entry["market"]), str(entry["symbol"]))
    except KeyError as exc:
        raise ConfigError(f"sandbox.instruments: every entry needs market and symbol "
                          f"(missing {exc.args[0]})") from None


def _entry_body(entry: Mapping[str, object]) -> dict[str, object]:
    return {k: v for k, v in entry.items() if k not in ("market", "symbol")}


def bot_instruments(bot: BotSettings, catalog: Mapping[str, SandboxInstrument]
                    ) -> dict[str, Instrument]:
    """The bot's instruments as the config alone says them: the catalog's, and the sandbox's
    perpetuals. A front-month future is the venue's to name (`bot_contracts`)."""
    found: dict[str, Instrument] = {}
    instruments = {k: entry.instrument for k, entry in catalog.items()}
    for symbol in bot.symbols:
        key = instrument_key(bot.market, symbol)
        entry = catalog.get(key)
        if entry is not None:
            found[key] = entry.instrument
            continue
        perpetual = perpetual_instrument(key, instruments)
        if perpetual is None:
            known = sorted(k.split(":", 1)[1] for k in [*catalog, *PERPETUALS]
                           if k.startswith(f"{bot.market}:"))
            raise ConfigError(f"bot {bot.name}: {symbol!r} is not an instrument the sandbox "
                              f"knows on {bot.market} (known: {', '.join(known)}); add it under "
                              "sandbox.instruments")
        found[key] = perpetual
    return found


def bot_contracts(bot: BotSettings, catalog: Mapping[str, SandboxInstrument],
                  contracts: ContractSource | None) -> tuple[dict[str, Instrument], dict[str, str]]:
    """The bot's instruments now, and for a front-month futures bot which underlying each
    contract rolls (`contract: front_future`: the venue names today's front contract)."""
    if bot.contract != "front_future":
        return bot_instruments(bot, catalog), {}
    if contracts is None:
        raise ConfigError(f"bot {bot.name}: its venue lists no futures curve, so it cannot "
                          "trade a front-month future; use contract: listed")
    found: dict[str, Instrument] = {}
    rolls: dict[str, str] = {}
    for symbol in bot.symbols:
        front = contracts.front_future(bot.market, symbol)
        found[front.instrument.key] = front.instrument
        rolls[front.instrument.key] = symbol
    return found, rolls


def front_future_spec(bot: BotSettings, symbol: str, rules: Mapping[str, ContractRules],
                      catalog: Mapping[str, SandboxInstrument]) -> Instrument:
    """What any month of `symbol`'s future trades in (lot, tick, market, currency), without
    asking a venue which month is the front: a learning bot trains on it."""
    found = rules.get(symbol)
    if found is None or not found.futures_listed or found.exchange != bot.market:
        raise ConfigError(f"bot {bot.name}: the sandbox lists no {bot.market} futures on "
                          f"{symbol!r}")
    spot = catalog[found.spot].instrument
    return Instrument(f"{symbol}FUT", found.exchange, AssetClass.DERIVATIVE,
                      market(found.exchange).currency, FUTURE_TICK, Decimal(found.lot_size),
                      spot.calendar)


def validate_instruments(config: FleetConfig,
                         rules: Mapping[str, ContractRules] | None = None) -> None:
    """Sandbox bots' symbols against the catalog, the perpetuals and (front-month futures
    bots) the contract rules; exchange bots' are checked against the exchange's markets
    when they connect."""
    catalog = sandbox_catalog(config)
    known_rules = load_contract_rules() if rules is None else rules
    for bot in config.bots:
        if bot.exchange is not None:
            continue
        if bot.contract != "front_future":
            bot_instruments(bot, catalog)
            continue
        for symbol in bot.symbols:
            found = known_rules.get(symbol)
            if found is None or not found.futures_listed or found.exchange != bot.market:
                listed = sorted(r.root for r in known_rules.values()
                                if r.futures_listed and r.exchange == bot.market)
                raise ConfigError(f"bot {bot.name}: the sandbox lists no {bot.market} futures "
                                  f"on {symbol!r} (it does on: {', '.join(listed) or 'none'})")


def bot_limits(config: FleetConfig, bot: BotSettings) -> RiskLimits:
    base = config.risk
    over = bot.risk
    return RiskLimits(
        max_order_value_usd=over.max_order_value_usd or base.max_order_value_usd,
        max_position_value_usd=over.max_position_value_usd or base.max_position_value_usd,
        price_collar_pct=over.price_collar_pct or base.price_collar_pct,
        max_price_age_s=over.max_price_age_s or base.max_price_age_s,
        daily_loss_limit_usd=over.daily_loss_limit_usd or base.daily_loss_limit_usd,
        fleet_daily_loss_limit_usd=config.fleet_risk.daily_loss_limit_usd,
        fill_price_tolerance_pct=(over.fill_price_tolerance_pct
                                  or base.fill_price_tolerance_pct),
        max_fee_pct=base.max_fee_pct if over.max_fee_pct is None else over.max_fee_pct,
    )


def usd_per_unit(config: FleetConfig, currency: str) -> Decimal:
    try:
        return config.fx_usd[currency]
    except KeyError:
        raise ConfigError(f"fx_usd has no rate for {currency}: add `{currency}: <USD per unit>` "
                          "under fx_usd") from None


def bot_currency(bot: BotSettings) -> str:
    """What the bot's P&L is counted in: its market's currency, or its symbols' quote."""
    return bot.quote_currency or market(bot.market).currency


def bot_sizing(config: FleetConfig, bot: BotSettings) -> Sizing:
    d = config.defaults
    currency = bot_currency(bot)
    return Sizing(
        position_size_usd=bot.position_size_usd or d.position_size_usd,
        usd_per_unit=usd_per_unit(config, currency),
        allow_short=d.allow_short if bot.allow_short is None else bot.allow_short,
        order_type=bot.order_type or d.order_type,
        limit_offset_bps=(d.limit_offset_bps if bot.limit_offset_bps is None
                          else bot.limit_offset_bps),
    )


def bar_interval_s(config: FleetConfig, bot: BotSettings) -> int:
    return interval_seconds(bot.bar_interval or config.defaults.bar_interval)


def bot_identity(bot: BotSettings, bot_id: int) -> BotIdentity:
    return BotIdentity(bot_id, bot.name, bot.market, bot_currency(bot))


def describe_bot(config: FleetConfig, bot: BotSettings) -> dict[str, object]:
    """What `fleet status` and the dashboard show about a bot's setup (no secrets here)."""
    return {"symbols": bot.symbols, "params": bot.params,
            "bar_interval": bot.bar_interval or config.defaults.bar_interval,
            "position_size_usd": str(bot.position_size_usd or config.defaults.position_size_usd),
            "exits": (bot.exits or config.defaults.exits).model_dump(mode="json",
                                                                      exclude_none=True),
            "mode": bot.mode, "exchange": bot.exchange}


def bot_recipe(config: FleetConfig, settings: BotSettings, bot_id: int,
               instruments: Mapping[str, Instrument],
               rolls: Mapping[str, str] | None = None) -> BotRecipe:
    """What the config says this bot is (engine.assembly builds it, wherever it runs)."""
    checks = config.reconcile
    currencies = ({k: i.currency for k, i in instruments.items()} if checks.compare_cash
                  else {})
    cash = {c: checks.cash_tolerance_usd / usd_per_unit(config, c)
            for c in set(currencies.values())}
    params = spec(settings.strategy).validate(settings.params).model_dump(mode="json")
    return BotRecipe(bot_identity(settings, bot_id), dict(instruments), settings.strategy,
                     params, bot_sizing(config, settings),
                     bot_limits(config, settings), bar_interval_s(config, settings),
                     config.fx_usd, Tolerances(checks.average_price_tolerance_pct, cash),
                     currencies, bot_exits(config, settings),
                     {k: settings.signal for k in instruments} if settings.signal else {},
                     dict(rolls or {}))


def bot_exits(config: FleetConfig, bot: BotSettings) -> ExitRules:
    chosen = bot.exits or config.defaults.exits
    return ExitRules(**chosen.model_dump())


def build_bot(config: FleetConfig, settings: BotSettings, bot_id: int, ledger: Ledger,
              broker: Broker, market_data: MarketData, clock: Clock,
              instruments: Mapping[str, Instrument], *, record_signals: bool = True,
              rolls: Mapping[str, str] | None = None) -> AssembledBot:
    return assemble_bot(bot_recipe(config, settings, bot_id, instruments, rolls), ledger, broker,
                        market_data, clock, record_signals=record_signals,
                        unknown_after_s=config.runtime.unknown_order_grace_s)


def order_sync(config: FleetConfig, settings: BotSettings, bot_id: int, ledger: Ledger,
               broker: Broker, clock: Clock, instruments: Mapping[str, Instrument], *,
               unknown_after_s: float | None = None,
               rolls: Mapping[str, str] | None = None) -> OrderSync:
    """The bot's reconciliation with its broker, with the config's checks and tolerances."""
    grace = config.runtime.unknown_order_grace_s if unknown_after_s is None else unknown_after_s
    return engine_order_sync(bot_recipe(config, settings, bot_id, instruments, rolls), ledger,
                             broker, clock, unknown_after_s=grace)


def database_url(loaded: LoadedConfig, override: str | None = None) -> str:
    """--db, else FLEET_DB_URL (with FLEET_DB_PASSWORD_FILE, if set), else the config (with
    its password file), else SQLite. The password file lets each bot's unit or container
    connect as its own role (docs/isolation.md) without a password in its environment."""
    if override:
        return override
    from_env = os.environ.get("FLEET_DB_URL")
    if from_env:
        return _with_password(from_env, os.environ.get("FLEET_DB_PASSWORD_FILE"),
                              "FLEET_DB_PASSWORD_FILE")
    settings = loaded.config.database
    if settings.url:
        _require_role_url(os.environ.get("FLEET_DB_PASSWORD_FILE"))
        return _with_password(settings.url, settings.password_file)
    return f"sqlite:///{loaded.home / 'fleet.db'}"


def _require_role_url(role_password_file: str | None) -> None:
    """A role's password without the URL naming the role: an env file that lost (or never
    had) its FLEET_DB_URL line. Falling back to database.url would connect as the owner and
    quietly void the bot's isolation, so stop. (On SQLite there are no roles: generated
    units set the file anyway and it is ignored.)"""
    if role_password_file:
        raise ConfigError("FLEET_DB_PASSWORD_FILE is set but FLEET_DB_URL is not: the file "
                          "holds the password of the role FLEET_DB_URL names — set it (e.g. "
                          "postgresql://fleet_bot_NAME@HOST:5432/fleet, docs/isolation.md) "
                          "rather than connect as database.url's user")


def market_data_url(loaded: LoadedConfig, fleet_url: str, override: str | None = None) -> str:
    """Where the market_data schema branch lives: --market-data-db, else
    FLEET_MARKET_DATA_DB_URL, else database.market_data.url (with its password file), else
    the fleet database at `fleet_url`. Open it with
    `open_database(url, branches=migrate.COLLECTOR_BRANCHES)`."""
    if override:
        return override
    from_env = os.environ.get(MARKET_DATA_DB_URL_ENV)
    if from_env:
        return from_env
    settings = loaded.config.database.market_data
    if settings.url:
        return _with_password(settings.url, settings.password_file,
                              "database.market_data.password_file")
    return fleet_url


def sandbox_database_url(loaded: LoadedConfig) -> str:
    return loaded.config.sandbox.database_url or f"sqlite:///{loaded.home / 'sandbox.db'}"


def _with_password(url: str, password_file: str | None,
                   what: str = "database.password_file") -> str:
    if not password_file:
        return url
    try:
        password = Path(password_file).expanduser().read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"{what} {password_file}: {exc.strerror}") from None
    from sqlalchemy.engine import make_url

    return make_url(url).set(password=password).render_as_string(hide_password=False)
