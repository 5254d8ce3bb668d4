"""The straddle from option_chain_minutes equals the straddle read from the quotes
themselves — usual minutes, minutes whose chains disagree on the spot across a strike
boundary, a strike step other than the chain's, a later expiry — on SQLite and PostgreSQL;
a day loaded around the store is summarised on PostgreSQL the same as written through it."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import delete, select

from fleetkit.sqlutil.engine import read_transaction, write_transaction
from fleetkit.store.option_chain_minutes import (
    chain_minute_rows,
    rebuild_day,
    straddle_from_summaries,
    strike_step,
)
from fleetkit.store.option_quotes import OptionQuoteStore, _straddle
from fleetkit.store.schema import option_chain_minutes
from tests.integration.test_option_quotes import DAY, OPEN, STEP, chain

MONTHLY = date(2026, 1, 27)


def written(store: OptionQuoteStore) -> None:
    """Eight minutes: the spot walks across strikes; at minute 3 the monthly chain's spot
    sits across a strike boundary from the weekly's; minute 5 has no weekly chain."""
    spots = ["24012.35", "24024.9", "24025", "24030", "24074.99", "24075", "24101", "24140"]
    for i, spot in enumerate(spots):
        minute = OPEN + timedelta(minutes=i)
        if i != 5:
            store.write_minute("weekly", minute, DAY, chain(minute, Decimal(spot)),
                               recorded_at=minute)
        monthly_spot = Decimal("24020") if i == 3 else Decimal(spot)
        store.write_minute("monthly", minute, DAY,
                           chain(minute, monthly_spot, expiry=MONTHLY), recorded_at=minute)


@pytest.mark.parametrize(("step", "expiry"), [
    (STEP, None), (STEP, MONTHLY), (Decimal(100), None), (Decimal(25), MONTHLY)])
def test_the_summaries_give_the_quotes_straddle_exactly(fleet_db: Any, step: Decimal,
                                                        expiry: date | None) -> None:
    store = OptionQuoteStore(fleet_db.engine)
    written(store)
    with read_transaction(fleet_db.engine) as conn:
        from_quotes = _straddle(conn, "NIFTY", DAY, step, expiry)
        summarised = straddle_from_summaries(conn, "NIFTY", DAY, step, expiry)
    assert summarised == from_quotes
    assert len(from_quotes) == 8
    assert any(p.premium is not None for p in from_quotes)
    assert store.straddle("NIFTY", DAY, step, expiry) == from_quotes


def test_a_day_without_summaries_is_read_from_the_quotes(fleet_db: Any) -> None:
    store = OptionQuoteStore(fleet_db.engine)
    written(store)
    with read_transaction(fleet_db.engine) as conn:
        expected = _straddle(conn, "NIFTY", DAY, STEP, None)
    with write_transaction(fleet_db.engine) as conn:
        conn.execute(delete(option_chain_minutes))
    with read_transaction(fleet_db.engine) as conn:
        assert straddle_from_summaries(conn, "NIFTY", DAY, STEP, None) is None
    assert store.straddle("NIFTY", DAY, STEP) == expected


def test_a_summary_row_per_chain_snapshot() -> None:
    rows = chain_minute_rows(DAY, OPEN, chain(OPEN, Decimal("24012.35"))
                             + chain(OPEN, Decimal("24012.35"), expiry=MONTHLY))
    assert [(r["expiry"], r["spot"], r["atm_strike"], r["quotes"]) for r in rows] == [
        (date(2026, 1, 6), Decimal("24012.35"), Decimal(24000), 18),
        (MONTHLY, Decimal("24012.35"), Decimal(24000), 18)]
    assert rows[0]["call_bid"] is not None and rows[0]["put_ask"] is not None
    assert strike_step([Decimal(24000)]) is None
    assert strike_step([Decimal(24100), Decimal(24000), Decimal(24050)]) == Decimal(50)


def test_rebuilding_a_day_gives_the_rows_written_through_the_store(fleet_db: Any,
                                                                   backend: str) -> None:
    if backend != "postgresql":
        pytest.skip("summaries are rebuilt on PostgreSQL only")
    store = OptionQuoteStore(fleet_db.engine)
    written(store)
    columns = [c for c in option_chain_minutes.c]
    with read_transaction(fleet_db.engine) as conn:
        through_store = conn.execute(select(*columns).order_by(*columns[:4])).all()
    with write_transaction(fleet_db.engine) as conn:
        conn.execute(delete(option_chain_minutes))
        assert rebuild_day(conn, DAY) == len(through_store)
        assert rebuild_day(conn, DAY) == 0  # twice: nothing more
    with read_transaction(fleet_db.engine) as conn:
        rebuilt = conn.execute(select(*columns).order_by(*columns[:4])).all()
    assert rebuilt == through_store
