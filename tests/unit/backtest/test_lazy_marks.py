"""Held-back marks (engine.brakes, lazy) decide exactly what marking every cycle decides:
the same orders, fills, halts and final ledger, across tapes and limits that trip the
daily-loss breaker at different moments (and not at all)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from fleetkit.backtest.replay import FleetReplay, ReplayBot
from fleetkit.backtest.tape import generated_tape
from fleetkit.brokers.sandbox.catalog import load_catalog
from fleetkit.brokers.sandbox.config import VenueConfig
from fleetkit.brokers.sandbox.prices import InventedPrices
from fleetkit.calendars.market_calendars import MarketCalendars
from fleetkit.engine.assembly import BotRecipe
from fleetkit.engine.execution import BotIdentity
from fleetkit.engine.trader import Sizing
from fleetkit.risk.rails import RiskLimits

VENUE = VenueConfig(seed=3, fee_bps=Decimal(1), slippage_bps=Decimal(1),
                    partial_fill_probability=0.0)


def outcome(seed: int, key: str, limit: str | None, keep_marks: bool) -> dict[str, Any]:
    catalog = load_catalog()
    instrument = catalog[key].instrument
    tape = generated_tape(InventedPrices(seed, catalog, MarketCalendars()), instrument,
                          datetime(2026, 3, 2, tzinfo=UTC), 900, 300)
    usd = {"USDT": Decimal(1), "USD": Decimal(1), "INR": Decimal("0.0119")}
    limits = RiskLimits(Decimal(10**7), Decimal(10**7), Decimal(5), 600.0,
                        None if limit is None else Decimal(limit), None)
    recipe = BotRecipe(BotIdentity(1, "lazy", instrument.market, instrument.currency),
                       {key: instrument}, "sma_cross", {"fast": 5, "slow": 20},
                       Sizing(Decimal(10_000), usd[instrument.currency]), limits, 300, usd)
    replay = FleetReplay([ReplayBot(recipe, {key: tape})], VENUE, keep_marks=keep_marks)
    replay.run()
    ledger = replay.ledger
    return {
        "orders": [(o.side, o.quantity, o.status, o.filled_quantity) for o in ledger.orders(1)],
        "fills": [(f.side, f.quantity, f.price, f.fee, f.ts) for f in ledger.fills(1)],
        "halts": [(e.at, e.event.message) for e in ledger.events
                  if e.event.kind == "control.halted"],
        "positions": ledger.positions(1),
    }


@pytest.mark.parametrize("seed", [5, 10, 24])
@pytest.mark.parametrize("limit", [None, "60", "150"])
def test_lazy_marks_decide_exactly_as_marking_every_cycle(seed: int, limit: str | None) -> None:
    exact = outcome(seed, "CRYPTO:BTC/USDT", limit, keep_marks=True)
    lazy = outcome(seed, "CRYPTO:BTC/USDT", limit, keep_marks=False)
    assert lazy == exact
    assert exact["fills"]


@pytest.mark.parametrize("limit", ["20", "40"])
def test_a_breaker_trips_at_the_same_bar_with_ticks_of_five_paise(limit: str) -> None:
    """A tick that is not a power of ten (NSE's 0.05): held-back marks judge the price as
    the venue rounds it too."""
    exact = outcome(7, "NSE:RELIANCE", limit, keep_marks=True)
    assert exact["halts"], "the limit must trip"
    assert outcome(7, "NSE:RELIANCE", limit, keep_marks=False) == exact


def test_a_tape_with_no_bars_is_refused_naming_it() -> None:
    key = "CRYPTO:BTC/USDT"
    instrument = load_catalog()[key].instrument
    tape = generated_tape(InventedPrices(5, load_catalog(), MarketCalendars()), instrument,
                          datetime(2026, 3, 2, tzinfo=UTC), 10, 300)
    empty = type(tape)(instrument, 300, tape.ts_s[:0], tape.open[:0], tape.high[:0],
                       tape.low[:0], tape.close[:0], tape.volume[:0])
    recipe = BotRecipe(BotIdentity(1, "empty", "CRYPTO", "USDT"), {key: instrument},
                       "sma_cross", {"fast": 5, "slow": 20}, Sizing(Decimal(10_000), Decimal(1)),
                       RiskLimits(Decimal(10**7), Decimal(10**7), Decimal(5), 600.0, None, None),
                       300, {"USDT": Decimal(1)})
    with pytest.raises(ValueError, match=r"bot empty: no bars for CRYPTO:BTC/USDT in the window"):
        FleetReplay([ReplayBot(recipe, {key: empty})], VENUE)
