"""P&L curves: net P&L (realized + unrealized - fees) and drawdown, for the fleet or chosen
bots, over a chosen range."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from fleetkit.dashboard.series import Curve
from fleetkit.dashboard.ui import context, money, page, range_picker

FLEET = "Fleet (USD)"


def figure(curves: dict[str, Curve]) -> go.Figure:
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.7, 0.3],
                        vertical_spacing=0.05, subplot_titles=("Net P&L (USD)",
                                                               "Drawdown (USD)"))
    for name, curve in curves.items():
        xs = [p.at for p in curve.points]
        fig.add_trace(go.Scatter(x=xs, y=[p.net_usd for p in curve.points], name=name,
                                 mode="lines", legendgroup=name), row=1, col=1)
        fig.add_trace(go.Scatter(x=xs, y=curve.drawdowns_usd(), name=name, mode="lines",
                                 fill="tozeroy", legendgroup=name, showlegend=False),
                      row=2, col=1)
    fig.update_layout(height=560, margin={"l": 10, "r": 10, "t": 40, "b": 10},
                      hovermode="x unified", legend={"orientation": "h"})
    return fig


def summary(curves: dict[str, Curve]) -> pd.DataFrame:
    return pd.DataFrame([{
        "Curve": name, "Change (USD)": round(c.change_usd(), 2),
        "Now (USD)": round(c.last_usd, 2), "Max drawdown (USD)": round(c.max_drawdown_usd(), 2),
        "Points": len(c.points)} for name, c in curves.items()])


def render() -> None:
    with page("P&L"):
        ctx = context()
        start, end, label = range_picker("pnl_range")
        all_curves: dict[str, Curve] = ctx.cached("pnl_curves", start, end)
        if not all_curves:
            st.info(f"No P&L recorded in the last {label}: bots mark their positions every "
                    "cycle once they run (try a longer range).")
            return
        names = sorted(n for n in all_curves if n)
        chosen = st.multiselect("Bots", names, key="pnl_bots",
                                placeholder="the whole fleet")
        curves = ({name: all_curves[name] for name in chosen} if chosen
                  else {FLEET: all_curves[""]})
        cols = st.columns(3)
        shown = list(curves.values())
        cols[0].metric(f"Change over {label}", money(sum(c.change_usd() for c in shown)))
        cols[1].metric("Net P&L now", money(sum(c.last_usd for c in shown)))
        cols[2].metric("Max drawdown", money(min(c.max_drawdown_usd() for c in shown)))
        st.plotly_chart(figure(curves), width="stretch")
        st.dataframe(summary(curves), hide_index=True, width="stretch")
        st.caption("Net P&L is realized + unrealized - fees since each bot started, in USD "
                   "at the FX rate of each mark; the fleet line sums every bot's latest "
                   "value.")


render()
