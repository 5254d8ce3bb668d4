"""Partition upkeep for option quotes: partitions made ahead for the coming trading days,
and old days moved out of the database into verified Parquet files.

Archiving a day is four steps, each leaving the day whole somewhere:

    1. detach   (PostgreSQL) the day's partition stops taking writes
    2. export   its rows to ARCHIVE_DIR/YYYY/option_quotes_DAY.parquet + .sha256, atomically
    3. verify   read the file back: digest = sidecar, rows = what was exported
    4. drop     the detached table (SQLite: DELETE the day), only if it still holds as many
                rows as the verified file

A crash between any two leaves the rows in the database (steps 1-3) or a verified file
(after 4), and a rerun starts again from step 1 for every day the database still holds:
re-exporting is cheap and always right. A day archived before that gained rows since (a late
write) is merged with its file, never overwritten by the newcomers alone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from fleetkit.store import option_archive
from fleetkit.store.option_partitions import OptionPartitions

TradingDays = Callable[[date, date], list[date]]  # the trading days in [first, last]

# How far the calendar is searched for the next `ahead` trading days: long holiday runs
# (Diwali week, year end) never leave a two-week window without ten sessions.
_CALENDAR_WINDOW_DAYS = 14


@dataclass(frozen=True, slots=True)
class ArchivedDay:
    day: date
    rows: int
    archive: option_archive.ArchiveFile | None  # None: the day held no rows, nothing written
    dry_run: bool = False

    def as_json(self) -> dict[str, object]:
        return {"day": self.day.isoformat(), "rows": self.rows, "dry_run": self.dry_run,
                "archive": self.archive.as_json() if self.archive else None}


def days_ahead(trading_days: Sequence[date], today: date, ahead: int) -> list[date]:
    """Today (when it trades) and the next trading days, `ahead` of them in all."""
    return sorted(d for d in trading_days if d >= today)[:ahead]


def days_to_archive(stored: Iterable[date], today: date, keep_days: int) -> list[date]:
    """The stored days older than the last `keep_days` calendar days (today counts as one):
    with keep_days=1 everything before today goes."""
    if keep_days < 1:
        raise ValueError(f"keep_days must be at least 1, got {keep_days}")
    cutoff = today - timedelta(days=keep_days - 1)
    return sorted({d for d in stored if d < cutoff})


class OptionArchiver:
    """Runs the upkeep over one market-data database and one archive directory."""

    def __init__(self, partitions: OptionPartitions, archive_dir: Path,
                 trading_days: TradingDays) -> None:
        self._partitions = partitions
        self._archive_dir = archive_dir
        self._trading_days = trading_days

    def create_ahead(self, today: date, ahead: int) -> list[date]:
        """Make the partitions of the next `ahead` trading days (holidays get none); the
        days made now (those already there are skipped)."""
        if ahead <= 0:
            return []
        window = today + timedelta(days=_CALENDAR_WINDOW_DAYS + 2 * ahead)
        return self._partitions.create(days_ahead(self._trading_days(today, window), today,
                                                  ahead))

    def due(self, today: date, keep_days: int) -> list[date]:
        return days_to_archive(self._partitions.stored_days(), today, keep_days)

    def archive(self, today: date, keep_days: int, *,
                dry_run: bool = False) -> list[ArchivedDay]:
        """Archive every day older than the retention, oldest first."""
        if dry_run:
            held = {d.day: d.rows for d in self._partitions.days()}
            return [ArchivedDay(day, held[day], None, dry_run=True)
                    for day in days_to_archive(held, today, keep_days)]
        return [self.archive_day(day) for day in self.due(today, keep_days)]

    def archive_day(self, day: date) -> ArchivedDay:
        """Steps 1-4 for one day; safe to rerun after a crash at any point."""
        self._partitions.detach(day)
        exported = self._partitions.export_day(day)
        rows = exported.num_rows
        previous = option_archive.read_verified(self._archive_dir, day)
        if rows == 0 and previous is None:
            # A day made ahead that never traded (the collector did not run): nothing to
            # keep, so no empty file claims it was archived.
            self._partitions.drop(day, expected_rows=0)
            return ArchivedDay(day, 0, None)
        content = exported if previous is None else option_archive.merge(previous[1], exported)
        option_archive.write_day(self._archive_dir, day, content)
        archive = option_archive.verify(self._archive_dir, day, content)
        self._partitions.drop(day, expected_rows=rows)
        return ArchivedDay(day, rows, archive)
