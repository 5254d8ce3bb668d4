"""OrderSync: bring the ledger in line with the broker (law 2), never the other way round.

On boot and every few minutes: resolve PENDING orders by looking them up (never resend),
apply fills missed since the persisted cursor (each at most once, each judged plausible
first), refresh open orders, then compare positions and open orders — and, where the broker
reports them, average prices and cash. A difference that survives one re-sync halts the bot
with the reason persisted; nothing is traded until an operator acts.

Cash is compared against a baseline: the broker's cash less what the ledger's fills had
moved, taken at the first reconciliation that found nothing else amiss (trust on first use,
persisted). A deposit or withdrawal later is a difference like any other: an operator who
made it adopts the broker's cash (`fleet reconcile BOT --adopt-broker`).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from fleetkit.core.controls import HaltSource
from fleetkit.core.ledger import DEFAULT_FILL_CHECKS, FillChecks, Position, cash_flows
from fleetkit.core.numbers import ZERO
from fleetkit.core.orders import Fill, OrderStatus
from fleetkit.engine.execution import BotIdentity
from fleetkit.engine.ports import Broker, Clock, Event, Ledger, OrderReport
from fleetkit.engine.reconcile import (
    Difference,
    DifferenceKind,
    Tolerances,
    reconcile,
    reconcile_average_prices,
    reconcile_cash,
)
from fleetkit.risk.rails import HaltScope

NEVER_RECEIVED = "never reached the broker (lookup by client order id found nothing)"


@dataclass(slots=True)
class SyncReport:
    resolved: int = 0
    voided_instruments: set[str] = field(default_factory=set)
    applied: list[Fill] = field(default_factory=list)
    duplicates: int = 0
    refused: int = 0
    differences: list[Difference] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.differences and not self.refused


class OrderSync:
    """`unknown_after_s`: how long a PENDING order the broker does not know is given before
    it is declared never received (a slow request may still be on its way).
    `fill_checks`: when a broker's fill is too implausible to apply (core.ledger).
    `currencies`: each instrument's currency, for comparing cash (none given: cash is not
    compared); `tolerances`: how far average prices and cash may differ."""

    def __init__(self, bot: BotIdentity, ledger: Ledger, broker: Broker, clock: Clock,
                 lot_sizes: Mapping[str, Decimal], *, unknown_after_s: float = 15.0,
                 fill_checks: FillChecks = DEFAULT_FILL_CHECKS,
                 currencies: Mapping[str, str] | None = None,
                 tolerances: Tolerances | None = None,
                 margined: Collection[str] = (),
                 contract_markets: Mapping[str, str] | None = None) -> None:
        self._bot = bot
        self._ledger = ledger
        self._broker = broker
        self._clock = clock
        self._lot_sizes = lot_sizes
        self._unknown_after_s = unknown_after_s
        self._fill_checks = fill_checks
        self._currencies = dict(currencies or {})
        self._tolerances = tolerances or Tolerances()
        # Futures and perpetuals: cash moves by their P&L alone, and a perpetual's funding
        # settlements are paged from the broker like fills (only where the bot has any).
        self._margined = frozenset(margined)
        # market -> currency where the bot holds dated contracts (a rolled future): every
        # contract of such a market counts, the earlier months' included.
        self._contract_markets = dict(contract_markets or {})

    def resolve_pending(self, report: SyncReport) -> int:
        """Settle orders written ahead whose broker answer was never recorded; returns how
        many are still unresolved.

        Found at the broker: its answer is recorded. Not found: declared never received only
        once `unknown_after_s` has passed since it was written — even at boot, because a
        request from a process killed mid-send can still reach the broker after it died.
        """
        unresolved = 0
        for order in self._ledger.open_orders(self._bot.id):
            if order.status is not OrderStatus.PENDING:
                continue
            found = self._broker.lookup(order.client_order_id)
            now = self._clock.now()
            if found is not None:
                self._ledger.record_report(self._bot.id, order, found, now,
                                           checks=self._fill_checks)
                report.resolved += 1
                continue
            age_s = (now - order.created_at).total_seconds()
            if age_s >= self._unknown_after_s:
                self._ledger.mark_order(self._bot.id, order, OrderStatus.CANCELLED,
                                        NEVER_RECEIVED, now)
                report.resolved += 1
                report.voided_instruments.add(order.instrument)
            else:
                unresolved += 1
        return unresolved

    def sync_fills(self, report: SyncReport) -> None:
        cursor = self._ledger.fills_cursor(self._bot.id)
        while True:
            page = self._broker.fills_since(cursor)
            result = self._ledger.apply_fills(self._bot.id, page.fills, page.cursor,
                                              self._clock.now(), checks=self._fill_checks)
            report.applied.extend(result.applied)
            report.duplicates += result.duplicates
            report.refused += len(result.refused)
            cursor = page.cursor
            if not page.more or not page.fills:
                return

    def sync_funding(self) -> int:
        """Apply the funding settlements the broker reported since the last; how many were
        new. Nothing to ask where the bot trades nothing on margin."""
        if not self._margined:
            return 0
        cursor = self._ledger.funding_cursor(self._bot.id)
        applied = 0
        while True:
            page = self._broker.funding_since(cursor)
            applied += self._ledger.apply_funding(self._bot.id, page.entries, page.cursor,
                                                  self._clock.now())
            cursor = page.cursor
            if not page.more or not page.entries:
                return applied

    def _funding_pending(self) -> bool:
        if not self._margined:
            return False
        cursor = self._ledger.funding_cursor(self._bot.id)
        return bool(self._broker.funding_since(cursor, limit=1).entries)

    def refresh_open_orders(self) -> dict[str, OrderReport]:
        """Update ledger orders the broker has moved on (filled, cancelled elsewhere)."""
        at_broker = {r.client_order_id: r for r in self._broker.open_orders()}
        for order in self._ledger.open_orders(self._bot.id):
            if order.status is OrderStatus.PENDING or order.client_order_id in at_broker:
                continue
            final = self._broker.lookup(order.client_order_id)
            if final is not None:
                self._ledger.record_report(self._bot.id, order, final, self._clock.now(),
                                           checks=self._fill_checks)
        return at_broker

    def differences(self) -> list[Difference]:
        """Everything ledger and broker disagree on now (see the module docstring)."""
        positions = self._ledger.positions(self._bot.id)
        held = {k: p for k, p in positions.items() if p.quantity != ZERO}
        reported = {p.instrument: p for p in self._broker.positions()}
        # PENDING orders are settled by lookup before reconciling, never compared here.
        ledger_open = [(o.client_order_id, o.instrument)
                       for o in self._ledger.open_orders(self._bot.id)
                       if o.status is not OrderStatus.PENDING]
        broker_open = [(r.client_order_id, r.instrument) for r in self._broker.open_orders()]
        differences = reconcile({k: p.quantity for k, p in held.items()},
                                {k: p.quantity for k, p in reported.items()},
                                ledger_open, broker_open, self._lot_sizes)
        apart = {d.instrument for d in differences if d.kind is DifferenceKind.POSITION}
        differences += reconcile_average_prices(
            {k: p.average_price for k, p in held.items() if k not in apart},
            {k: p.average_price for k, p in reported.items() if k not in apart},
            self._tolerances.average_price_pct)
        return differences + self.cash_differences(positions.values())

    def cash_differences(self, positions: Iterable[Position] | None = None
                         ) -> list[Difference]:
        """Cash the ledger's fills imply (from the baseline) vs the broker's, per currency;
        `positions`: all of the ledger's, flat ones too (their P&L and fees moved cash)."""
        expected = self.expected_cash(positions)
        reported = self._reported_cash()
        if not expected or reported is None:
            return []
        return reconcile_cash(expected, reported, self._tolerances.cash or {})

    def expected_cash(self, positions: Iterable[Position] | None = None
                      ) -> dict[str, Decimal]:
        """Per currency with a baseline: baseline + cash moved by the ledger's fills."""
        if not self._currencies:
            return {}
        baseline = self._ledger.cash_baseline(self._bot.id)
        if not baseline:
            return {}
        flows = self._flows(positions)
        return {c: baseline[c] + flows.get(c, ZERO) for c in baseline}

    def take_cash_baseline(self, reason: str, actor: str, *, replace: bool = False
                           ) -> dict[str, Decimal]:
        """Persist broker cash less the ledger's cash moved, for currencies without a
        baseline (all of the bot's currencies with `replace`); returns what was set."""
        have = {} if replace else self._ledger.cash_baseline(self._bot.id)
        if not self._currencies or set(self._currencies.values()) <= set(have):
            return {}
        cursor = self._ledger.fills_cursor(self._bot.id)
        flows = self._flows(None)
        reported = self._reported_cash()
        if (reported is None or self._broker.fills_since(cursor, limit=1).fills
                or self._funding_pending()):
            # A fill or a funding settlement landed since the ledger was read (or while the
            # cash was): the two figures are of different moments; take the baseline at a
            # quieter one.
            return {}
        new = {c: reported[c] - flows[c] for c in sorted(flows)
               if c in reported and c not in have}
        if new:
            self._ledger.set_cash_baseline(self._bot.id, new, reason, actor, self._clock.now())
        return new

    def _reported_cash(self) -> dict[str, Decimal] | None:
        if not self._currencies:
            return None
        cash = self._broker.cash()
        return None if cash is None else dict(cash)

    def _flows(self, positions: Iterable[Position] | None) -> dict[str, Decimal]:
        if positions is None:
            positions = self._ledger.positions(self._bot.id).values()
        if not self._contract_markets:
            return cash_flows(positions, self._currencies, self._margined)
        held = list(positions)
        currencies, margined = dict(self._currencies), set(self._margined)
        for position in held:
            currency = self._contract_markets.get(position.instrument.partition(":")[0])
            if currency is not None and position.instrument not in currencies:
                currencies[position.instrument] = currency
                margined.add(position.instrument)
        return cash_flows(held, currencies, margined)

    def run(self, *, halt_on_difference: bool = True) -> SyncReport:
        """Reconcile. Call once no PENDING order is left (the runner waits for that): an
        order in flight would otherwise show up as a position difference."""
        report = SyncReport()
        self.resolve_pending(report)
        self.sync_fills(report)
        self.refresh_open_orders()
        self.sync_fills(report)
        self.sync_funding()
        differences = self.differences()
        if differences:
            # A fill (or a funding settlement) can land between reading the two sides; one
            # re-sync settles that.
            self.sync_fills(report)
            self.refresh_open_orders()
            self.sync_funding()
            differences = self.differences()
        report.differences = differences
        if differences and halt_on_difference:
            self._halt(differences)
        elif not differences:
            self.take_cash_baseline("first clean reconciliation", "reconciler")
        return report

    def _halt(self, differences: list[Difference]) -> None:
        now = self._clock.now()
        summary = "; ".join(d.describe() for d in differences[:5])
        more = f" (+{len(differences) - 5} more)" if len(differences) > 5 else ""
        reason = f"reconciliation mismatch: {summary}{more}"
        self._ledger.record_event(self._bot.id, Event(
            "reconcile.mismatch", reason, "critical", "reconciliation",
            {"differences": [d.describe() for d in differences]}), now)
        self._ledger.halt(self._bot.id, HaltScope.BOT, reason, HaltSource.RECONCILIATION,
                          "reconciler", now)
