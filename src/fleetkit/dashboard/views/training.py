"""Models & training: the newest training runs with their steps and durations, the active
model version of every bot and timeframe with its metrics against the version active before
it, rejections and rollbacks (docs/pipeline.md, docs/registry.md)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from fleetkit.core.errors import FleetError
from fleetkit.dashboard.training_queries import ActiveModel, TrainingView
from fleetkit.dashboard.ui import context, page, utc_text
from fleetkit.store.model_registry import ModelVersion
from fleetkit.store.training_runs import RunState, TrainingRun

NOTHING_YET = ("No training run and no model version recorded yet: run `fleet train run "
               "BOT`, or schedule it (docs/pipeline.md).")
# The registry's metrics (the evaluation gate's measurements of the candidate, held out).
METRICS = (("total_return", "Return"), ("sharpe", "Sharpe"), ("max_drawdown", "Max DD"),
           ("buy_and_hold_return", "B&H return"))


def _seconds(run: TrainingRun) -> float | None:
    if run.finished_at is None:
        return None
    return round((run.finished_at - run.started_at).total_seconds(), 1)


def runs_frame(view: TrainingView) -> pd.DataFrame:
    return pd.DataFrame([{
        "Run": r.run_id, "Bot": r.bot, "Timeframe": r.timeframe, "Period": r.period,
        "Attempt": r.attempt, "State": r.state.value, "Trainer": r.trainer,
        "Started (UTC)": utc_text(r.started_at), "Seconds": _seconds(r),
        "Failed step": r.failed_step or "", "Error": r.error,
        "Version": r.version_id} for r in view.runs])


def steps_frame(run: TrainingRun) -> pd.DataFrame:
    return pd.DataFrame([{
        "Step": s.step, "State": s.state.value, "Started (UTC)": utc_text(s.started_at),
        "Seconds": s.seconds} for s in run.steps])


def steps_figure(run: TrainingRun) -> go.Figure:
    """A Gantt-like bar per step: from its start to its end (now, while it runs)."""
    fig = go.Figure()
    origin = run.started_at
    for s in run.steps:
        start = (s.started_at - origin).total_seconds()
        fig.add_trace(go.Bar(y=[s.step], x=[s.seconds or 0.0], base=[start],
                             orientation="h", name=s.step, showlegend=False,
                             hovertemplate=f"{s.step}: {s.state.value}, "
                                           "%{x:.2f} s<extra></extra>"))
    fig.update_layout(height=40 + 28 * max(len(run.steps), 1),
                      margin={"l": 10, "r": 10, "t": 10, "b": 10},
                      xaxis_title="seconds from the run's start",
                      yaxis={"autorange": "reversed"})
    return fig


def _metric(version: ModelVersion | None, key: str) -> float | None:
    if version is None:
        return None
    value: Any = version.metrics.get(key)
    return float(value) if isinstance(value, int | float) else None


def active_frame(view: TrainingView) -> pd.DataFrame:
    rows = []
    for model in view.active:
        now, before = model.version, model.previous
        row: dict[str, Any] = {
            "Bot": now.bot, "Timeframe": now.timeframe, "Version": now.id,
            "Policy": now.policy, "How": model.how.replace("_", " "),
            "Since (UTC)": "" if now.activated_at is None else utc_text(now.activated_at),
            "Previous": None if before is None else before.id}
        for key, label in METRICS:
            row[label] = _metric(now, key)
            row[f"{label} before"] = _metric(before, key)
        sharpe, earlier = _metric(now, "sharpe"), _metric(before, "sharpe")
        row["Sharpe change"] = (None if sharpe is None or earlier is None
                                else round(sharpe - earlier, 4))
        rows.append(row)
    return pd.DataFrame(rows)


def rejections_frame(view: TrainingView) -> pd.DataFrame:
    return pd.DataFrame([{
        "At (UTC)": utc_text(r.at), "Bot": r.bot, "Timeframe": r.timeframe, "What": r.what,
        "Step": r.step, "Reason": r.reason, "By": r.actor} for r in view.rejections])


def rollbacks_frame(view: TrainingView) -> pd.DataFrame:
    return pd.DataFrame([{
        "At (UTC)": utc_text(r.at), "Bot": r.bot, "Timeframe": r.timeframe,
        "To version": r.to_version, "From version": r.from_version, "By": r.actor,
        "Reason": r.reason} for r in view.rollbacks])


def _run_steps(view: TrainingView) -> None:
    st.subheader("Steps of a run")
    labels = {f"{r.run_id} ({r.state.value})": r for r in view.runs}
    chosen = st.selectbox("Run", list(labels), key="training_run")
    run = labels[chosen] if chosen is not None else view.runs[0]
    if not run.steps:
        st.info("This run has recorded no step yet.")
        return
    st.dataframe(steps_frame(run), hide_index=True, width="stretch")
    st.plotly_chart(steps_figure(run), width="stretch", key="training_steps_chart")


def _active(models: tuple[ActiveModel, ...], view: TrainingView) -> None:
    st.subheader("Active versions")
    if models:
        st.dataframe(active_frame(view), hide_index=True, width="stretch")
        st.caption("Metrics are the evaluation gate's, out of sample, as stored in the "
                   "registry; \"before\" is the version active before this one.")
    else:
        st.info("No model version is active (`fleet model activate VERSION`).")


def render() -> None:
    with page("Models & training"):
        ctx = context()
        try:
            view: TrainingView = ctx.cache.get(("training",), lambda: ctx.training().view())
        except FleetError as exc:
            st.error(f"The training records cannot be read: {exc}")
            return
        if view.empty:
            st.info(NOTHING_YET)
            return
        cols = st.columns(4)
        cols[0].metric("Runs shown", str(len(view.runs)))
        cols[1].metric("Failed", str(sum(r.state is RunState.FAILED for r in view.runs)))
        cols[2].metric("Rejected", str(sum(r.state is RunState.REJECTED for r in view.runs)))
        cols[3].metric("Active versions", str(len(view.active)))
        st.subheader("Training runs")
        if view.runs:
            st.dataframe(runs_frame(view), hide_index=True, width="stretch")
            _run_steps(view)
        else:
            st.info("No training run recorded yet (`fleet train run BOT`).")
        _active(view.active, view)
        st.subheader("Rejections")
        if view.rejections:
            st.dataframe(rejections_frame(view), hide_index=True, width="stretch")
        else:
            st.info("No model was rejected.")
        st.subheader("Rollbacks")
        if view.rollbacks:
            st.dataframe(rollbacks_frame(view), hide_index=True, width="stretch")
        else:
            st.info("No rollback.")
        st.caption(f"Newest first, as of {utc_text(datetime.now(UTC))} UTC (`fleet train "
                   "status`, `fleet model list BOT`).")


render()
