"""The fast path: the engine path's arithmetic in floats over precomputed numpy columns,
for training throughput. Every rule it follows is the engine's, restated:

    trader   a level acts only when it differs from the last one acted on (HOLD never);
             target = level/3 x position size at the decision bar's close, in whole lots
             toward zero; sells clip to flat unless the sizing allows shorting
    rails    max order value and max position (at the worse of the order's price and the
             quote), the price collar; the kill switches and the daily-loss rail are
             reached only through the breaker below (a tripped breaker ends the episode)
    venue    fills whole at the next bar's open moved by slippage and rounded to the tick
             against the taker, fee rounded up to 1e-8; no cash or (short-less venue)
             no position: rejected
    ledger   average-cost accounting; a fill too far from its reference price, or with
             an implausible fee, is refused and halts the bot
    brakes   marked at each next close; today's P&L from the UTC day's start; the bot's and
             the fleet's daily-loss breakers halt it

A test (tests/unit/ml/test_fast_equals_engine.py) holds it to the engine path: the same
positions exactly and the same rewards to 1e-9 over whole episodes. It models market
orders without protective exits; a recipe with either is refused.
"""

from __future__ import annotations

import math
from decimal import Decimal

import numpy as np
import numpy.typing as npt

from fleetkit.backtest.tape import BarTape
from fleetkit.brokers.sandbox.config import VenueConfig
from fleetkit.brokers.sandbox.matching import taker_price
from fleetkit.core.numbers import to_decimal
from fleetkit.core.orders import OrderType, Side
from fleetkit.core.signals import Signal, SignalLevel
from fleetkit.engine.assembly import BotRecipe
from fleetkit.engine.trader import Trader
from fleetkit.ml.prices import NextOpenPrices
from fleetkit.ml.sim import StepOutcome, environment_venue, single_instrument

FloatArray = npt.NDArray[np.float64]
_DAY_S = 86_400
# A lot count this close to a whole number may have been rounded across it by the float
# division: it is sized again exactly, in Decimal, by the trader itself.
_NEAR_WHOLE = 1e-6
_FEE_STEPS = 1e8  # fees round up to 1e-8 (brokers.sandbox.matching.FEE_STEP)


class FastSim:
    def __init__(self, recipe: BotRecipe, venue: VenueConfig, tape: BarTape,
                 prices: NextOpenPrices) -> None:
        key = single_instrument(recipe, tape)
        if recipe.exits.active:
            raise ValueError("the fast path does not model protective exits; train this bot "
                             "with TradingEnv (the engine path)")
        if recipe.sizing.order_type is not OrderType.MARKET:
            raise ValueError("the fast path models market orders only; train this bot with "
                             "TradingEnv (the engine path)")
        config = environment_venue(venue, tape.interval_s)
        instrument = recipe.instruments[key]
        self._instrument = instrument
        self._trader = Trader(instrument, recipe.sizing)
        self._raw_close = tape.close.tolist()
        sizing, limits = recipe.sizing, recipe.limits
        lot = instrument.lot_size
        self._lot = float(lot)
        self._smallest_lots = float(instrument.smallest_quantity / lot)
        self._allow_short = sizing.allow_short
        # Lots of a full position at each close: level/3 of it is a level's target.
        self._lots_per_third = (float(sizing.position_size_usd)
                                / (3.0 * float(sizing.usd_per_unit) * tape.close * self._lot))
        self._close = np.array([float(p) for p in prices.close])
        tick, slip = instrument.tick_size, config.slippage_bps
        self._buy = [float(taker_price(p, Side.BUY, slip, tick)) for p in prices.open]
        self._sell = [float(taker_price(p, Side.SELL, slip, tick)) for p in prices.open]
        self._open = [float(p) for p in prices.open]
        self._reference = [float(instrument.round_price(to_decimal(c)))
                           for c in self._raw_close]
        self._ends = (tape.ts_s + tape.interval_s).tolist()
        self._usd = float(recipe.usd_per_unit)
        self._fee_rate = float(config.fee_bps) / 10_000
        self._cash0 = float(config.initial_cash_in(instrument.currency))
        self._venue_shorts = config.allow_short
        self._max_order = float(limits.max_order_value_usd)
        self._max_position = float(limits.max_position_value_usd)
        self._collar = float(limits.price_collar_pct)
        self._fill_tolerance = float(limits.fill_checks.market_price_tolerance_pct)
        self._max_fee = float(limits.max_fee_pct) / 100
        self._bot_limit = _float(limits.daily_loss_limit_usd)
        self._fleet_limit = _float(limits.fleet_daily_loss_limit_usd)
        self.start(0)

    def start(self, row: int) -> None:
        self._lots = 0
        self._average = self._realized = self._fees = 0.0
        self._cash = self._cash0
        self._last_level: int | None = None
        self._day: int | None = None
        self._day_start = self._last_net = 0.0
        self._halt = ""

    def act(self, row: int, level: SignalLevel) -> StepOutcome:
        if self._halt:
            return self._outcome(row + 1, 0, math.nan, 0.0, 0.0)
        fill = None
        if level != 0 and level != self._last_level:
            self._last_level = int(level)
            fill = self._order(row, int(level))
        fills, price, fee, slippage = 0, math.nan, 0.0, 0.0
        if fill is not None:
            fills, price, fee = 1, fill[0], fill[1]
            slippage = abs(price - self._open[row + 1]) * abs(fill[2]) * self._lot
        self._mark(row + 1)
        return self._outcome(row + 1, fills, price, fee, slippage)

    # --- one order: trader, rails, venue, ledger -----------------------------------------

    def _target_lots(self, row: int, level: int) -> int:
        if level < 0 and not self._allow_short:
            return 0
        lots = level * float(self._lots_per_third[row])
        if abs(lots - round(lots)) >= _NEAR_WHOLE:
            return math.trunc(lots)
        exact = self._trader.target_for(Signal.at(SignalLevel(level)),
                                        to_decimal(self._raw_close[row]))
        return int((exact or Decimal(0)) / self._instrument.lot_size)

    def _order(self, row: int, level: int) -> tuple[float, float, int] | None:
        """The order for `level` at `row`'s close, if one fills: (price, fee, signed lots)."""
        delta = self._target_lots(row, level) - self._lots
        if abs(delta) < self._smallest_lots or not self._rails_allow(row, delta):
            return None
        quantity = abs(delta) * self._lot
        price = self._buy[row + 1] if delta > 0 else self._sell[row + 1]
        notional = quantity * price
        fee = math.ceil(notional * self._fee_rate * _FEE_STEPS - 1e-6) / _FEE_STEPS
        if delta > 0 and notional + fee > self._cash:
            return None  # the venue: insufficient cash
        if delta < 0 and not self._venue_shorts and -delta > self._lots:
            return None  # the venue: nothing to sell short with
        self._cash += -(notional + fee) if delta > 0 else notional - fee
        reference = self._reference[row]
        if (abs(price - reference) / reference * 100 > self._fill_tolerance
                or fee > notional * self._max_fee):
            self._halt = "refused broker fill: out of the fill checks"
            return None
        self._apply(delta, price, fee)
        return price, fee, delta

    def _rails_allow(self, row: int, delta: int) -> bool:
        reference, last = self._reference[row], float(self._close[row])
        if abs(reference - last) / last * 100 > self._collar:
            return False
        worst = max(reference, last) * self._usd
        if abs(delta) * self._lot * worst > self._max_order:
            return False
        after = self._lots + delta
        return abs(after) <= abs(self._lots) or abs(after) * self._lot * worst <= self._max_position

    def _apply(self, delta: int, price: float, fee: float) -> None:
        """core.ledger.apply_fill in floats: adds at average cost, reduces realizing P&L."""
        lots, lot = self._lots, self._lot
        self._fees += fee
        after = lots + delta
        if lots == 0 or (lots > 0) == (delta > 0):
            self._average = (self._average * abs(lots) + price * abs(delta)) / abs(after)
        else:
            closing = min(abs(delta), abs(lots)) * lot
            self._realized += (price - self._average) * closing * (1 if lots > 0 else -1)
            if after == 0:
                self._average = 0.0
            elif (after > 0) != (lots > 0):
                self._average = price  # flipped: the rest opened at this fill
        self._lots = after

    # --- the brakes ------------------------------------------------------------------------

    def _net(self, row: int) -> float:
        quantity = self._lots * self._lot
        unrealized = quantity * (float(self._close[row]) - self._average) if self._lots else 0.0
        return self._realized + unrealized - self._fees

    def _mark(self, row: int) -> None:
        """store.memory's mark and the brakes' breakers at `row`'s close."""
        net = self._net(row)
        day = int(self._ends[row]) // _DAY_S
        if self._day is None:
            self._day_start = 0.0
        elif self._day != day:
            self._day_start = self._last_net
        self._day, self._last_net = day, net
        daily_usd = (net - self._day_start) * self._usd
        for limit, who in ((self._fleet_limit, "fleet"), (self._bot_limit, "bot")):
            if limit is not None and daily_usd <= -limit:
                self._halt = f"{who} daily loss ${-daily_usd:,.2f} reached the limit"
                return

    def _outcome(self, row: int, fills: int, price: float, fee: float,
                 slippage: float) -> StepOutcome:
        # The quantity as the ledger's Decimal gives it (0.172, not 172 x 0.001 in floats).
        quantity = float(self._instrument.lot_size * self._lots)
        return StepOutcome(quantity, self._average, self._net(row), fills, price, fee, slippage,
                           self._halt)


def _float(value: Decimal | None) -> float | None:
    return None if value is None else float(value)
