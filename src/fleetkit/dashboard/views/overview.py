"""Overview: every bot, halted and stale first, with its heartbeat, positions and today's
P&L; fleet totals on top."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from fleetkit.core.durations import short_age
from fleetkit.dashboard.ui import context, money, page
from fleetkit.store.status import FleetView

# Halted and stale first: what needs a person comes before what is fine.
STATE_ORDER = {"HALTED": 0, "REDUCING": 1, "STALE": 2, "STOPPED": 3, "STARTING": 4,
               "ACTIVE": 5}


def bots_table(view: FleetView) -> pd.DataFrame:
    rows = sorted(view.bots, key=lambda b: (STATE_ORDER.get(b.state, 9), b.name))
    return pd.DataFrame([{
        "Bot": b.name, "State": b.state, "Why": b.reason, "Mode": b.mode,
        "Market": b.market, "Strategy": b.strategy, "Heartbeat": short_age(b.heartbeat_age_s),
        "Positions": len(b.positions), "Open orders": b.open_orders,
        "Fills today": b.fills_today, "P&L today": float(b.daily_pnl),
        "Currency": b.currency, "P&L today (USD)": round(float(b.daily_pnl_usd), 2),
    } for b in rows])


def render() -> None:
    with page("Fleet overview"):
        ctx = context()

        @st.fragment(run_every=ctx.settings.refresh_s)
        def body() -> None:
            view: FleetView = ctx.cached("overview")
            if not view.bots:
                st.info("No bots in this database yet: start the fleet with `fleet up` (or "
                        "`fleet bot run NAME`), and they appear here.")
                return
            if view.fleet_state != "active":
                st.error(f"The whole fleet is {view.fleet_state.upper()}: "
                         f"{view.fleet_reason}")
            counts = view.counts()
            held = sum(len(b.positions) for b in view.bots)
            cols = st.columns(6)
            cols[0].metric("Bots", len(view.bots))
            cols[1].metric("Active", counts.get("ACTIVE", 0))
            cols[2].metric("Halted", counts.get("HALTED", 0) + counts.get("REDUCING", 0))
            cols[3].metric("Stale or stopped", counts.get("STALE", 0) + counts.get("STOPPED", 0))
            cols[4].metric("Open positions", held)
            cols[5].metric("Fleet P&L today", money(view.daily_pnl_usd))
            st.dataframe(bots_table(view), hide_index=True, width="stretch",
                         column_config={
                             "P&L today": st.column_config.NumberColumn(format="%.2f"),
                             "P&L today (USD)": st.column_config.NumberColumn(
                                 format="$%.2f")})
            st.caption(f"As of {view.at:%Y-%m-%d %H:%M:%S} UTC · refreshes every "
                       f"{ctx.settings.refresh_s:.0f} s · today is the UTC day")

        body()


render()
