"""The dashboard's main script (`streamlit run` runs it): page setup, the login box, and
navigation between the pages in views/."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from fleetkit.dashboard.auth import LoginGuard
from fleetkit.dashboard.ui import USER_KEY, PageStop, context, current_user

# Not "pages/": Streamlit would take a folder of that name for its older multipage mode.
PAGES = Path(__file__).parent / "views"


def _sidebar_login() -> None:
    try:
        ctx = context()
    except PageStop:
        return
    auth = ctx.settings.auth
    user = current_user()
    with st.sidebar:
        if user is not None:
            st.caption(f"Logged in as **{user}**")
            if st.button("Log out", key="logout"):
                st.session_state.pop(USER_KEY, None)
                if auth.oidc:
                    st.logout()
                st.rerun()
            return
        if not auth.configured:
            st.caption("Read-only: no authentication configured (dashboard.auth), so "
                       "controls are off and the dashboard listens on loopback only.")
            return
        if auth.oidc:
            st.button("Log in", key="oidc_login", on_click=st.login,
                      args=(auth.oidc_provider,))
        if ctx.users:
            _password_form(ctx.users, ctx.guard)


def _password_form(users: dict[str, str], guard: LoginGuard) -> None:
    with st.form("login", clear_on_submit=True):
        name = st.text_input("User", key="login_user")
        password = st.text_input("Password", type="password", key="login_password")
        submitted = st.form_submit_button("Log in")
    if not submitted:
        return
    wait = guard.locked_for_s()
    if wait > 0:
        st.error(f"Too many wrong passwords: logins are paused for {wait:.0f} s.")
    elif guard.attempt(users, name.strip(), password):
        st.session_state[USER_KEY] = name.strip()
        st.rerun()
    else:
        st.error("Wrong user or password.")


def main() -> None:
    st.set_page_config(page_title="fleetkit", page_icon=":material/monitoring:",
                       layout="wide")
    pages = [
        st.Page(PAGES / "overview.py", title="Overview", icon=":material/dashboard:",
                default=True),
        st.Page(PAGES / "pnl.py", title="P&L", icon=":material/show_chart:"),
        st.Page(PAGES / "positions.py", title="Positions", icon=":material/account_balance:"),
        st.Page(PAGES / "history.py", title="Orders & trades", icon=":material/receipt_long:"),
        st.Page(PAGES / "risk.py", title="Risk", icon=":material/shield:"),
        st.Page(PAGES / "health.py", title="Health", icon=":material/monitor_heart:"),
        st.Page(PAGES / "market_data.py", title="Market data", icon=":material/candlestick_chart:"),
        st.Page(PAGES / "training.py", title="Models & training", icon=":material/model_training:"),
        st.Page(PAGES / "controls.py", title="Controls", icon=":material/gavel:"),
    ]
    navigation = st.navigation(pages)
    navigation.run()
    _sidebar_login()


main()
