"""Option quotes on SQLite and PostgreSQL: a minute written once however often it is
retried, a missed minute recorded and filled late, one minute's chain and a day's ATM
straddle read back exactly."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import text

from fleetkit.core.option_quotes import OptionQuote
from fleetkit.store.option_partitions import PartitionError, partition_name
from fleetkit.store.option_quotes import MISSED, WRITTEN, OptionQuoteStore

DAY = date(2026, 1, 5)  # a Monday that NSE trades
OPEN = datetime(2026, 1, 5, 3, 45, tzinfo=UTC)  # 09:15 IST
EXPIRY = date(2026, 1, 6)
STEP = Decimal(50)


def chain(minute: datetime, spot: Decimal, strikes: range = range(23800, 24250, 50),
          expiry: date = EXPIRY) -> list[OptionQuote]:
    """A small chain around `spot`: prices move with the minute so each minute differs."""
    bump = Decimal(minute.minute) / 100
    quotes = []
    for strike in strikes:
        for kind in ("CE", "PE"):
            intrinsic = max(spot - strike, 0) if kind == "CE" else max(strike - spot, 0)
            mid = intrinsic + Decimal("80.05") + bump + (expiry - EXPIRY).days  # later: dearer
            quotes.append(OptionQuote(
                f"NFO:NIFTY{expiry:%y%m%d}{strike}{kind}", "NIFTY", expiry, Decimal(strike), kind,
                mid - Decimal("0.05"), mid + Decimal("0.05"), None if strike == 23800 else mid,
                1000 + strike % 7, 50_000 + minute.minute, spot, 0.1325 if kind == "CE" else None,
                "sandbox"))
    return quotes


@pytest.fixture
def store(fleet_db: Any) -> Iterator[OptionQuoteStore]:
    yield OptionQuoteStore(fleet_db.engine)


def test_a_retried_minute_inserts_nothing_and_the_chain_reads_back_exactly(
        store: OptionQuoteStore) -> None:
    quotes = chain(OPEN, Decimal("24012.35"))
    assert store.write_minute("nifty", OPEN, DAY, quotes, recorded_at=OPEN) == len(quotes)
    assert store.write_minute("nifty", OPEN, DAY, quotes, recorded_at=OPEN) == 0
    # Another collector overlapping the same instruments stores no second copy either.
    assert store.write_minute("other", OPEN, DAY, quotes, recorded_at=OPEN) == 0
    read = store.chain("NIFTY", OPEN)
    assert sorted(read, key=lambda q: q.instrument) == sorted(quotes, key=lambda q: q.instrument)
    assert store.chain("NIFTY", OPEN + timedelta(minutes=1)) == []
    assert [(m.status, m.rows) for m in store.minutes("nifty", DAY)] == [(WRITTEN, len(quotes))]


def test_a_missed_minute_is_recorded_once_and_a_late_snapshot_fills_it(
        store: OptionQuoteStore) -> None:
    late = OPEN + timedelta(minutes=1)
    assert store.record_missed("nifty", late, DAY, recorded_at=late)
    assert not store.record_missed("nifty", late, DAY, recorded_at=late)
    assert [m.status for m in store.minutes("nifty", DAY)] == [MISSED]
    quotes = chain(late, Decimal(24000))
    assert store.write_minute("nifty", late, DAY, quotes, recorded_at=late) == len(quotes)
    assert [(m.status, m.rows) for m in store.minutes("nifty", DAY)] == [(WRITTEN, len(quotes))]
    assert not store.record_missed("nifty", late, DAY, recorded_at=late)


def test_the_straddle_follows_the_atm_strike_minute_by_minute(store: OptionQuoteStore) -> None:
    spots = [Decimal("24012.35"), Decimal("24026"), Decimal("24074.99")]
    for i, spot in enumerate(spots):
        minute = OPEN + timedelta(minutes=i)
        store.write_minute("nifty", minute, DAY, chain(minute, spot), recorded_at=minute)
        # A later expiry at the same strikes must not leak into the nearest one's series.
        store.write_minute("nifty-monthly", minute, DAY,
                           chain(minute, spot, expiry=date(2026, 1, 27)), recorded_at=minute)
    series = store.straddle("NIFTY", DAY, STEP)
    assert [p.strike for p in series] == [Decimal(24000), Decimal(24050), Decimal(24050)]
    first = series[0]
    # The call: 12.35 in the money + 80.05 + the minute's bump (0.45); the put: 80.50.
    assert (first.call, first.put, first.premium) == (
        Decimal("92.85"), Decimal("80.50"), Decimal("173.35"))
    assert series[2].minute == OPEN + timedelta(minutes=2)
    monthly = store.straddle("NIFTY", DAY, STEP, expiry=date(2026, 1, 27))[0]
    assert (monthly.strike, monthly.premium) == (Decimal(24000), Decimal("215.35"))
    assert store.straddle("BANKNIFTY", DAY, STEP) == []


def test_a_minute_off_the_minute_is_refused(store: OptionQuoteStore) -> None:
    with pytest.raises(ValueError, match="whole minute"):
        store.write_minute("nifty", OPEN + timedelta(seconds=5), DAY, [], recorded_at=OPEN)


@pytest.mark.parametrize("backend", ["postgresql"])
def test_postgresql_stores_each_day_in_its_own_partition(store: OptionQuoteStore,
                                                         fleet_db: Any) -> None:
    store.write_minute("nifty", OPEN, DAY, chain(OPEN, Decimal(24000)), recorded_at=OPEN)
    with fleet_db.engine.connect() as conn:
        held = conn.execute(text(
            f"SELECT count(*) FROM {partition_name(DAY)}")).scalar_one()
        kind = conn.execute(text("SELECT relkind FROM pg_class WHERE oid = "
                                 "to_regclass('option_quotes')")).scalar_one()
    assert (held, kind) == (18, "p")


@pytest.mark.parametrize("backend", ["postgresql"])
def test_a_write_into_a_day_being_archived_fails_with_the_fix(store: OptionQuoteStore,
                                                              fleet_db: Any) -> None:
    store.write_minute("nifty", OPEN, DAY, chain(OPEN, Decimal(24000)), recorded_at=OPEN)
    with fleet_db.engine.begin() as conn:
        conn.execute(text(f"ALTER TABLE option_quotes DETACH PARTITION {partition_name(DAY)}"))
    fresh = OptionQuoteStore(fleet_db.engine)  # a new process: no partition known yet
    later = OPEN + timedelta(minutes=1)
    with pytest.raises(PartitionError, match="fleet data archive"):
        fresh.write_minute("nifty", later, DAY, chain(later, Decimal(24000)), recorded_at=later)
