"""The broker's and the services' heartbeats on a database that cannot be opened: one line
when the outage starts and a reminder every few minutes, not one per beat; the process
lives on. (A SQLite "file" that is a directory fails like a server that is down.)"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from fleetkit.runtime.heartbeat import ComponentHeartbeat
from fleetkit.runtime.sandbox_service import BrokerHeartbeat
from fleetkit.sqlutil.engine import make_engine
from fleetkit.store.database import Database
from fleetkit.store.fleet import FleetStore
from fleetkit.store.jobs import RunOwner


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def dead_database(tmp_path: Path) -> Iterator[Database]:
    database = Database(make_engine(f"sqlite:///{tmp_path}"), "sqlite:///dead")
    yield database
    database.dispose()


def heartbeat_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if str(getattr(r, "fields", {}).get("action", "")).endswith(".beat")]


def test_the_broker_says_its_heartbeat_is_not_written_once_not_every_second(
        dead_database: Database, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    clock = FakeMonotonic()
    heartbeat = BrokerHeartbeat(dead_database, monotonic=clock)
    for _ in range(400):  # a beat a second for 400 s
        heartbeat.beat("serving", "http://127.0.0.1:1")
        clock.now += 1
    assert heartbeat_lines(caplog) == ["heartbeat not written",
                                       "heartbeat not written (still, after 5 min)"]


def test_a_service_says_its_heartbeat_is_not_written_once_not_every_tick(
        dead_database: Database, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    clock = FakeMonotonic()
    heartbeat = ComponentHeartbeat(FleetStore(dead_database.engine), "scheduler", "scheduler",
                                   RunOwner("host", 1), datetime(2026, 3, 2, tzinfo=UTC),
                                   monotonic=clock)
    for cycle in range(60):  # a tick every 2 s for two minutes
        heartbeat.beat("running", "ok", cycle, datetime(2026, 3, 2, tzinfo=UTC))
        clock.now += 2
    assert heartbeat_lines(caplog) == ["heartbeat not written"]
