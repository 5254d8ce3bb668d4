"""A perpetual's funding in the ledger: each payment applied once into realized P&L, with its
cursor, alike in MemoryLedger and SqlLedger (SQLite, PostgreSQL); a bot reconciling its cash
counts funding and margin the way the venue does."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from fleetkit.core.ledger import Position, cash_flow, cash_flows
from fleetkit.core.orders import OrderStatus, OrderType, Side
from fleetkit.engine.ports import FundingEntry, OrderReport
from tests.integration.test_ledger_contract import T0, Env, env, fill, intent

__all__ = ["env"]  # the fixture, shared with the ledger contract

PERP = "CRYPTO:BTC/USDT:USDT"


def entry(payment_id: str, amount: str, quantity: str = "0.5", hours: int = 8) -> FundingEntry:
    return FundingEntry(payment_id, PERP, T0 + timedelta(hours=hours), Decimal("0.0001"),
                        Decimal(quantity), Decimal("60000"), Decimal(amount))


def hold_perpetual(env: Env, bot: int) -> None:
    order = env.ledger.write_ahead(bot, intent("0.5", instrument=PERP, reference="60000"),
                                   None, T0)
    f = fill(order.client_order_id, "f1", "0.5", "60000", instrument=PERP, fee="3")
    env.ledger.record_report(bot, order, OrderReport(
        order.client_order_id, "B1", PERP, Side.BUY, OrderType.MARKET, Decimal("0.5"), None,
        OrderStatus.FILLED, Decimal("0.5"), Decimal(60000), "", (f,)), T0)


def test_funding_is_applied_once_into_realized_pnl_with_its_cursor(env: Env) -> None:
    bot = env.new_bot("perp")
    hold_perpetual(env, bot)
    assert env.ledger.funding_cursor(bot) is None
    paid, received = entry("11", "-3"), entry("12", "1.5", hours=16)
    assert env.ledger.apply_funding(bot, [paid, received], "12", T0) == 2
    assert env.ledger.apply_funding(bot, [paid, received], "12", T0) == 0  # a page again
    position = env.ledger.positions(bot)[PERP]
    assert position.quantity == Decimal("0.5")
    assert position.realized_pnl == Decimal("-1.5")
    assert position.fees == Decimal(3)
    assert env.ledger.funding_cursor(bot) == "12"
    # Marked at 60,000 the position is only its fee and the funding down.
    assert position.net_pnl(Decimal(60000)) == Decimal("-4.5")


def test_funding_on_a_position_the_ledger_never_held_is_kept_for_reconciliation(
        env: Env) -> None:
    bot = env.new_bot("stray")
    assert env.ledger.apply_funding(bot, [entry("5", "-2")], "5", T0) == 1
    position = env.ledger.positions(bot)[PERP]
    assert (position.quantity, position.realized_pnl) == (Decimal(0), Decimal(-2))


def test_another_bots_payment_ids_do_not_collide(env: Env) -> None:
    one, two = env.new_bot("one"), env.new_bot("two")
    hold_perpetual(env, one)
    hold_perpetual(env, two)
    env.ledger.apply_funding(one, [entry("1", "-3")], "1", T0)
    assert env.ledger.apply_funding(two, [entry("1", "-4")], "1", T0) == 1
    assert env.ledger.positions(one)[PERP].realized_pnl == Decimal(-3)
    assert env.ledger.positions(two)[PERP].realized_pnl == Decimal(-4)


def test_a_margined_position_moves_cash_by_its_pnl_and_fees_only() -> None:
    # Long 0.5 @ 60,000 with 3 of fees and 1.5 of funding paid, then half closed at 61,000.
    position = Position(PERP, Decimal("0.25"), Decimal(60000), Decimal(250 - 1.5 * 1),
                        Decimal(3))
    assert cash_flow(position, margined=True) == Decimal("245.5")
    assert cash_flow(position) == Decimal("245.5") - Decimal(15000)  # spot would have paid
    flows = cash_flows([position, Position("CRYPTO:BTC/USDT", Decimal(1), Decimal(100))],
                       {PERP: "USDT", "CRYPTO:BTC/USDT": "USDT"}, margined={PERP})
    assert flows == {"USDT": Decimal("245.5") - Decimal(100)}
    assert Side.BUY.sign == 1
