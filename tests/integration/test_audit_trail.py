"""Reading the audit trail on SQLite and PostgreSQL: strictly newest first, and --kind by
whole dotted parts (`fill` finds order.fill), the same rule in SQL as in Python."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fleetkit.engine.ports import Event
from fleetkit.store.audit import kind_matches, recent_events, recorded_kinds
from fleetkit.store.ledger import SqlLedger

T1 = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
T2 = T1 + timedelta(seconds=1)


def record(db: Any, kind: str, at: datetime, message: str = "") -> None:
    SqlLedger(db.engine, "-").record_event(None, Event(kind, message or kind), at)


def test_newest_first_breaks_ties_in_time_by_insertion_order(fleet_db: Any) -> None:
    record(fleet_db, "fleet.started", T2, "a")  # recorded first, happened later
    record(fleet_db, "fleet.started", T1, "b")
    record(fleet_db, "fleet.started", T2, "c")  # the same instant as a, recorded after it
    assert [e.message for e in recent_events(fleet_db.engine)] == ["c", "a", "b"]
    assert [e.message for e in recent_events(fleet_db.engine, limit=2)] == ["c", "a"]


def test_a_kind_filter_finds_whole_dotted_parts_and_treats_wildcards_literally(
        fleet_db: Any) -> None:
    kinds = ["order.fill", "fill.refused", "order.submitted", "risk.denied",
             "order.outcome_unknown", "order.outcomeXunknown"]
    for kind in kinds:
        record(fleet_db, kind, T1)
    for wanted in ("fill", "order", "order.", "order.fill", "denied", "outcome_unknown",
                   "outcome%", "fil", "_"):
        found = sorted(e.kind for e in recent_events(fleet_db.engine, kind=wanted))
        assert found == sorted(k for k in kinds if kind_matches(k, wanted)), wanted
    assert recorded_kinds(fleet_db.engine) == sorted(kinds)
