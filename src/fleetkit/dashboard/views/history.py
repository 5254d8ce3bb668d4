"""Orders and trades, newest first, narrowed by bot, instrument, side and dates."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pandas as pd
import streamlit as st

from fleetkit.dashboard.queries import History, OrderRow, TradeFilter, TradeRow
from fleetkit.dashboard.ui import context, money, page, utc_text

ANY = "(any)"


def _filters(bots: list[str], instruments: list[str]) -> TradeFilter:
    cols = st.columns(4)
    bot = cols[0].selectbox("Bot", [ANY, *bots], key="history_bot")
    instrument = cols[1].selectbox("Instrument", [ANY, *instruments], key="history_instrument")
    side = cols[2].selectbox("Side", [ANY, "buy", "sell"], key="history_side")
    today = datetime.now(UTC).date()
    days = cols[3].date_input("Dates (UTC)", (today - timedelta(days=6), today),
                              key="history_dates")
    start, end = _bounds(days)
    return TradeFilter(None if bot == ANY else bot,
                       None if instrument == ANY else instrument,
                       None if side == ANY else side, start, end)


def _bounds(days: object) -> tuple[datetime | None, datetime | None]:
    chosen = [d for d in (days if isinstance(days, tuple | list) else (days,))
              if isinstance(d, date)]
    if not chosen:
        return None, None
    first, last = min(chosen), max(chosen)
    return (datetime.combine(first, time(), UTC),
            datetime.combine(last + timedelta(days=1), time(), UTC))


def trades_table(found: History[TradeRow]) -> pd.DataFrame:
    return pd.DataFrame([{
        "Time (UTC)": utc_text(r.ts), "Bot": r.bot,
        "Instrument": r.instrument, "Side": r.side, "Quantity": float(r.quantity),
        "Price": float(r.price), "Fee": float(r.fee), "Fill id": r.broker_fill_id}
        for r in found.rows])


def orders_table(found: History[OrderRow]) -> pd.DataFrame:
    return pd.DataFrame([{
        "Created (UTC)": utc_text(r.created_at), "Bot": r.bot,
        "Instrument": r.instrument, "Side": r.side, "Type": r.order_type,
        "Quantity": float(r.quantity), "Status": r.status, "Filled": float(r.filled_quantity),
        "Average price": None if r.average_fill_price is None else float(r.average_fill_price),
        "Client order id": r.client_order_id, "Why": r.reason} for r in found.rows])


def _show(kind: str, found: History[TradeRow] | History[OrderRow], table: pd.DataFrame) -> None:
    cols = st.columns(2)
    cols[0].metric(f"Matching {kind}", f"{found.total:,}")
    cols[1].metric("Traded value", money(found.notional_usd, signed=False))
    if not found.rows:
        st.info(f"No {kind} match these filters.")
        return
    st.dataframe(table, hide_index=True, width="stretch")
    if found.total > len(found.rows):
        st.caption(f"The newest {len(found.rows):,} of {found.total:,}: narrow the filters "
                   "to see older ones.")


def render() -> None:
    with page("Orders & trades"):
        ctx = context()
        where = _filters(ctx.cached("bot_names"), ctx.cached("instruments"))
        trades_tab, orders_tab = st.tabs(["Trades", "Orders"])
        with trades_tab:
            trades: History[TradeRow] = ctx.cached("trades", where)
            _show("trades", trades, trades_table(trades))
        with orders_tab:
            orders: History[OrderRow] = ctx.cached("orders", where)
            _show("orders", orders, orders_table(orders))


render()
