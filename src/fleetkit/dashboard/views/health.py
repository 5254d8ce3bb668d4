"""Health: heartbeats of every process, supervisor restarts, monitor findings,
notification routes and dead letters, and the last run of every scheduled job."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import streamlit as st

from fleetkit.core.durations import short_age
from fleetkit.dashboard.queries import Health
from fleetkit.dashboard.ui import context, page, utc_text


def heartbeat_table(health: Health, stale_after_s: float) -> pd.DataFrame:
    return pd.DataFrame([{
        "Component": b.component, "Kind": b.kind, "Status": b.status,
        "Age": short_age(b.age_s), "Stale": b.age_s > stale_after_s and b.status != "stopped",
        "Cycles": b.cycles, "Detail": b.detail, "Host": b.host, "PID": b.pid}
        for b in health.heartbeats])


def _heartbeats(health: Health, stale_after_s: float) -> None:
    st.subheader("Heartbeats")
    if not health.heartbeats:
        st.info("No process has written a heartbeat yet.")
        return
    table = heartbeat_table(health, stale_after_s)
    stale = int(table["Stale"].sum())
    if stale:
        st.warning(f"{stale} component(s) stale: no heartbeat for over "
                   f"{stale_after_s:.0f} s.")
    st.dataframe(table, hide_index=True, width="stretch")


def _restarts(health: Health) -> None:
    st.subheader("Supervisor restarts (24 h)")
    if not health.restarts:
        st.success("No process exited in the last 24 hours.")
        return
    st.dataframe(pd.DataFrame([{"Process": name, "Restarts": n} for name, n in
                               sorted(health.restart_counts.items())]), hide_index=True)
    st.dataframe(pd.DataFrame([{"Time (UTC)": utc_text(e.at),
                                "What": e.message} for e in health.restarts]),
                 hide_index=True, width="stretch")


def _findings(health: Health) -> None:
    st.subheader("Monitor findings")
    if not health.findings:
        st.info("No monitor has run yet (`fleet monitor run`, or the notifier's monitors).")
        return
    st.dataframe(pd.DataFrame([{
        "Check": f.key, "Monitor": f.monitor, "Severity": f.severity,
        "Alerting": f.alerting, "Message": f.message, "Since": f.since or "",
        "Checked": f.checked_at or ""} for f in health.findings]),
        hide_index=True, width="stretch")


def _notifications(health: Health) -> None:
    st.subheader("Notifications")
    if health.routes:
        st.dataframe(pd.DataFrame([{
            "Route": r.route, "Pending": r.pending, "Dead letters": r.dead, "Sent": r.sent,
            "Last error": r.last_error} for r in health.routes]), hide_index=True,
            width="stretch")
    else:
        st.info("Nothing has been routed to a notification route yet.")
    if health.dead_letters:
        st.error(f"{len(health.dead_letters)} dead letter(s): `fleet notify dead` lists "
                 "them, `fleet notify retry` sends them again.")
        st.dataframe(pd.DataFrame([{
            "Route": d.route, "Kind": d.kind, "Bot": d.bot or "", "Attempts": d.attempts,
            "Error": d.last_error, "Text": d.text[:120]} for d in health.dead_letters]),
            hide_index=True, width="stretch")


def _jobs(health: Health) -> None:
    st.subheader("Scheduled jobs (last run of each)")
    if not health.job_runs:
        st.info("No scheduled job has run (jobs: in fleet.yaml, `fleet scheduler run`).")
        return
    st.dataframe(pd.DataFrame([{
        "Job": r.job, "Period": r.period_key, "Status": r.status.value,
        "Started (UTC)": utc_text(r.started_at),
        "Finished (UTC)": "" if r.finished_at is None
        else utc_text(r.finished_at),
        "Attempt": r.attempt, "Detail": r.detail} for r in health.job_runs]),
        hide_index=True, width="stretch")


def render() -> None:
    with page("Health"):
        ctx = context()
        health: Health = ctx.cached("health", timedelta(hours=24))
        stale_after_s = ctx.loaded.config.runtime.stale_after_s
        _heartbeats(health, stale_after_s)
        _restarts(health)
        _findings(health)
        _notifications(health)
        _jobs(health)


render()
