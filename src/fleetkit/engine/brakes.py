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

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from fleetkit.core.controls import HaltSource, TradingState
from fleetkit.core.ledger import FillChecks
from fleetkit.core.market_data import Quote
from fleetkit.engine.execution import BotIdentity
from fleetkit.engine.ports import Broker, Clock, Ledger, PnlSnapshot
from fleetkit.risk.rails import HaltScope, RiskLimits, daily_loss_breach

_DAY_S = 86_400
Marks = Mapping[str, Quote]
# The quotes, or what gives them when a mark is written (a replay has float closes at hand
# and makes Decimal quotes only for the marks it writes).
MarksOrThunk = Marks | Callable[[], Marks]
# Float estimates are kept this far (relative, plus a cent) from a limit before a mark is
# skipped: far more than a double's error over any P&L a bot can have.
_RELATIVE_MARGIN = 1e-9
_ABSOLUTE_MARGIN = 0.01


@dataclass(frozen=True, slots=True)
class Breach:
    """A daily-loss breaker that tripped at a mark: which switch, and why."""

    scope: HaltScope
    detail: str


@dataclass(frozen=True, slots=True)
class _Basis:
    """Today's P&L as a linear function of the marks, from the last exact mark."""

    day: int
    daily_usd: float
    others_usd: float
    slopes: dict[str, tuple[float, float]]  # key -> (quantity * usd per unit, price then)


class Brakes:
    def __init__(self, bot: BotIdentity, ledger: Ledger, broker: Broker, clock: Clock,
                 limits: RiskLimits, usd_per_unit: Decimal, fill_checks: FillChecks, *,
                 lazy_marks: bool = False) -> None:
        self._bot = bot
        self._ledger = ledger
        self._broker = broker
        self._clock = clock
        self._limits = limits
        self._usd_per_unit = usd_per_unit
        self._fill_checks = fill_checks
        self._was_halted = False
        self._lazy = lazy_marks
        self._basis: _Basis | None = None
        self._pending: tuple[MarksOrThunk, datetime] | None = None
        self.last_snapshot: PnlSnapshot | None = None

    @property
    def halted(self) -> bool:
        """Whether the last check found trading halted."""
        return self._was_halted

    def check_halt(self) -> bool:
        """Read both switches fresh; a halt not seen before pulls the bot's resting orders
        (a halt is a kill switch, not only a gate for new orders). True while halted."""
        controls = self._ledger.controls(self._bot.id)
        halted = (controls.bot.state is TradingState.HALTED
                  or controls.fleet.state is TradingState.HALTED)
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
        self._basis = None

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
        self._basis = None
        if not self._ledger.halt(self._bot.id, scope, detail, HaltSource.CIRCUIT_BREAKER, "risk",
                                 now):
            return None
        return Breach(scope, detail)

    def _record(self, snapshot: PnlSnapshot, marks: Mapping[str, Quote], at: datetime) -> None:
        self.last_snapshot = snapshot
        if not self._lazy:
            return
        usd = float(self._usd_per_unit)
        positions = self._ledger.positions(self._bot.id)
        slopes = {key: (float(positions[key].quantity) * usd, float(quote.price))
                  for key, quote in marks.items() if key in positions}
        if len(slopes) != sum(1 for p in positions.values() if p.quantity):
            self._basis = None  # something held was not marked: no estimate to trust
            return
        daily = float(snapshot.daily_usd)
        self._basis = _Basis(int(at.timestamp()) // _DAY_S, daily,
                             float(snapshot.fleet_daily_usd) - daily, slopes)

    def _can_hold_back(self, prices: Mapping[str, float], now: datetime) -> bool:
        """True when no breaker can trip at these prices (and nothing else needs them now)."""
        basis = self._basis
        if basis is None or prices.keys() != basis.slopes.keys():
            self.flush()
            return False
        if int(now.timestamp()) // _DAY_S != basis.day:
            self.flush()  # the day's last mark, written as live would have: tomorrow's start
            return False
        estimate = basis.daily_usd
        scale = abs(estimate)
        for key, (slope, then) in basis.slopes.items():
            move = slope * (prices[key] - then)
            estimate += move
            scale += abs(slope * then) + abs(move)
        margin = scale * _RELATIVE_MARGIN + _ABSOLUTE_MARGIN
        limits = self._limits
        bot_limit, fleet_limit = limits.daily_loss_limit_usd, limits.fleet_daily_loss_limit_usd
        if bot_limit is not None and estimate <= margin - float(bot_limit):
            return False
        return fleet_limit is None or basis.others_usd + estimate > margin - float(fleet_limit)


def _quotes(marks: MarksOrThunk) -> Marks:
    return marks() if callable(marks) else marks


def _floats(marks: MarksOrThunk) -> dict[str, float]:
    return {key: float(quote.price) for key, quote in _quotes(marks).items()}
