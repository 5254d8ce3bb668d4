"""Brakes: what happens around a bot's orders at every bar close, the same live, in a
backtest and in a learning environment.

    check_halt   the kill switches, read fresh; a halt newly seen pulls resting orders too
    mark         positions marked at the cycle's prices, today's P&L recorded, then the
                 daily-loss breakers (bot and fleet) between orders: a breach halts the
                 switch it names, unless that switch is halted already (Ledger.halt)

The rails stop an order that would break a limit; the brakes stop a bot whose marks broke
one while it held still. Nothing here knows where the prices or the ledger live.

Lazy marks (a replay that keeps no P&L history): between fills, within a UTC day, today's
P&L is linear in the marks, so after one exact mark a float estimate says whether a new
mark could reach a breaker at all. When it cannot, the mark is held back instead of
written — and written, exactly as it would have been, before anything reads the ledger's
marks: before an order is admitted (its daily-loss rail), before the first mark of a new
day (which takes the day's start from the last one), or when a fill moves the position.
Decisions are the same as marking every cycle; only marks nobody reads are not written.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from fleetkit.core.controls import HaltSource, TradingState
from fleetkit.core.ledger import FillChecks, Position
from fleetkit.core.market_data import Quote
from fleetkit.engine.execution import BotIdentity
from fleetkit.engine.ports import Broker, Clock, Ledger, PnlSnapshot
from fleetkit.risk.rails import HaltScope, RiskLimits, daily_loss_breach

_DAY_S = 86_400
_HALTED = TradingState.HALTED
_ONE_DAY = timedelta(days=1)
Marks = Mapping[str, Quote]
# The quotes, or what gives them when a mark is written (a replay has float closes at hand
# and makes Decimal quotes only for the marks it writes).
MarksOrThunk = Marks | Callable[[], Marks]
# Float estimates are kept this far (relative, plus a cent) from a limit before a mark is
# skipped: far more than a double's error over any P&L a bot can have.
_RELATIVE_MARGIN = 1e-9
_ABSOLUTE_MARGIN = 0.01
_LossLimits = tuple[float | None, float | None]  # the bot's and the fleet's, as floats


@dataclass(frozen=True, slots=True)
class Breach:
    """A daily-loss breaker that tripped at a mark: which switch, and why."""

    scope: HaltScope
    detail: str


@dataclass(frozen=True, slots=True)
class _Basis:
    """Today's P&L as a linear function of the marks, from the last exact mark, and the UTC
    day it holds for ([day_start, day_end)). Judged once here where the answer is simple:
    `band` (one instrument held) is the open price interval in which no breaker can trip;
    `flat` (nothing held) is the answer itself, as no price moves the estimate."""

    day_start: datetime
    day_end: datetime
    daily_usd: float
    others_usd: float
    slopes: dict[str, tuple[float, float]]  # key -> (quantity * usd per unit, price then)
    band: tuple[str, float, float] | None = None
    flat: bool | None = None


class Brakes:
    def __init__(self, bot: BotIdentity, ledger: Ledger, broker: Broker, clock: Clock,
                 limits: RiskLimits, usd_per_unit: Decimal, fill_checks: FillChecks, *,
                 lazy_marks: bool = False) -> None:
        self._bot = bot
        self._bot_id = bot.id
        self._ledger = ledger
        self._broker = broker
        self._clock = clock
        self._limits = limits
        # The daily-loss limits as floats, for judging estimates (None: no such limit).
        self._loss_limits = (_float_or_none(limits.daily_loss_limit_usd),
                             _float_or_none(limits.fleet_daily_loss_limit_usd))
        self._usd_per_unit = usd_per_unit
        self._fill_checks = fill_checks
        self._was_halted = False
        self._lazy = lazy_marks
        self._basis: _Basis | None = None
        # What the basis is made from, kept by the last exact mark; made into one only when
        # a mark asks (a fill usually moves the position before any does).
        self._basis_from: tuple[PnlSnapshot, Mapping[str, Quote], datetime,
                                Mapping[str, Position]] | None = None
        self._pending: tuple[MarksOrThunk, datetime] | None = None
        self._day: tuple[int, datetime, datetime] | None = None  # a UTC day, its start, end
        self.last_snapshot: PnlSnapshot | None = None

    @property
    def halted(self) -> bool:
        """Whether the last check found trading halted."""
        return self._was_halted

    def check_halt(self) -> bool:
        """Read both switches fresh; a halt not seen before pulls the bot's resting orders
        (a halt is a kill switch, not only a gate for new orders). True while halted."""
        controls = self._ledger.controls(self._bot_id)
        halted = controls.bot.state is _HALTED or controls.fleet.state is _HALTED
        if halted and not self._was_halted:
            self.cancel_resting_orders()
        self._was_halted = halted
        return halted

    def forget_halt(self) -> None:
        """The next check treats any halt as new (after halting from outside the cycle,
        e.g. a strategy error, so its resting orders are pulled too)."""
        self._was_halted = False

    def halt_reason(self) -> str:
        return self._ledger.controls(self._bot.id).effective.reason

    def cancel_resting_orders(self) -> None:
        self.position_may_change()
        for order in self._ledger.open_orders(self._bot.id):
            report = self._broker.cancel(order.client_order_id)
            self._ledger.record_report(self._bot.id, order, report, self._clock.now(),
                                       checks=self._fill_checks)

    def mark(self, marks: MarksOrThunk, prices: Mapping[str, float] | None = None
             ) -> Breach | None:
        """Mark positions at `marks` (the held instruments' quotes now, or a function that
        gives them), record today's P&L, then the breakers. `prices`: the same prices as
        floats, for judging whether a lazy mark may be held back. Returns the breach that
        halted a switch just now, if any."""
        now = self._clock.now()
        if self._lazy:
            if self._can_hold_back(prices if prices is not None else _floats(marks), now):
                self._pending = (marks, now)
                return None
            self._pending = None
        return self._exact(_quotes(marks), now)

    def before_order(self) -> None:
        """Write a held-back mark before an order is judged on the marks."""
        self.flush()

    def position_may_change(self) -> None:
        """A fill may have moved the position: the last exact mark no longer describes
        today's P&L, so the next mark is exact (and what is held back is written first)."""
        self.flush()
        self._forget_basis()

    def flush(self) -> None:
        if self._pending is not None:
            given, at = self._pending
            self._pending = None
            marks = _quotes(given)
            self._record(self._ledger.mark(self._bot.id, marks, self._usd_per_unit, at), marks,
                         at)

    def _exact(self, marks: Mapping[str, Quote], now: datetime) -> Breach | None:
        snapshot = self._ledger.mark(self._bot.id, marks, self._usd_per_unit, now)
        self._record(snapshot, marks, now)
        found = daily_loss_breach(snapshot.daily_usd, snapshot.fleet_daily_usd, self._limits)
        if found is None:
            return None
        scope, detail = found
        self._forget_basis()
        if not self._ledger.halt(self._bot.id, scope, detail, HaltSource.CIRCUIT_BREAKER, "risk",
                                 now):
            return None
        return Breach(scope, detail)

    def _record(self, snapshot: PnlSnapshot, marks: Mapping[str, Quote], at: datetime) -> None:
        self.last_snapshot = snapshot
        if self._lazy:
            self._basis = None
            self._basis_from = (snapshot, marks, at, self._ledger.positions(self._bot.id))

    def _forget_basis(self) -> None:
        self._basis = None
        self._basis_from = None

    def _make_basis(self) -> _Basis | None:
        """The basis of the last exact mark, if it describes today's P&L (everything held
        was marked); None, and forgotten, when not."""
        made_from, self._basis_from = self._basis_from, None
        if made_from is None:
            return None
        snapshot, marks, at, positions = made_from
        usd = float(self._usd_per_unit)
        slopes = {key: (float(positions[key].quantity) * usd, float(quote.price))
                  for key, quote in marks.items() if key in positions}
        if len(slopes) != sum(1 for p in positions.values() if p.quantity):
            return None  # something held was not marked: no estimate to trust
        daily = float(snapshot.daily_usd)
        others = float(snapshot.fleet_daily_usd) - daily
        day = int(at.timestamp()) // _DAY_S
        if self._day is None or self._day[0] != day:
            start = datetime.fromtimestamp(day * _DAY_S, UTC)
            self._day = (day, start, start + _ONE_DAY)
        _, day_start, day_end = self._day
        if not slopes:
            flat = _far_from_limits(daily, others, slopes, {}, self._loss_limits)
            return _Basis(day_start, day_end, daily, others, slopes, flat=flat)
        if len(slopes) == 1:
            [(key, (slope, then))] = slopes.items()
            low, high = _safe_band(daily, others, slope, then, self._loss_limits)
            return _Basis(day_start, day_end, daily, others, slopes, (key, low, high))
        return _Basis(day_start, day_end, daily, others, slopes)

    def _can_hold_back(self, prices: Mapping[str, float], now: datetime) -> bool:
        """True when no breaker can trip at these prices (and nothing else needs them now)."""
        basis = self._basis
        if basis is None:
            basis = self._basis = self._make_basis()
            if basis is None:
                self.flush()
                return False
        # A new day's first mark is exact, and the last held-back one (the old day's last)
        # is written first, as live would have: tomorrow's start is taken from it.
        same_day = basis.day_start <= now < basis.day_end
        band = basis.band
        if band is not None:
            key, low, high = band
            price = prices.get(key)
            if price is None or len(prices) != 1 or not same_day:
                self.flush()
                return False
            return low < price < high
        if prices.keys() != basis.slopes.keys() or not same_day:
            self.flush()
            return False
        if basis.flat is not None:
            return basis.flat
        return _far_from_limits(basis.daily_usd, basis.others_usd, basis.slopes, prices,
                                self._loss_limits)


def _far_from_limits(daily: float, others: float, slopes: Mapping[str, tuple[float, float]],
                     prices: Mapping[str, float], limits: _LossLimits) -> bool:
    """Whether today's P&L at `prices`, estimated from the last exact mark (`daily`, and
    each held instrument's slope and price then), is further than the estimate's margin
    from both daily-loss limits."""
    estimate = daily
    scale = abs(estimate)
    for key, (slope, then) in slopes.items():
        move = slope * (prices[key] - then)
        estimate += move
        scale += abs(slope * then) + abs(move)
    margin = scale * _RELATIVE_MARGIN + _ABSOLUTE_MARGIN
    bot_limit, fleet_limit = limits
    if bot_limit is not None and estimate <= margin - bot_limit:
        return False
    return fleet_limit is None or others + estimate > margin - fleet_limit


def _safe_band(daily: float, others: float, slope: float, then: float,
               limits: _LossLimits) -> tuple[float, float]:
    """The prices of one held instrument at which the estimate of `_can_hold_back` stays
    more than its margin from both limits, as an open interval (empty: never hold back).

    Per limit L (with `offset` the other bots' P&L for the fleet's, 0 for the bot's), a mark
    may be held back while g(m) = offset + daily + m - R*|m| - R*(|daily| + |slope*then|)
    - A + L > 0, where m = slope * (price - then) is the move; g rises with m (R < 1), so
    that is m above one root, a price above (slope > 0) or below (slope < 0) one bound.
    """
    low, high = -math.inf, math.inf
    fixed = _RELATIVE_MARGIN * (abs(daily) + abs(slope * then)) + _ABSOLUTE_MARGIN
    for limit, offset in ((limits[0], 0.0), (limits[1], others)):
        if limit is None:
            continue
        c = offset + daily - fixed + limit
        root = -c / (1 + _RELATIVE_MARGIN) if c > 0 else -c / (1 - _RELATIVE_MARGIN)
        if slope > 0:
            low = max(low, then + root / slope)
        elif slope < 0:
            high = min(high, then + root / slope)
        elif c <= 0:
            return 0.0, 0.0  # no move at all and already within the margin
    return low, high


def _float_or_none(value: Decimal | None) -> float | None:
    return None if value is None else float(value)


def _quotes(marks: MarksOrThunk) -> Marks:
    return marks() if callable(marks) else marks


def _floats(marks: MarksOrThunk) -> dict[str, float]:
    return {key: float(quote.price) for key, quote in _quotes(marks).items()}
