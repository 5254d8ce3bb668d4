"""Reconciliation as a pure function: ledger vs broker, differences out, nothing changed.

Positions differ when they disagree by at least one lot of the instrument (finer than a lot
is representation noise); open orders differ when one side holds an order the other lacks.
Beyond quantities, where the broker reports them: a position's average price differs when
it is off by more than a tolerance (in percent), and an account's cash when what the
ledger's fills imply is off from the broker's by more than a tolerance (in that currency).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from fleetkit.core.numbers import ZERO

_HUNDRED = Decimal(100)


class DifferenceKind(StrEnum):
    POSITION = "position"
    ORDER_ONLY_AT_BROKER = "order_only_at_broker"
    ORDER_ONLY_IN_LEDGER = "order_only_in_ledger"
    AVERAGE_PRICE = "average_price"
    CASH = "cash"


@dataclass(frozen=True, slots=True)
class Difference:
    """One disagreement. `instrument` is the currency for a CASH difference; the two
    figures are quantities, average prices or cash amounts, by kind."""

    kind: DifferenceKind
    instrument: str
    ledger_quantity: Decimal = ZERO
    broker_quantity: Decimal = ZERO
    client_order_id: str | None = None

    def describe(self) -> str:
        if self.kind is DifferenceKind.POSITION:
            return (f"{self.instrument}: ledger holds {self.ledger_quantity}, "
                    f"broker holds {self.broker_quantity}")
        if self.kind is DifferenceKind.AVERAGE_PRICE:
            return (f"{self.instrument}: ledger average price {self.ledger_quantity}, "
                    f"broker's {self.broker_quantity}")
        if self.kind is DifferenceKind.CASH:
            return (f"{self.instrument} cash: the ledger's fills imply {self.ledger_quantity}, "
                    f"broker holds {self.broker_quantity}")
        where = ("at the broker" if self.kind is DifferenceKind.ORDER_ONLY_AT_BROKER
                 else "in the ledger")
        return f"{self.instrument}: open order {self.client_order_id} exists only {where}"


@dataclass(frozen=True, slots=True)
class Tolerances:
    """How far reported figures beyond quantities may differ before they count.

    `average_price_pct`: relative, since venues round average prices to their own precision.
    `cash`: per currency, in that currency (fees and rounding leave cents behind).
    """

    average_price_pct: Decimal = Decimal("0.1")
    cash: Mapping[str, Decimal] | None = None


def reconcile_positions(ledger: Mapping[str, Decimal], broker: Mapping[str, Decimal],
                        lot_sizes: Mapping[str, Decimal]) -> list[Difference]:
    differences = []
    for instrument in sorted(set(ledger) | set(broker)):
        ours = ledger.get(instrument, ZERO)
        theirs = broker.get(instrument, ZERO)
        lot = lot_sizes.get(instrument)
        tolerance = lot if lot is not None else ZERO
        gap = abs(ours - theirs)
        if (gap >= tolerance and gap > ZERO) if tolerance > ZERO else gap > ZERO:
            differences.append(Difference(DifferenceKind.POSITION, instrument, ours, theirs))
    return differences


def reconcile_average_prices(ledger: Mapping[str, Decimal], broker: Mapping[str, Decimal],
                             tolerance_pct: Decimal) -> list[Difference]:
    """Average prices of positions held on both sides; a broker that does not report one
    (zero or absent, as spot exchanges) is not compared."""
    differences = []
    for instrument in sorted(set(ledger) & set(broker)):
        ours, theirs = ledger[instrument], broker[instrument]
        if theirs <= ZERO or ours <= ZERO:
            continue
        if abs(ours - theirs) / theirs * _HUNDRED > tolerance_pct:
            differences.append(Difference(DifferenceKind.AVERAGE_PRICE, instrument, ours,
                                          theirs))
    return differences


def reconcile_cash(expected: Mapping[str, Decimal], reported: Mapping[str, Decimal],
                   tolerances: Mapping[str, Decimal]) -> list[Difference]:
    """Cash the ledger expects vs the broker's, for each currency both know."""
    differences = []
    for currency in sorted(set(expected) & set(reported)):
        ours, theirs = expected[currency], reported[currency]
        if abs(ours - theirs) > tolerances.get(currency, ZERO):
            differences.append(Difference(DifferenceKind.CASH, currency, ours, theirs))
    return differences


def reconcile_open_orders(ledger: Iterable[tuple[str, str]],
                          broker: Iterable[tuple[str, str]]) -> list[Difference]:
    """Each side gives (client_order_id, instrument) of the orders it considers open."""
    ours = dict(ledger)
    theirs = dict(broker)
    differences = [Difference(DifferenceKind.ORDER_ONLY_AT_BROKER, theirs[cid], client_order_id=cid)
                   for cid in sorted(set(theirs) - set(ours))]
    differences += [Difference(DifferenceKind.ORDER_ONLY_IN_LEDGER, ours[cid], client_order_id=cid)
                    for cid in sorted(set(ours) - set(theirs))]
    return differences


def reconcile(ledger_positions: Mapping[str, Decimal], broker_positions: Mapping[str, Decimal],
              ledger_open: Iterable[tuple[str, str]], broker_open: Iterable[tuple[str, str]],
              lot_sizes: Mapping[str, Decimal]) -> list[Difference]:
    return (reconcile_positions(ledger_positions, broker_positions, lot_sizes)
            + reconcile_open_orders(ledger_open, broker_open))
