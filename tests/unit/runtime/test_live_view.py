"""`fleet up`'s live view through a database outage: the supervisor says it once when it
starts, reminds every few minutes and says when it ended — not at every 2 s refresh."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pytest

from fleetkit.core.errors import DatabaseUnavailableError
from fleetkit.runtime.fleet import LiveView
from fleetkit.store.status import FleetView


class FakeDatabase:
    """Answers with an empty fleet, or not at all while `down`; time moves only when told."""

    def __init__(self) -> None:
        self.down = False
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now

    def read(self) -> FleetView:
        if self.down:
            raise DatabaseUnavailableError("cannot reach the database at test: refused")
        return FleetView(datetime(2026, 3, 2, tzinfo=UTC), "ACTIVE", "", ())


def outage_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "fleetkit.fleet"
            and getattr(r, "fields", {}).get("action") == "db.unavailable"]


def test_a_database_outage_is_said_once_not_at_every_refresh(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    database, shown = FakeDatabase(), list[FleetView]()
    live = LiveView(shown.append, database.read, monotonic=database.monotonic)
    live.refresh()
    database.down = True
    for _ in range(100):  # 200 s of refreshes, one every 2 s
        database.now += 2
        live.refresh()
    assert outage_lines(caplog) == ["fleet view unavailable: database down"]
    database.down = False
    database.now += 2
    live.refresh()
    live.refresh()
    assert outage_lines(caplog)[1:] == ["fleet view back: database answering again after 3 min"]
    assert len(shown) == 3  # before, and both refreshes after; nothing while it was down


def test_a_long_database_outage_is_recalled_every_five_minutes(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    database = FakeDatabase()
    database.down = True
    live = LiveView(lambda view: None, database.read, monotonic=database.monotonic)
    for _ in range(450):  # 15 min of refreshes, one every 2 s
        live.refresh()
        database.now += 2
    assert outage_lines(caplog) == [
        "fleet view unavailable: database down",
        "fleet view unavailable: database down (still, after 5 min)",
        "fleet view unavailable: database down (still, after 10 min)"]
