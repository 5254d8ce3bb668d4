"""What an environment asks of the bot it trades with, one decision at a time: the engine
path (the assembled bot, `engine_sim`) and the fast path (`fast_sim`) both answer it."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Protocol

from fleetkit.backtest.tape import BarTape
from fleetkit.brokers.sandbox.config import VenueConfig
from fleetkit.core.signals import SignalLevel
from fleetkit.engine.assembly import BotRecipe


@dataclass(frozen=True, slots=True)
class StepOutcome:
    """The bot after one decision, marked at the next bar's close. Money is in the
    instrument's currency; `net` is realized - fees + unrealized (the ledger's net P&L);
    `fees` and `slippage` (the fill's distance from the open it met) are this step's.
    `halt`: why the bot is halted now, "" while it trades."""

    quantity: float
    average_price: float
    net: float
    fills: int = 0
    fill_price: float = math.nan
    fees: float = 0.0
    slippage: float = 0.0
    halt: str = ""


FLAT = StepOutcome(0.0, 0.0, 0.0)


class Simulator(Protocol):
    def start(self, row: int) -> None:
        """A fresh bot (flat, no P&L, switches off) whose first decision is at `row`."""
        ...

    def act(self, row: int, level: SignalLevel) -> StepOutcome:
        """The bot's cycle at bar `row`'s close with the agent saying `level`: its order
        meets bar row+1's open; then it is marked at row+1's close and the breakers run."""
        ...


def environment_venue(venue: VenueConfig, interval_s: int) -> VenueConfig:
    """The venue an environment trades on: whole fills (a partial first fill would rest
    into later bars, which neither path models), and at least a millisecond of latency,
    which is what carries an order placed at a close to the next bar's open."""
    latency_ms = max(venue.latency_ms, 1)
    if latency_ms >= interval_s * 1000:
        raise ValueError(f"a venue latency of {latency_ms} ms would fill an order a bar or "
                         f"more after its decision ({interval_s}s bars)")
    return replace(venue, partial_fill_probability=0.0, latency_ms=latency_ms)


def single_instrument(recipe: BotRecipe, tape: BarTape) -> str:
    """The recipe's one instrument key; ValueError unless the tape is its bars."""
    if len(recipe.instruments) != 1:
        raise ValueError(f"a trading environment trades one instrument; bot "
                         f"{recipe.identity.name} has {len(recipe.instruments)}")
    [key] = recipe.instruments
    if tape.instrument.key != key:
        raise ValueError(f"the tape is {tape.instrument.key}'s bars, the bot trades {key}")
    if tape.interval_s != recipe.interval_s:
        raise ValueError(f"the tape has {tape.interval_s}s bars, the bot trades "
                         f"{recipe.interval_s}s bars")
    return key
