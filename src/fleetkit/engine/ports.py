"""Ports: the small protocols the engine talks through. Adapters implement them.

    Clock        what time it is (wall clock, a venue's clock, or a simulated one)
    MarketData   bars, quotes and a market's session clock
    Broker       the two kinds of I/O a venue offers: sending orders, reading back state
    Ledger       the bot's durable memory (the database, or memory in a backtest)

Paper and live differ only in which Broker/MarketData adapter is plugged in.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Protocol

from fleetkit.core.controls import Controls, HaltSource, TradingState
from fleetkit.core.ledger import DEFAULT_FILL_CHECKS, FillChecks, Position
from fleetkit.core.market_data import Bar, MarketClock, Quote
from fleetkit.core.numbers import ZERO
from fleetkit.core.orders import Fill, Order, OrderIntent, OrderStatus, OrderType, Side
from fleetkit.core.sessions import Session
from fleetkit.core.signals import Signal
from fleetkit.risk.rails import Decision, HaltScope


class Clock(Protocol):
    def now(self) -> datetime: ...


class SessionSource(Protocol):
    """Trading sessions of a calendar ("XNYS", "24/7" ...) for whole UTC dates."""

    def sessions(self, calendar: str, start: date, end: date) -> list[Session]:
        """Sessions whose open falls on a date in [start, end], in UTC, oldest first."""
        ...


class MarketData(Protocol):
    def market_clock(self, market: str) -> MarketClock: ...

    def bars(self, instrument: str, interval_s: int, start: datetime, end: datetime) -> list[Bar]:
        """Completed bars whose start lies in [start, end), oldest first."""
        ...

    def quote(self, instrument: str) -> Quote: ...


# --- broker -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OrderRequest:
    client_order_id: str
    instrument: str
    side: Side
    order_type: OrderType
    quantity: Decimal
    limit_price: Decimal | None = None


@dataclass(frozen=True, slots=True)
class OrderReport:
    """The broker's account of one order. `fills` carries executions the broker reported
    with this answer (they are also available from `fills_since`; applying twice is a
    no-op because fill ids are unique)."""

    client_order_id: str
    broker_order_id: str
    instrument: str
    side: Side
    order_type: OrderType
    quantity: Decimal
    limit_price: Decimal | None
    status: OrderStatus
    filled_quantity: Decimal
    average_fill_price: Decimal | None
    reason: str = ""
    fills: tuple[Fill, ...] = ()

    def mismatch(self, order: Order) -> str | None:
        """Why this answer cannot be about `order` (another id, instrument, side, type,
        size or limit), or None: such an answer is garbage, never applied."""
        ours = (order.client_order_id, order.instrument, order.side, order.order_type,
                order.quantity, order.limit_price)
        theirs = (self.client_order_id, self.instrument, self.side, self.order_type,
                  self.quantity, self.limit_price)
        if ours == theirs:
            return None
        return (f"broker answered for {self.client_order_id}: {self.side} {self.order_type} "
                f"{self.quantity} {self.instrument} limit {self.limit_price}, when asked about "
                f"{order.client_order_id}: {order.side} {order.order_type} {order.quantity} "
                f"{order.instrument} limit {order.limit_price}")


@dataclass(frozen=True, slots=True)
class FillPage:
    """Fills after a cursor, oldest first; pass `cursor` back to get the next page."""

    fills: tuple[Fill, ...]
    cursor: str | None
    more: bool = False


@dataclass(frozen=True, slots=True)
class FundingEntry:
    """A perpetual's funding settlement as it touched one account: `amount` is the cash it
    moved (positive: received; longs pay shorts when the rate is positive), on the signed
    `quantity` held at `at`, valued at `mark`. `payment_id` is the venue's, unique and
    increasing within the account, and pages like a fill id."""

    payment_id: str
    instrument: str
    at: datetime
    rate: Decimal
    quantity: Decimal
    mark: Decimal
    amount: Decimal


@dataclass(frozen=True, slots=True)
class FundingPage:
    """Funding entries after a cursor, oldest first; pass `cursor` back for the next page."""

    entries: tuple[FundingEntry, ...]
    cursor: str | None
    more: bool = False


NO_FUNDING = FundingPage((), None)


@dataclass(frozen=True, slots=True)
class PositionReport:
    instrument: str
    quantity: Decimal
    average_price: Decimal


class Broker(Protocol):
    """One account at one venue. Everything reconciliation needs is here."""

    def submit(self, request: OrderRequest) -> OrderReport:
        """Send an order. A venue deduplicates by client_order_id: resending returns the
        original order. Raises OrderRejectedError, TransientBrokerError (outcome unknown)."""
        ...

    def cancel(self, client_order_id: str) -> OrderReport: ...

    def lookup(self, client_order_id: str) -> OrderReport | None:
        """The order with this client id, or None if the venue never received it."""
        ...

    def open_orders(self) -> list[OrderReport]: ...

    def fills_since(self, cursor: str | None, limit: int = 500) -> FillPage: ...

    def positions(self) -> list[PositionReport]: ...

    def funding_since(self, cursor: str | None, limit: int = 500) -> FundingPage:
        """Funding settlements of the account's perpetuals after `cursor`; a venue without
        perpetuals answers an empty page with the cursor it was given."""
        ...

    def cash(self) -> Mapping[str, Decimal] | None:
        """Cash per currency in this account, where the account is this bot's alone (the
        sandbox gives each bot one); None where the venue does not say or the account is
        shared with other use (a live exchange account), so cash is never compared there."""
        ...


# --- ledger -----------------------------------------------------------------------------


@dataclass(slots=True)
class InstrumentState:
    """What a bot remembers per instrument between cycles (persisted every cycle)."""

    last_bar_ts: datetime | None = None
    last_signal: int | str | None = None  # trader.SignalKey of the last signal acted on
    target_quantity: Decimal | None = None
    strategy_state: dict[str, Any] = field(default_factory=dict)
    exit_state: dict[str, Any] = field(default_factory=dict)  # engine.exits: ATR, best close
    # A futures roll in progress into this instrument (engine.rolls): the contract it comes
    # from and the quantity to carry over; persisted before the roll's first order.
    roll_from: str | None = None
    roll_quantity: Decimal | None = None


@dataclass(slots=True)
class BotState:
    """Per-instrument memory. The fills cursor is not here: it moves only together with the
    fills it covers (Ledger.apply_fills), never with the end-of-cycle save."""

    instruments: dict[str, InstrumentState] = field(default_factory=dict)

    def of(self, instrument: str) -> InstrumentState:
        state = self.instruments.get(instrument)
        if state is None:
            state = self.instruments[instrument] = InstrumentState()
        return state

    def to_json(self) -> dict[str, Any]:
        return {"instruments": {
            key: {
                "last_bar_ts": s.last_bar_ts.isoformat() if s.last_bar_ts else None,
                "last_signal": s.last_signal,
                "target_quantity": None if s.target_quantity is None else str(s.target_quantity),
                "strategy_state": s.strategy_state,
                "exit_state": s.exit_state,
                **({"roll_from": s.roll_from, "roll_quantity": str(s.roll_quantity)}
                   if s.roll_from is not None and s.roll_quantity is not None else {}),
            }
            for key, s in self.instruments.items()
        }}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> BotState:
        result = cls()
        for key, raw in (data.get("instruments") or {}).items():
            result.instruments[key] = InstrumentState(
                last_bar_ts=datetime.fromisoformat(raw["last_bar_ts"]) if raw.get("last_bar_ts")
                else None,
                last_signal=raw.get("last_signal"),
                target_quantity=None if raw.get("target_quantity") is None
                else Decimal(raw["target_quantity"]),
                strategy_state=dict(raw.get("strategy_state") or {}),
                exit_state=dict(raw.get("exit_state") or {}),
                roll_from=raw.get("roll_from"),
                roll_quantity=None if raw.get("roll_quantity") is None
                else Decimal(raw["roll_quantity"]),
            )
        return result


@dataclass(frozen=True, slots=True)
class FillResult:
    applied: tuple[Fill, ...] = ()
    duplicates: int = 0
    refused: tuple[tuple[Fill, str], ...] = ()


@dataclass(frozen=True, slots=True)
class RiskInputs:
    """What the rails need from the ledger, read in one transaction just before an order."""

    controls: Controls
    position_quantity: Decimal
    open_quantity: Decimal
    bot_daily_pnl_usd: Decimal
    fleet_daily_pnl_usd: Decimal
    open_buy_quantity: Decimal = ZERO
    open_sell_quantity: Decimal = ZERO


@dataclass(frozen=True, slots=True)
class SignalRecord:
    """A signal to persist alongside the order it caused."""

    instrument: str
    bar_ts: datetime
    signal: Signal


@dataclass(frozen=True, slots=True)
class Admission:
    """What `Ledger.admit` decided: the rails' decision and, if allowed, the PENDING order
    row now durable in the ledger."""

    decision: Decision
    order: Order | None = None
    signal_id: int | None = None


@dataclass(frozen=True, slots=True)
class PnlSnapshot:
    """A bot's P&L at one moment, in its quote currency (and today's figure in USD)."""

    day: str
    realized: Decimal
    unrealized: Decimal
    fees: Decimal
    daily: Decimal
    daily_usd: Decimal
    fleet_daily_usd: Decimal = ZERO  # every bot's today in USD, this one's as just marked

    @property
    def net(self) -> Decimal:
        return self.realized + self.unrealized - self.fees


@dataclass(frozen=True, slots=True)
class Event:
    kind: str
    message: str
    severity: str = "info"
    code: str | None = None
    data: Mapping[str, Any] = field(default_factory=dict)


class Ledger(Protocol):
    """The bot's durable memory. Every method is one transaction; every event written with
    the change it describes (law 1: if it isn't in the database it doesn't exist)."""

    def controls(self, bot_id: int) -> Controls: ...

    def set_control(self, bot_id: int | None, state: TradingState, reason: str,
                    source: HaltSource, actor: str, now: datetime) -> None:
        """bot_id None means the fleet-wide switch."""
        ...

    def halt(self, bot_id: int, scope: HaltScope, reason: str, source: HaltSource,
             actor: str, now: datetime) -> bool:
        """Halt the bot's switch or the fleet's (`scope`) unless it is halted already
        (Controls.needs_halt), in one transaction; True if this call halted it."""
        ...

    def positions(self, bot_id: int) -> dict[str, Position]: ...

    def open_orders(self, bot_id: int) -> list[Order]: ...

    def write_ahead(self, bot_id: int, intent: OrderIntent, signal_id: int | None,
                    now: datetime) -> Order:
        """Persist a PENDING order with its client order id, before anything is sent."""
        ...

    def admit(self, bot_id: int, intent: OrderIntent, signal: SignalRecord | None,
              usd_per_unit: Decimal, now: datetime,
              decide: Callable[[RiskInputs], Decision]) -> Admission:
        """In one transaction: read the risk inputs fresh (kill switches included), let
        `decide` (the rails) rule on them, record the signal, then write the order ahead —
        or record the denial and any halt it trips. Nothing is sent from here."""
        ...

    def record_report(self, bot_id: int, order: Order, report: OrderReport,
                      now: datetime, *, checks: FillChecks = DEFAULT_FILL_CHECKS) -> Order:
        """Status, broker id, any fills in the report and the positions they move: one txn.
        Fills are judged by `checks` as `apply_fills` says."""
        ...

    def record_rejection(self, bot_id: int, order: Order, reason: str, now: datetime) -> Order: ...

    def mark_order(self, bot_id: int, order: Order, status: OrderStatus, reason: str,
                   now: datetime) -> Order:
        """Close an order the broker confirmed out of band (e.g. never received it)."""
        ...

    def apply_fills(self, bot_id: int, fills: Sequence[Fill], cursor: str | None,
                    now: datetime, *, checks: FillChecks = DEFAULT_FILL_CHECKS) -> FillResult:
        """Apply fills not seen before (by broker fill id) and advance the cursor, in one
        transaction. A fill that is not plausible for its order (core.ledger.fill_refusal:
        no such order, other instrument or side, overfill, a price its order does not allow,
        an implausible fee), or a fill id seen before with other contents, is refused: the
        ledger is left as it was, the refusal recorded (`fill.refused` / `fill.rewritten`,
        critical) and the bot halted (source broker_reply), all in the same transaction."""
        ...

    def fills_cursor(self, bot_id: int) -> str | None: ...

    def apply_funding(self, bot_id: int, entries: Sequence[FundingEntry], cursor: str | None,
                      now: datetime) -> int:
        """Record the funding entries not seen before (by payment id), each added to its
        position's realized P&L, and store `cursor`, atomically; how many were new."""
        ...

    def funding_cursor(self, bot_id: int) -> str | None: ...

    def cash_baseline(self, bot_id: int) -> dict[str, Decimal]:
        """Per currency: the broker's cash less the cash the ledger's fills had moved when the
        two were first reconciled clean (so expected cash = baseline + cash moved since)."""
        ...

    def set_cash_baseline(self, bot_id: int, baseline: Mapping[str, Decimal], reason: str,
                          actor: str, now: datetime) -> None:
        """Replace the baseline of the currencies given, with an audit event."""
        ...

    def record_denial(self, bot_id: int, intent: OrderIntent, decision: Decision,
                      now: datetime) -> None: ...

    def record_event(self, bot_id: int | None, event: Event, now: datetime) -> None: ...

    def record_signal(self, bot_id: int, instrument: str, bar_ts: datetime, signal: Signal,
                      now: datetime) -> int | None: ...

    def load_state(self, bot_id: int) -> BotState: ...

    def save_state(self, bot_id: int, state: BotState, now: datetime) -> None: ...

    def risk_inputs(self, bot_id: int, instrument: str, usd_per_unit: Decimal,
                    now: datetime) -> RiskInputs:
        """Kill switches (fresh), position, in-flight orders and today's P&L, together.

        "Today" is the UTC date of `now`; the fleet figure sums every bot's P&L for it.
        """
        ...

    def mark(self, bot_id: int, marks: Mapping[str, Quote], usd_per_unit: Decimal,
             now: datetime) -> PnlSnapshot:
        """Remember the latest price of each instrument and record a P&L snapshot, with the
        fleet's daily total as of this mark (what the fleet's breaker compares).

        The first mark of a new UTC day takes the previous net P&L as that day's start.
        """
        ...
