"""Open positions across the fleet with unrealized P&L at each bot's last mark."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from fleetkit.dashboard.ui import context, money, page


def render() -> None:
    with page("Open positions"):
        ctx = context()
        rows: list[dict[str, Any]] = ctx.cached("open_positions")
        if not rows:
            st.info("No open positions: every bot is flat.")
            return
        bots = sorted({r["bot"] for r in rows})
        chosen = st.multiselect("Bots", bots, key="positions_bots",
                                placeholder="all bots")
        shown = [r for r in rows if not chosen or r["bot"] in chosen]
        cols = st.columns(3)
        cols[0].metric("Positions", len(shown))
        cols[1].metric("Gross exposure", money(sum(r["exposure_usd"] for r in shown),
                                                   signed=False))
        cols[2].metric("Unrealized P&L", money(sum(r["unrealized_usd"] for r in shown)))
        st.dataframe(pd.DataFrame([{
            "Bot": r["bot"], "Instrument": r["instrument"], "Quantity": float(r["quantity"]),
            "Average price": float(r["average_price"]),
            "Mark": None if r["mark_price"] is None else float(r["mark_price"]),
            "Currency": r["currency"], "Unrealized": float(r["unrealized"]),
            "Unrealized (USD)": round(r["unrealized_usd"], 2),
            "Exposure (USD)": round(r["exposure_usd"], 2)} for r in shown]),
            hide_index=True, width="stretch")
        st.caption("Unrealized P&L is at each bot's last mark (taken every cycle).")


render()
