"""A bot in live and paper mode as a user runs it: config YAML, credentials in environment
variables, the real BotRunner and adapter selection, a fake Binance on loopback.

Covers the live guard rails (two opt-ins for real money, testnet needs neither), boot
reconciliation that must be clean before anything is sent, the mode in `fleet status`,
credentials that never reach logs, the database or --json, the credential refresh hook
that halts and recovers, and paper mode: real public prices, simulated fills, zero orders
at the exchange.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import MetaData, select

from fleetkit.cli.app import main
from fleetkit.config.loader import LoadedConfig, parse_config
from fleetkit.core.controls import HaltSource, TradingState
from fleetkit.core.errors import ConfigError
from fleetkit.runtime.connections import LIVE_CONFIRM_ENV, connection_factory
from fleetkit.runtime.runner import BotRunner
from fleetkit.store.fleet import FleetStore
from fleetkit.store.ledger import SqlLedger
from fleetkit.testing.fake_exchange import FakeExchange, FakeExchangeServer, FakeMarket
from tests.support import DiesAfterSending, Killed, migrated_database

KEY = "live-key-4d1f0b22c9"
SECRET = "live-secret-NEVER-LOGGED-77aa31"
BTCUSDT = FakeMarket("BTCUSDT", "BTC", "USDT", tick_size=Decimal("0.01"),
                     step_size=Decimal("0.00001"), min_qty=Decimal("0.00001"),
                     min_notional=Decimal("5"))


def config_text(url: str, *, testnet: bool = True, mode: str = "live",
                live_enabled: bool = False, extra: str = "") -> str:
    return f"""
live: {{enabled: {str(live_enabled).lower()}}}
exchanges:
  fake:
    ccxt_id: binance
    testnet: {str(testnet).lower()}
    api_base_url: {url}
    rate_limit: false
    credentials: {{api_key_env: FAKE_KEY, secret_env: FAKE_SECRET}}
    {extra}
defaults: {{position_size_usd: 1000}}
bots:
  - {{name: btc, market: CRYPTO, symbols: [BTC/USDT], strategy: buy_and_hold, mode: {mode},
     exchange: fake}}
"""


@dataclass
class Setup:
    exchange: FakeExchange
    url: str
    tmp: Path
    db_url: str
    database: Any

    def loaded(self, **options: Any) -> LoadedConfig:
        text = config_text(self.url, **options)
        return LoadedConfig(parse_config(text, "live.yaml"), str(self.tmp / "live.yaml"),
                            self.tmp)

    def runner(self, **options: Any) -> BotRunner:
        loaded = self.loaded(**options)
        return BotRunner(loaded, "btc", self.db_url, connection_factory(loaded))

    def controls(self) -> Any:
        bot_id = FleetStore(self.database.engine).bot("btc").id
        return SqlLedger(self.database.engine, self.database.fleet_tag()).controls(bot_id).bot


@pytest.fixture
def setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Setup]:
    monkeypatch.setenv("FAKE_KEY", KEY)
    monkeypatch.setenv("FAKE_SECRET", SECRET)
    prices = FakeExchange.fixed_prices({"BTCUSDT": Decimal("60000")})
    exchange = FakeExchange([BTCUSDT], prices, api_key=KEY, api_secret=SECRET,
                            balances={"USDT": Decimal(50_000)})
    db_url = f"sqlite:///{tmp_path / 'fleet.db'}"
    database = migrated_database(db_url)
    with FakeExchangeServer(exchange) as server:
        yield Setup(exchange, server.url, tmp_path, db_url, database)
        assert server.api.unrouted == [] and exchange.internal_errors == []
    database.dispose()


def test_a_testnet_bot_reconciles_then_trades_with_our_client_id(setup: Setup) -> None:
    runner = setup.runner()
    runner.boot()
    runner.step()
    runner.shutdown()

    (order,) = setup.exchange.orders()
    assert order.client_order_id.startswith("fk")
    assert setup.exchange.duplicate_submissions == 0
    bot_id = FleetStore(setup.database.engine).bot("btc").id
    ledger = SqlLedger(setup.database.engine, setup.database.fleet_tag())
    held = ledger.positions(bot_id)["CRYPTO:BTC/USDT"].quantity
    assert held == Decimal("0.01666")  # 1000 USDT at 60000, on the venue's step


def test_real_money_needs_the_config_opt_in_and_the_environment_confirmation(
        setup: Setup, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match=r"live\.enabled is false"):
        setup.runner(testnet=False).boot()
    monkeypatch.delenv(LIVE_CONFIRM_ENV, raising=False)
    with pytest.raises(ConfigError, match=f"{LIVE_CONFIRM_ENV}=btc"):
        setup.runner(testnet=False, live_enabled=True).boot()
    monkeypatch.setenv(LIVE_CONFIRM_ENV, "other-bot, btc")
    runner = setup.runner(testnet=False, live_enabled=True)
    runner.boot()
    runner.shutdown()
    assert setup.exchange.orders() == []  # booting sends nothing


def test_a_dirty_boot_reconciliation_halts_before_any_order(setup: Setup) -> None:
    # Somebody moved BTC into the account by hand: the balance is not the ledger's.
    setup.exchange.deposit("BTC", Decimal("0.5"))
    runner = setup.runner()
    runner.boot()
    runner.step()
    runner.shutdown()

    control = setup.controls()
    assert control.state is TradingState.HALTED
    assert control.source is HaltSource.RECONCILIATION
    assert setup.exchange.submissions == []

    # Reserving what is not the bot's makes it clean; resume is then allowed.
    runner = setup.runner(extra="reserved: {BTC: 0.5}")
    runner.boot()
    runner.shutdown()
    assert main(["resume", "btc", "--config", str(_write(setup, extra="reserved: {BTC: 0.5}")),
                 "--db", setup.db_url]) == 0


def test_status_shows_the_mode_and_nothing_secret_leaks_anywhere(
        setup: Setup, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
        ) -> None:
    caplog.set_level(logging.DEBUG)
    runner = setup.runner()
    runner.boot()
    runner.step()
    runner.shutdown()
    config = _write(setup)
    assert main(["status", "--json", "--config", str(config), "--db", setup.db_url]) == 0
    shown = capsys.readouterr()
    (bot,) = json.loads(shown.out)["bots"]
    assert bot["mode"] == "live"
    everything = shown.out + shown.err + caplog.text + _dump(setup.database)
    assert SECRET not in everything and KEY not in everything


def test_a_failed_credential_refresh_halts_and_a_good_one_lifts_the_halt(
        setup: Setup, monkeypatch: pytest.MonkeyPatch) -> None:
    runner = setup.runner(extra="refresh_credentials_every_s: 60")
    sleeps: list[float] = []

    def sleep(seconds: float) -> bool:
        sleeps.append(seconds)
        if len(sleeps) == 2:
            monkeypatch.setenv("FAKE_SECRET", SECRET)  # the operator fixed it
        return False

    runner._sleep = sleep
    runner.boot()
    monkeypatch.setenv("FAKE_SECRET", "rotated-and-wrong")
    runner._next_refresh = runner.clock.now()
    runner.step()
    events = _events(setup.database)
    assert "broker.credentials" in events and "broker.credentials_ok" in events
    assert setup.controls().state is TradingState.ACTIVE
    assert len(sleeps) >= 2
    runner.shutdown()


def test_paper_mode_fills_on_real_prices_and_sends_nothing_to_the_exchange(
        setup: Setup, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FAKE_KEY")
    monkeypatch.delenv("FAKE_SECRET")  # paper needs no credentials at all
    runner = setup.runner(mode="paper")
    runner.boot()
    runner.step()
    runner.shutdown()

    assert setup.exchange.submissions == []
    bot_id = FleetStore(setup.database.engine).bot("btc").id
    ledger = SqlLedger(setup.database.engine, setup.database.fleet_tag())
    held = ledger.positions(bot_id)["CRYPTO:BTC/USDT"]
    assert held.quantity == Decimal("0.01666")
    assert Decimal(59_000) < held.average_price < Decimal(61_000)  # the exchange's price
    assert (setup.tmp / "paper" / "btc.db").is_file()

    again = setup.runner(mode="paper")  # a restart continues on the same paper book
    again.boot()
    again.shutdown()
    assert setup.controls().state is TradingState.ACTIVE


def _write(setup: Setup, **options: Any) -> Path:
    path = setup.tmp / "live.yaml"
    path.write_text(config_text(setup.url, **options), encoding="utf-8")
    return path


def _dump(database: Any) -> str:
    meta = MetaData()
    meta.reflect(database.engine)
    with database.engine.connect() as conn:
        return "\n".join(str(row) for table in meta.sorted_tables
                         for row in conn.execute(select(table)))


def _events(database: Any) -> list[str]:
    from fleetkit.store.schema import events

    with database.engine.connect() as conn:
        return [r.kind for r in conn.execute(select(events.c.kind))]


def test_a_live_bot_killed_after_sending_finds_its_order_by_client_id_on_restart(
        setup: Setup) -> None:
    loaded = setup.loaded()
    real = connection_factory(loaded)

    def dies(settings: Any) -> Any:
        connection = real(settings)
        connection.broker = DiesAfterSending(connection.broker)
        return connection

    doomed = BotRunner(loaded, "btc", setup.db_url, dies)
    doomed.boot()
    with pytest.raises(Killed):
        doomed.step()
    doomed.database.dispose()  # what the OS does for a killed process

    restarted = BotRunner(loaded, "btc", setup.db_url, connection_factory(loaded))
    restarted.boot()  # settles the unanswered order by lookup: it is at the exchange
    restarted.step()
    restarted.shutdown()

    assert len(setup.exchange.orders()) == 1 and setup.exchange.duplicate_submissions == 0
    bot_id = FleetStore(setup.database.engine).bot("btc").id
    ledger = SqlLedger(setup.database.engine, setup.database.fleet_tag())
    assert ledger.positions(bot_id)["CRYPTO:BTC/USDT"].quantity == Decimal("0.01666")
    assert setup.controls().state is TradingState.ACTIVE


def test_exchange_check_shows_the_grid_and_proves_the_credentials(
        setup: Setup, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    config = str(_write(setup))
    assert main(["exchange", "check", "fake", "--config", config, "--json"]) == 0
    checked = json.loads(capsys.readouterr().out)
    assert checked["authenticated"] and checked["balances"] == {"USDT": "50000"}
    (btc,) = checked["symbols"]
    assert (btc["symbol"], btc["bots"], btc["last_price"], btc["step_size"]) == (
        "BTC/USDT", ["btc"], "60000", "0.00001")

    assert main(["exchange", "check", "fake", "--config", config]) == 0
    assert "credentials accepted" in capsys.readouterr().out

    monkeypatch.setenv("FAKE_SECRET", "not-the-secret")
    assert main(["exchange", "check", "fake", "--config", config]) == 2
    err = capsys.readouterr().err
    assert "credentials refused" in err and "not-the-secret" not in err
    assert main(["exchange", "check", "nope", "--config", config]) == 2
    assert "no exchange named 'nope'" in capsys.readouterr().err
