"""Risk: orders the rails refused, by rule over time; halts, circuit breakers, resumes."""

from __future__ import annotations

import pandas as pd
import plotly.express as px
import streamlit as st

from fleetkit.dashboard.queries import DenialCount
from fleetkit.dashboard.ui import context, page, range_picker, utc_text
from fleetkit.store.audit import EventView

BUCKETS_S = {"1 hour": 300, "6 hours": 900, "1 day": 3600, "1 week": 6 * 3600,
             "30 days": 86_400, "1 year": 7 * 86_400}


def denials_by_rule(found: list[DenialCount]) -> pd.DataFrame:
    totals: dict[str, int] = {}
    for d in found:
        totals[d.rule] = totals.get(d.rule, 0) + d.count
    return pd.DataFrame([{"Rule": rule, "Denials": n} for rule, n in
                         sorted(totals.items(), key=lambda kv: (-kv[1], kv[0]))])


def events_table(found: list[EventView]) -> pd.DataFrame:
    return pd.DataFrame([{
        "Time (UTC)": utc_text(e.at), "Bot": e.bot or "(fleet)",
        "What": e.kind.removeprefix("control."), "Source": e.code or "",
        "Reason": e.message, "By": e.actor or ""} for e in found])


def render() -> None:
    with page("Risk"):
        ctx = context()
        start, end, label = range_picker("risk_range", default="1 week")
        denials: list[DenialCount] = ctx.cached("denials", start, end, BUCKETS_S[label])
        halts: list[EventView] = ctx.cached("halts", start, end)
        st.subheader("Denials by rule")
        if denials:
            frame = pd.DataFrame([{"Time": d.bucket, "Rule": d.rule, "Denials": d.count}
                                  for d in denials])
            st.plotly_chart(px.bar(frame, x="Time", y="Denials", color="Rule", height=320),
                            width="stretch")
            st.dataframe(denials_by_rule(denials), hide_index=True)
        else:
            st.info(f"No orders were denied in the last {label}.")
        st.subheader("Halts, circuit breakers and resumes")
        if halts:
            st.dataframe(events_table(halts), hide_index=True, width="stretch")
        else:
            st.info(f"No halts or resumes in the last {label}.")


render()
