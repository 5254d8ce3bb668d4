"""What every page shares: the process-wide context, the logged-in user, error display,
time ranges and number formats. The only module besides the pages that imports Streamlit."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import streamlit as st
from sqlalchemy.exc import DBAPIError

from fleetkit.core.errors import DatabaseUnavailableError, FleetError
from fleetkit.dashboard.context import DB_URL_ENV, DashboardContext, build_context
from fleetkit.runtime.logs import get_logger

log = get_logger("dashboard")

RANGES: dict[str, timedelta] = {
    "1 hour": timedelta(hours=1), "6 hours": timedelta(hours=6),
    "1 day": timedelta(days=1), "1 week": timedelta(days=7),
    "30 days": timedelta(days=30), "1 year": timedelta(days=365),
}
USER_KEY = "fleet_user"


class PageStop(Exception):
    """Raised after a page has shown why it cannot go on (caught by `page()`)."""


@st.cache_resource(show_spinner=False, on_release=DashboardContext.close)
def _shared_context(_key: str) -> DashboardContext:
    return build_context()


def context() -> DashboardContext:
    """The process-wide context; when the database is down or the config is wrong, an
    error box saying so and what to do (the next refresh tries again)."""
    key = "|".join(os.environ.get(name, "") for name in
                   ("FLEET_CONFIG", "FLEET_HOME", "FLEET_DB_URL", DB_URL_ENV))
    try:
        return _shared_context(key)
    except DatabaseUnavailableError as exc:
        _unreachable(exc)
    except FleetError as exc:
        st.error(f"The dashboard cannot start: {exc}")
    raise PageStop


@contextmanager
def page(title: str) -> Iterator[None]:
    """A page body: its title, and a clear message instead of a traceback when the
    database goes away mid-page."""
    st.title(title)
    try:
        yield
    except PageStop:
        return
    except DatabaseUnavailableError as exc:
        _unreachable(exc)
    except DBAPIError as exc:
        reason = str(exc.orig if exc.orig is not None else exc).strip().splitlines()[0]
        st.error(f"The database refused the query: {reason}")
    except Exception as exc:  # a bug: say so in one line, the log has the traceback
        log.error("page failed", action="dashboard.page_failed", page=title,
                  error=f"{type(exc).__name__}: {exc}", exc_info=True)
        st.error(f"Internal error on this page: {type(exc).__name__}: {exc} (the "
                 "dashboard's log has the details; please report it)")


def _unreachable(exc: DatabaseUnavailableError) -> None:
    st.error(f"The fleet database is unreachable: {exc}. Trading bots pause on their own; "
             "this page tries again on every refresh.")


def current_user() -> str | None:
    """Who is logged in (password or OIDC), or None."""
    name = st.session_state.get(USER_KEY)
    if isinstance(name, str):
        return name
    try:
        if st.user.is_logged_in:
            return str(st.user.get("email") or st.user.get("name") or "oidc-user")
    except (AttributeError, KeyError, RuntimeError):  # st.login not configured
        return None
    return None


def range_picker(key: str, default: str = "1 day") -> tuple[datetime, datetime, str]:
    """A range selector; [start, end) covering the last `range` and the range's name.

    The bounds are whole minutes (end rounded up), so a page's queries are the same, and
    cached, for a minute at a time."""
    label = st.segmented_control("Range", list(RANGES), default=default, key=key) or default
    end = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(minutes=1)
    return end - RANGES[label], end, label


def utc_text(moment: datetime) -> str:
    """A moment in a table cell, UTC to the second (the column header says UTC)."""
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def money(value: Decimal | float, currency: str = "USD", *, signed: bool = True) -> str:
    """$1,234.50 style; with `signed`, a + on gains (P&L reads better with its sign)."""
    amount = float(value)
    sign = "-" if amount < 0 else "+" if amount > 0 and signed else ""
    symbol = "$" if currency == "USD" else ""
    suffix = "" if currency == "USD" else f" {currency}"
    return f"{sign}{symbol}{abs(amount):,.2f}{suffix}"

