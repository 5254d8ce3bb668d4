"""TradingBot enforces the exits whatever the strategy says, and after one a new position
needs a new signal (a strategy that keeps saying "buy" is not obeyed straight back in)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal

import numpy as np
import pytest

from fleetkit.backtest.replay import FleetReplay, ReplayBot
from fleetkit.backtest.tape import BarTape
from fleetkit.brokers.sandbox.catalog import load_catalog
from fleetkit.brokers.sandbox.config import VenueConfig
from fleetkit.core.market_data import Bar
from fleetkit.core.signals import Signal, SignalLevel
from fleetkit.engine.assembly import BotRecipe
from fleetkit.engine.execution import BotIdentity
from fleetkit.engine.exits import ExitRules
from fleetkit.engine.trader import Sizing
from fleetkit.risk.rails import RiskLimits
from fleetkit.strategy.base import StrategyContext, StrategyParams, register, unregister

KEY = "CRYPTO:BTC/USDT"


class _Params(StrategyParams):
    pass


class _AlwaysLong:
    name = "always_long_in_tests"

    def warmup_bars(self) -> int:
        return 0

    def on_bar(self, bar: Bar, ctx: StrategyContext) -> Signal | None:
        return Signal.at(SignalLevel.STRONG_BUY, "always long")


@pytest.fixture(autouse=True)
def always_long() -> Iterator[None]:
    register("always_long_in_tests", "buy, always", _Params)(lambda p: _AlwaysLong())
    yield
    unregister("always_long_in_tests")


def tape(closes: list[float]) -> BarTape:
    instrument = load_catalog()[KEY].instrument
    start = int(datetime(2026, 1, 5, tzinfo=UTC).timestamp())
    c = np.asarray(closes, dtype=np.float64)
    return BarTape(instrument, 60, np.arange(start, start + 60 * len(c), 60, dtype=np.int64),
                   c, c + 1, c - 1, c, np.ones(len(c)))


def replay(closes: list[float], rules: ExitRules) -> FleetReplay:
    instrument = load_catalog()[KEY].instrument
    recipe = BotRecipe(BotIdentity(1, "exits", "CRYPTO", "USDT"), {KEY: instrument},
                       "always_long_in_tests", {}, Sizing(Decimal(3000), Decimal(1)),
                       RiskLimits(Decimal(10**6), Decimal(10**6), Decimal(50), 600.0, None,
                                  None), 60, {"USDT": Decimal(1)}, exits=rules)
    run = FleetReplay([ReplayBot(recipe, {KEY: tape(closes)})],
                      VenueConfig(fee_bps=Decimal(0), slippage_bps=Decimal(0),
                                  partial_fill_probability=0.0))
    run.run()
    return run


def test_a_trailing_stop_closes_the_position_and_the_same_signal_does_not_reopen_it() -> None:
    run = replay([100, 102, 104, 103, 102.9, 101, 100, 105, 110],
                 ExitRules(trailing_stop_pct=Decimal(1)))
    orders = run.ledger.orders(1)
    assert [o.side.value for o in orders] == ["buy", "sell"]
    assert orders[1].reason == "trailing_stop: close 102.9 <= 102.96 (1% from 104)"
    assert run.ledger.positions(1)[KEY].quantity == 0
    state = run.bots[0].bot.state.of(KEY)
    assert state.last_signal == int(SignalLevel.STRONG_BUY)  # the overruled signal


def test_a_stop_loss_closes_at_market_with_its_reason_on_the_order() -> None:
    run = replay([100, 99, 97, 96], ExitRules(stop_loss_pct=Decimal(2)))
    orders = run.ledger.orders(1)
    assert [(o.side.value, o.order_type.value) for o in orders] == [("buy", "market"),
                                                                   ("sell", "market")]
    assert orders[1].reason == "stop_loss: close 97 <= 98 (2% from 100)"
    assert orders[1].filled_quantity == orders[0].filled_quantity
