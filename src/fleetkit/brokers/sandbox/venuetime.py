"""Venue time per market: the offsets that let a demo trade every market from its first minute."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime, timedelta

from fleetkit.core.errors import ConfigError
from fleetkit.core.instruments import ALWAYS_OPEN
from fleetkit.engine.ports import SessionSource

from .book import BookSession
from .config import VenueConfig

logger = logging.getLogger("fleetkit.sandbox")

# Whole hours keep bar boundaries of every interval up to an hour where the wall clock has
# them, so a bot's "next bar closes at :05" is true in venue time too.
OFFSET_STEP_S = 3600
# How far into a trading stretch a demo market starts: every bar of up to 15 minutes that a
# bot's first cycle asks for is already complete there.
DEMO_LEAD = timedelta(minutes=15)
# Long enough to reach back over any holiday run a real calendar has (Golden Week, Diwali).
LOOKBACK_DAYS = (10, 40)


def demo_offset_s(sessions: SessionSource, calendar: str, now: datetime) -> int:
    """Whole hours (as seconds, zero or negative; whole minutes where a stretch is short) to
    add to `now` so that a market closed at `now` is at least DEMO_LEAD into a trading
    stretch (a session, or one half of it around a break).

    Markets that are open at `now`, or never close, keep the wall clock: moving one that
    opened a minute ago back into an earlier session would cost a long-running demo the real
    days in between, for the sake of one bar. A closed market goes back into its most recent
    stretch rather than forward into the next, so every bar a demo bot sees is already in
    the past of the real market and nothing is invented "ahead". The lead is there because a
    stretch's first bars are not complete yet: a demo placed a minute after the open would
    sit out its first bar.
    """
    if calendar == ALWAYS_OPEN:
        return 0
    for days in LOOKBACK_DAYS:
        start = (now - timedelta(days=days)).date()
        spans = sorted((span for session in sessions.sessions(calendar, start, now.date())
                        for span in session.trading_spans() if span[0] <= now), reverse=True)
        if any(begin <= now < end for begin, end in spans):
            return 0
        offset = _into_latest_stretch(spans, now)
        if offset is not None:
            return offset
    raise ConfigError(f"calendar {calendar!r} has no trading stretch of over "
                      f"{DEMO_LEAD.total_seconds() / 60:.0f} minutes in the {LOOKBACK_DAYS[-1]} "
                      f"days before {now.isoformat()}, so a demo cannot place it in session: "
                      "check its overrides file, or use time_mode real")


def _into_latest_stretch(spans: list[tuple[datetime, datetime]], now: datetime) -> int | None:
    for start, end in spans:  # latest first
        settled = start + DEMO_LEAD
        if settled > now or end - settled <= timedelta(minutes=1):
            continue
        behind_s = int((now - settled).total_seconds())
        offset = -(behind_s // OFFSET_STEP_S) * OFFSET_STEP_S
        if now + timedelta(seconds=offset) >= end:
            # A stretch shorter than lead + step (a half day's morning): fall back to minutes.
            offset = -(behind_s // 60) * 60
        return offset
    return None


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
