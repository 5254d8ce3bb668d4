"""Market data: the collectors' health (as `fleet data status`), today's ATM straddle
premium per underlying, and option quote rows written per minute."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from fleetkit.core.durations import short_age
from fleetkit.core.errors import FleetError
from fleetkit.dashboard.market_queries import MarketDataView
from fleetkit.dashboard.ui import context, page

NOTHING_YET = ("No market data recorded yet: run `fleet data collect-options` and `fleet "
               "data track-straddles`, or add them as market-hours services "
               "(docs/market-data.md).")


def collector_frame(view: MarketDataView) -> pd.DataFrame:
    return pd.DataFrame([{
        "Collector": c.name, "Day": str(c.trading_day),
        "Last minute (UTC)": "" if c.last_minute is None
        else c.last_minute.strftime("%Y-%m-%d %H:%M"),
        "Last write": short_age(c.last_write_age_s), "Rows today": c.rows_today,
        "Written": c.minutes_written, "Missed": c.minutes_missed, "Gaps": len(c.gaps),
        "Rejects": sum(c.rejects.values()),
        "Reject reasons": ", ".join(f"{r} {n}" for r, n in sorted(c.rejects.items())),
        "Write ms avg": c.write_ms_avg, "Write ms max": c.write_ms_max,
        "Heartbeat": "none" if c.heartbeat is None
        else f"{c.heartbeat.status}, {short_age(c.heartbeat.age_s)} ago",
        "Detail": "" if c.heartbeat is None else c.heartbeat.detail}
        for c in view.collectors])


def straddle_figure(view: MarketDataView) -> go.Figure:
    fig = go.Figure()
    for underlying, series in view.straddles.items():
        fig.add_trace(go.Scatter(x=[at for at, _ in series],
                                 y=[None if p is None else float(p) for _, p in series],
                                 name=underlying, mode="lines"))
    fig.update_layout(height=380, margin={"l": 10, "r": 10, "t": 30, "b": 10},
                      hovermode="x unified", legend={"orientation": "h"},
                      yaxis_title="premium (call + put)")
    return fig


def rows_figure(view: MarketDataView) -> go.Figure:
    fig = go.Figure()
    for name in sorted({c for c, _, _ in view.rows_per_minute}):
        points = [(m, n) for c, m, n in view.rows_per_minute if c == name]
        fig.add_trace(go.Bar(x=[m for m, _ in points], y=[n for _, n in points], name=name))
    fig.update_layout(height=280, margin={"l": 10, "r": 10, "t": 30, "b": 10},
                      barmode="stack", legend={"orientation": "h"}, yaxis_title="rows")
    return fig


def _charts(view: MarketDataView) -> None:
    st.subheader(f"ATM straddle premium, {view.trading_day}")
    if view.straddles:
        st.plotly_chart(straddle_figure(view), width="stretch", key="straddle_chart")
    else:
        st.info("No straddle recorded today (the tracker's snapshots, or the collector's "
                "chains).")
    st.subheader("Option quote rows per minute")
    if view.rows_per_minute:
        st.plotly_chart(rows_figure(view), width="stretch", key="rows_chart")
    else:
        st.info("No minute written today.")


def render() -> None:
    with page("Market data"):
        ctx = context()
        try:
            view: MarketDataView = ctx.cache.get(("market_data",),
                                                 lambda: ctx.market_data().view())
        except FleetError as exc:
            st.error(f"The market-data database cannot be read: {exc}")
            return
        if view.empty:
            st.info(NOTHING_YET)
            return
        cols = st.columns(4)
        cols[0].metric("Collectors", str(len(view.collectors)))
        cols[1].metric("Rows today", f"{sum(c.rows_today for c in view.collectors):,}")
        cols[2].metric("Gaps today", str(sum(len(c.gaps) for c in view.collectors)))
        days = view.quote_days
        cols[3].metric("Quote days held", f"{len(days.days)} of {view.keep_days}")
        st.subheader("Collectors")
        if view.collectors:
            st.dataframe(collector_frame(view), hide_index=True, width="stretch")
        _charts(view)
        if days.bytes is not None:
            st.caption(f"option_quotes: {days.partitions} partitions, "
                       f"{days.bytes / 1_000_000:.1f} MB on disk (`fleet data partitions`).")


render()
