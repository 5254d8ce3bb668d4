"""Which broker adapter a bot trades through: the one place that looks at a bot's mode.

    sandbox  the sandbox service over loopback HTTP (invented prices, zero credentials)
    paper    an exchange's real public prices, orders filled by the sandbox's matching in a
             durable book of the bot's own (home/paper/<bot>.db)
    live     real orders on the exchange through ccxt (testnet when the exchange says so)

Everything downstream — engine, rails, ledger, reconciliation — is identical (law 4); a test
(tests/unit/test_one_engine.py) keeps mode checks out of every other module.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

from fleetkit.brokers.ccxt.broker import CcxtBroker, venue_instrument
from fleetkit.brokers.ccxt.credentials import CredentialSources
from fleetkit.brokers.ccxt.prices import CcxtPrices
from fleetkit.brokers.ccxt.venue import CcxtVenue, VenueSpec
from fleetkit.config.loader import LoadedConfig
from fleetkit.config.models import BotSettings, ExchangeSettings, FleetConfig
from fleetkit.core.errors import ConfigError
from fleetkit.core.instruments import Instrument, instrument_key
from fleetkit.engine.ports import Clock
from fleetkit.runtime.clock import WallClock
from fleetkit.runtime.runner import BrokerConnection
from fleetkit.runtime.sandbox_client import sandbox_connection_factory

LIVE_CONFIRM_ENV = "FLEET_LIVE_CONFIRM"


def connection_factory(loaded: LoadedConfig, clock: Clock | None = None
                       ) -> Callable[[BotSettings], BrokerConnection]:
    config = loaded.config
    sandbox = sandbox_connection_factory(config)
    wall = clock or WallClock()

    def connect(settings: BotSettings) -> BrokerConnection:
        if settings.mode == "sandbox":
            return sandbox(settings)
        venue_settings = config.exchanges[str(settings.exchange)]
        if settings.mode == "live":
            check_live_allowed(config, settings, venue_settings)
            return live_connection(config, settings, venue_settings, wall)
        return paper_connection(loaded, settings, venue_settings, wall)

    return connect


def prices_invented(settings: BotSettings) -> bool:
    """Whether the bot trades at the sandbox, whose history the sandbox can invent for any
    past window (what a learning bot trains on when the bar store holds too little)."""
    return settings.mode == "sandbox"


def trading_costs(config: FleetConfig, settings: BotSettings) -> tuple[Decimal, Decimal]:
    """The fee and slippage (bps) the bot's venue charges: the sandbox's, or paper
    trading's simulated ones (a live exchange's fills are priced like paper's)."""
    costs = config.sandbox if settings.mode == "sandbox" else config.paper
    return costs.fee_bps, costs.slippage_bps


def check_live_allowed(config: FleetConfig, settings: BotSettings,
                       venue: ExchangeSettings) -> None:
    """Real money needs two opt-ins: `live.enabled: true` in the config and the bot's name
    in FLEET_LIVE_CONFIRM. A testnet is not real money and needs neither."""
    if venue.testnet:
        return
    if not config.live.enabled:
        raise ConfigError(f"bot {settings.name} is live on {settings.exchange}, a real-money "
                          "exchange, but live.enabled is false: set it to true to allow "
                          "real orders (or testnet: true to rehearse)")
    confirmed = {n.strip() for n in os.environ.get(LIVE_CONFIRM_ENV, "").split(",")}
    if settings.name not in confirmed:
        raise ConfigError(f"bot {settings.name} would trade real money: confirm with "
                          f"{LIVE_CONFIRM_ENV}={settings.name} in its environment")


def venue_spec(name: str, settings: ExchangeSettings) -> VenueSpec:
    c = settings.credentials
    return VenueSpec(
        name=name, ccxt_id=settings.ccxt_id, testnet=settings.testnet,
        api_base_url=settings.api_base_url, timeout_s=settings.timeout_s,
        options=dict(settings.options),
        credentials=CredentialSources(c.api_key_env, c.secret_env, c.password_env,
                                      c.api_key_file, c.secret_file, c.password_file),
        reserved=dict(settings.reserved), refresh_every_s=settings.refresh_credentials_every_s,
        rate_limit=settings.rate_limit)


def exchange_instruments(venue: CcxtVenue, settings: BotSettings) -> dict[str, Instrument]:
    return {instrument_key(settings.market, symbol): venue_instrument(venue, settings.market,
                                                                      symbol)
            for symbol in settings.symbols}


def live_connection(config: FleetConfig, settings: BotSettings, venue_settings: ExchangeSettings,
                    clock: Clock) -> BrokerConnection:
    spec = venue_spec(str(settings.exchange), venue_settings)
    venue = CcxtVenue(spec, private=True)
    instruments = exchange_instruments(venue, settings)
    broker = CcxtBroker(venue, instruments, clock)
    return BrokerConnection(broker, broker, instruments=instruments,
                            refresh=venue.refresh_credentials,
                            refresh_every_s=spec.refresh_every_s)


def paper_connection(loaded: LoadedConfig, settings: BotSettings,
                     venue_settings: ExchangeSettings, clock: Clock) -> BrokerConnection:
    from fleetkit.brokers.sandbox.broker import SandboxBroker
    from fleetkit.brokers.sandbox.config import VenueConfig
    from fleetkit.brokers.sandbox.sqlbook import SqlBook
    from fleetkit.brokers.sandbox.venue import SandboxVenue

    spec = venue_spec(str(settings.exchange), venue_settings)
    venue = CcxtVenue(spec, private=False)  # public market data only: no credentials
    instruments = exchange_instruments(venue, settings)
    paper = loaded.config.paper
    quote = str(settings.quote_currency)
    book = SqlBook(paper_book_url(loaded.home, settings.name))
    simulator = SandboxVenue(
        CcxtPrices(venue, instruments, clock), book, clock,
        VenueConfig(seed=0, fee_bps=paper.fee_bps, slippage_bps=paper.slippage_bps,
                    partial_fill_probability=0.0, initial_cash={quote: paper.starting_cash},
                    allow_short=False, time_mode="real"))
    broker = SandboxBroker(simulator, settings.name)
    return BrokerConnection(broker, broker, book.close, instruments=instruments)


def paper_book_url(home: Path, bot_name: str) -> str:
    folder = home / "paper"
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / f'{bot_name}.db'}"
