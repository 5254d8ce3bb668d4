"""`fleet data record` killed with SIGKILL at different moments of its backfill, then
restarted: every minute the venue (the sandbox service on loopback) serves is stored exactly
once, with no hole and no duplicate, on SQLite and PostgreSQL, and no gap is alerted."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from fleetkit.brokers.sandbox.client import SandboxClient
from fleetkit.brokers.sandbox.service import SandboxService
from fleetkit.brokers.sandbox.testing import (
    NEW_YORK_MIDDAY,
    ManualClock,
    ScriptedPrices,
    build_venue,
)
from fleetkit.core.bars import BarRecord
from fleetkit.runtime.bar_sources import RECORDER_ACCOUNT, SandboxBars
from fleetkit.store.bars import BarStore
from fleetkit.store.schema import bars, events
from tests.support import eventually, migrated_database

pytestmark = pytest.mark.slow  # starts `fleet` processes

BTC = "CRYPTO:BTC/USDT"
DAYS = 7
MINUTES = DAYS * 1440  # the venue's clock stands still at a minute boundary
# Kill once at least this many bars are stored: inside the first day's chunk's successor,
# mid-backfill, and near its end (chunks of a day commit 1,440 bars at a time).
KILL_AFTER = (1, 4000, 8500)


@pytest.fixture
def sandbox() -> Iterator[SandboxService]:
    venue = build_venue(ScriptedPrices(), ManualClock(NEW_YORK_MIDDAY))
    with SandboxService(venue, match_interval_s=3600) as service:
        yield service


def record(tmp_path: Path, sandbox_url: str, url: str) -> subprocess.Popen[str]:
    config = tmp_path / "fleet.yaml"
    config.write_text(f'sandbox: {{url: "{sandbox_url}"}}\nbots: [{{name: btc, market: CRYPTO, '
                      'symbols: ["BTC/USDT"], strategy: buy_and_hold}]\n', encoding="utf-8")
    env = {**os.environ, "FLEET_HOME": str(tmp_path / "var")}
    env.pop("FLEET_DB_URL", None)
    return subprocess.Popen(
        [sys.executable, "-m", "fleetkit", "data", "record", "--days", str(DAYS), "--config",
         str(config), "--db", url, "--market-data-db", url],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def stored(database: Any) -> int:
    with database.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(bars)).scalar_one())


def test_sigkill_at_any_moment_of_a_backfill_loses_and_duplicates_no_minute(
        tmp_path: Path, sandbox: SandboxService, database_url: str) -> None:
    database = migrated_database(database_url)
    try:
        for threshold in KILL_AFTER:
            before = stored(database)
            process = record(tmp_path, sandbox.url, database_url)
            try:
                eventually(lambda t=threshold, p=process: stored(database) >= t
                           or p.poll() is not None, 30, f"{threshold} bars stored",
                           interval_s=0.05)
                assert process.poll() is None, process.communicate()
                process.send_signal(signal.SIGKILL)
            finally:
                process.communicate(timeout=10)  # reaps it and closes its pipes
            # Each run got somewhere, and died before the backfill was done.
            assert before < stored(database) < MINUTES

        process = record(tmp_path, sandbox.url, database_url)
        try:
            eventually(lambda: stored(database) >= MINUTES or process.poll() is not None,
                       30, "the backfill to finish", interval_s=0.1)
            process.send_signal(signal.SIGTERM)
            _, err = process.communicate(timeout=10)
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate(timeout=10)
        assert process.returncode == 0, err

        start = NEW_YORK_MIDDAY - timedelta(days=DAYS)
        with SandboxClient(sandbox.url, RECORDER_ACCOUNT) as client:
            served = SandboxBars(client).minute_bars(BTC, start, NEW_YORK_MIDDAY)
        assert len(served) == MINUTES
        expected = [BarRecord.from_floats(b.ts, b.open, b.high, b.low, b.close, b.volume)
                    for b in served]
        assert BarStore(database.engine).read(BTC, "1m", start, NEW_YORK_MIDDAY) == expected
        assert stored(database) == MINUTES  # and nothing outside the venue's range
        with database.engine.connect() as conn:
            assert conn.execute(select(events.c.message)
                                .where(events.c.kind == "data.gap")).all() == []
    finally:
        database.dispose()
