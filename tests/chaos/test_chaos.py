"""The chaos suite's CI run: a real fleet on PostgreSQL, 20 seeded SIGKILLs of bots and the
broker, operator halts in between — then every invariant must hold (see fleetkit.testing.chaos).
Long soaks: bench/chaos_soak.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleetkit.testing.chaos import ChaosPlan, ChaosRun

pytestmark = pytest.mark.slow


def test_twenty_kills_lose_nothing_duplicate_nothing_and_break_no_limit(
        pg_schema: str, tmp_path: Path) -> None:
    lines: list[str] = []
    plan = ChaosPlan(rounds=20, bots=5, seed=20261121, broker_kill_probability=0.2,
                     halt_probability=0.2, pause_s=(1.0, 3.0), settle_s=20.0)
    report = ChaosRun(plan, tmp_path, pg_schema, say=lines.append).run()

    assert report.violations == [], "\n".join(report.violations + lines)
    # A round skips only if nothing was alive for 30 s, or its target died under the signal.
    assert sum(report.kills.values()) + report.skipped == 20
    assert sum(report.kills.values()) >= 18, "\n".join(lines)
    assert report.kills["broker"] >= 1 and report.kills["bot"] >= 10
    assert report.halts >= 1
    assert report.orders >= 20 and report.fills >= 20
    assert report.duplicate_submissions == 0
