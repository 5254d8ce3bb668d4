"""Controls: halt the fleet or a bot, reduce-only, resume — only when logged in, only after
typing the target's name to confirm, and through the CLI's audited path."""

from __future__ import annotations

import streamlit as st
from sqlalchemy.exc import DBAPIError

from fleetkit.core.controls import TradingState
from fleetkit.core.errors import UnknownBotError
from fleetkit.dashboard.context import CONTROL_DB_URL_ENV, DashboardContext
from fleetkit.dashboard.ui import context, current_user, page
from fleetkit.store.status import FleetView

ALL = "ALL"
ACTIONS = {"Halt": TradingState.HALTED, "Reduce-only": TradingState.REDUCING,
           "Resume": TradingState.ACTIVE}


def _current(view: FleetView) -> None:
    if view.fleet_state != "active":
        st.error(f"The whole fleet is {view.fleet_state.upper()}: {view.fleet_reason}")
    else:
        st.success("The fleet-wide switch is ACTIVE.")
    held = [b for b in view.bots if b.state in ("HALTED", "REDUCING")]
    for bot in held:
        st.warning(f"**{bot.name}** is {bot.state}: {bot.reason}")


def render() -> None:
    with page("Controls"):
        ctx = context()
        user = current_user()
        if user is None:
            st.info("Log in to use the controls (sidebar)." if ctx.settings.auth.configured
                    else "Controls need authentication: configure dashboard.auth (see "
                    "docs/dashboard.md). Until then use `fleet halt` / `fleet resume`.")
            return
        view: FleetView = ctx.cached("overview")
        _current(view)
        with st.form("control"):
            action = st.radio("Action", list(ACTIONS), horizontal=True, key="control_action")
            target = st.selectbox("Target", [ALL, *(b.name for b in view.bots)],
                                  key="control_target",
                                  help="ALL is the fleet-wide switch; a bot name is that bot")
            reason = st.text_input("Reason (kept in the audit trail)", key="control_reason")
            confirm = st.text_input("Type the target's name to confirm", key="control_confirm")
            submitted = st.form_submit_button("Apply")
        if submitted:
            _apply(ctx, user, action, target, reason.strip(), confirm.strip())


def _apply(ctx: DashboardContext, user: str, action: str, target: str, reason: str,
           confirm: str) -> None:
    state = ACTIONS[action]
    if state is not TradingState.ACTIVE and not reason:
        st.error("Give a reason: it goes into the audit trail.")
        return
    if confirm != target:
        st.error(f"Not applied: type {target} in the confirmation box to {action.lower()} "
                 f"{'the whole fleet' if target == ALL else target}.")
        return
    bot = None if target == ALL else target
    try:
        outcome = ctx.set_state(bot, state, reason or "resumed from the dashboard",
                                f"dashboard:{user}")
    except UnknownBotError as exc:
        st.error(str(exc))
        return
    except DBAPIError as exc:
        if "permission denied" in str(exc).lower():
            st.error("This dashboard's database login may only read: set "
                     f"{CONTROL_DB_URL_ENV} to a login allowed to change controls "
                     "(docs/dashboard.md).")
            return
        raise
    (st.warning if outcome.startswith("refused") else st.success)(outcome)


render()
