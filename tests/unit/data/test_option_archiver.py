"""Which days get partitions ahead and which are archived: pure date arithmetic."""

from __future__ import annotations

from datetime import date

import pytest

from fleetkit.data.option_archiver import days_ahead, days_to_archive

TRADING = [date(2026, 1, 22), date(2026, 1, 23), date(2026, 1, 27), date(2026, 1, 28)]


def test_days_ahead_start_today_and_skip_what_the_calendar_skips() -> None:
    assert days_ahead(TRADING, date(2026, 1, 23), 2) == [date(2026, 1, 23), date(2026, 1, 27)]
    assert days_ahead(TRADING, date(2026, 1, 24), 5) == [date(2026, 1, 27), date(2026, 1, 28)]


def test_keep_days_counts_today_and_never_archives_it() -> None:
    stored = [date(2026, 1, 20), date(2026, 1, 21), date(2026, 1, 22)]
    assert days_to_archive(stored, date(2026, 1, 22), 1) == [date(2026, 1, 20),
                                                               date(2026, 1, 21)]
    assert days_to_archive(stored, date(2026, 1, 22), 2) == [date(2026, 1, 20)]
    with pytest.raises(ValueError, match="at least 1"):
        days_to_archive(stored, date(2026, 1, 22), 0)
