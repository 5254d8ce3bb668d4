"""Venue time per market: the offsets that let a demo trade every market from its first minute."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime, timedelta

from fleetkit.core.errors import ConfigError
from fleetkit.core.instruments import ALWAYS_OPEN
from fleetkit.core.sessions import Session
from fleetkit.engine.ports import SessionSource

from .book import BookSession
from .config import VenueConfig

logger = logging.getLogger("fleetkit.sandbox")

# Whole hours keep bar boundaries of every interval up to an hour where the wall clock has
# them, so a bot's "next bar closes at :05" is true in venue time too.
OFFSET_STEP_S = 3600
# Long enough to reach back over any holiday run a real calendar has (Golden Week, Diwali).
LOOKBACK_DAYS = (10, 40)


def demo_offset_s(sessions: SessionSource, calendar: str, now: datetime) -> int:
    """Whole hours (as seconds, zero or negative) to add to `now` so that a market closed at
    `now` is inside the first hour of its most recent session instead.

    Markets that are open at `now`, or never close, keep the wall clock. Putting a closed
    market back into its last session, rather than forward into the next, means every bar
    a demo bot sees is already in the past of the real market, so nothing is invented "ahead".
    """
    if calendar == ALWAYS_OPEN:
        return 0
    recent = _sessions_opened_by(sessions, calendar, now)
    if any(session.is_open(now) for session in recent):
        return 0
    latest = max(recent, key=lambda session: session.open)
    behind_s = int((now - latest.open).total_seconds())
    offset = -(behind_s // OFFSET_STEP_S) * OFFSET_STEP_S
    if not latest.is_open(now + timedelta(seconds=offset)):
        # A session (or its morning half) shorter than the step: fall back to minutes.
        offset = -((behind_s - 60) // 60) * 60
    return offset


def _sessions_opened_by(sessions: SessionSource, calendar: str, now: datetime) -> list[Session]:
    for days in LOOKBACK_DAYS:
        start = (now - timedelta(days=days)).date()
        found = [s for s in sessions.sessions(calendar, start, now.date()) if s.open <= now]
        if found:
            return found
    raise ValueError(f"calendar {calendar!r} has no session in the {LOOKBACK_DAYS[-1]} days "
                     f"before {now.isoformat()}; cannot place it in session for a demo")


def open_venue_time(txn: BookSession, config: VenueConfig, calendars: Mapping[str, str],
                    sessions: SessionSource | None,
                    now: datetime) -> tuple[datetime, dict[str, int]]:
    """The book's genesis time and each market's offset in seconds, recording them on first
    open. A market first seen later (a new instrument) gets its offset decided then."""
    genesis = _genesis(txn, config, now)
    offsets = txn.market_offsets()
    for market, calendar in sorted(calendars.items()):
        if market in offsets:
            continue
        offsets[market] = (demo_offset_s(sessions, calendar, now)
                           if config.time_mode == "demo" and sessions is not None else 0)
        txn.set_market_offset(market, offsets[market])
        logger.info("sandbox market %s runs %+d s from the wall clock", market, offsets[market])
    return genesis, offsets


def _genesis(txn: BookSession, config: VenueConfig, now: datetime) -> datetime:
    stored_mode = txn.meta("time_mode")
    if stored_mode is None:
        txn.set_meta("time_mode", config.time_mode)
        txn.set_meta("genesis_at", now.isoformat())
        logger.info("sandbox book created at %s in %s time", now.isoformat(), config.time_mode)
        return now
    if stored_mode != config.time_mode:
        raise ConfigError(
            f"the sandbox book was created in time_mode {stored_mode!r} but the config says "
            f"{config.time_mode!r}; switching would jump venue time. Set time_mode back to "
            f"{stored_mode!r}, or delete the sandbox database to start over")
    genesis = txn.meta("genesis_at")
    if genesis is None:
        raise ConfigError("the sandbox book has a time mode but no genesis time; "
                          "delete the sandbox database to start over")
    return datetime.fromisoformat(genesis)
