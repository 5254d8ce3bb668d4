"""CSV tapes: good files replay as written; every problem is refused in one line that names
the file, the row (the header is row 1), the column and the fix."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pytest

from fleetkit.backtest.csv_bars import csv_tape, off_session_warning
from fleetkit.brokers.sandbox.catalog import load_catalog
from fleetkit.calendars import MarketCalendars
from fleetkit.core.errors import ConfigError
from fleetkit.core.instruments import Instrument
from fleetkit.core.sessions import Session

HEADER = "time,open,high,low,close,volume"
# 2024-01-05 is a Friday: NYSE trades 14:30-21:00 UTC.
GOOD = ["2024-01-05T14:30:00Z,10,11,9,10.5,100", "2024-01-05T14:31:00Z,10.5,11,10,10.8,50",
        "2024-01-05T14:32:00Z,10.8,10.9,10.1,10.2,0"]
CATALOG = load_catalog()
KO = CATALOG["NYSE:KO"].instrument
BTC = CATALOG["CRYPTO:BTC/USDT"].instrument


def write(tmp_path: Path, *lines: str, header: str = HEADER) -> Path:
    path = tmp_path / "bars.csv"
    path.write_text("\n".join([header, *lines]) + "\n", encoding="utf-8")
    return path


def refusal(path: Path, *, interval_s: int = 60, instrument: Instrument = KO) -> str:
    with pytest.raises(ConfigError) as caught:
        csv_tape(path, instrument, interval_s)
    message = str(caught.value)
    assert "\n" not in message, message
    assert str(path) in message, message
    assert "np.float64" not in message, message
    return message


def test_a_good_file_is_replayed_as_written(tmp_path: Path) -> None:
    tape = csv_tape(write(tmp_path, *GOOD), KO, 60)
    assert tape.ts_s.tolist() == [1704465000, 1704465060, 1704465120]
    assert tape.close.tolist() == [10.5, 10.8, 10.2]
    assert tape.volume.tolist() == [100, 50, 0]


def test_epoch_milliseconds_spaces_a_bom_and_another_time_column_name_are_read(
        tmp_path: Path) -> None:
    path = tmp_path / "bars.csv"
    path.write_text("\ufeffTimestamp, Open, High, Low, Close\n"
                    "1704465000000, 10, 11, 9, 10\n1704465060000, 10, 11, 9, 10\n",
                    encoding="utf-8")
    tape = csv_tape(path, KO, 60)
    assert tape.ts_s.tolist() == [1704465000, 1704465060]
    assert tape.volume.tolist() == [0, 0]


def test_a_blank_line_counts_as_a_row_like_in_an_editor(tmp_path: Path) -> None:
    message = refusal(write(tmp_path, GOOD[0], "", GOOD[1], "2024-01-05T14:32:00Z,1,2,1,x,5"))
    assert "row 5, column close" in message


@pytest.mark.parametrize(("cell", "said"), [
    ("yesterday", "'yesterday' is not a time"),
    ("2024-13-45T00:00:00Z", "'2024-13-45T00:00:00Z' is not a time"),
    ("", "is empty"),
])
def test_a_bad_time_names_its_row_and_how_to_write_times(tmp_path: Path, cell: str,
                                                          said: str) -> None:
    message = refusal(write(tmp_path, GOOD[0], f"{cell},10,11,9,10,1"))
    assert "row 3, column time" in message
    assert said in message
    assert "ISO 8601" in message


@pytest.mark.parametrize(("cell", "said"), [
    ("nan", "'nan' is not a number"),
    ("", "is empty"),
    ("-3", "-3 is not a positive price"),
    ("0", "0 is not a positive price"),
    ("ten", "'ten' is not a number"),
    ("inf", "'inf' is not a number"),
])
def test_a_bad_price_names_its_row_and_column(tmp_path: Path, cell: str, said: str) -> None:
    message = refusal(write(tmp_path, *GOOD[:2], f"2024-01-05T14:32:00Z,10,11,9,{cell},1"))
    assert "row 4, column close" in message
    assert said in message
    assert "fix the value or delete the row" in message


def test_a_negative_volume_is_refused_but_zero_is_fine(tmp_path: Path) -> None:
    message = refusal(write(tmp_path, GOOD[0], "2024-01-05T14:31:00Z,10,11,9,10,-1"))
    assert "row 3, column volume: -1 is not a non-negative number" in message


def test_a_high_below_the_low_is_refused(tmp_path: Path) -> None:
    message = refusal(write(tmp_path, GOOD[0], "2024-01-05T14:31:00Z,10,9,11,10,1"))
    assert "row 3" in message and "high 9 is below low 11" in message


def test_a_high_below_the_close_is_refused(tmp_path: Path) -> None:
    message = refusal(write(tmp_path, GOOD[0], "2024-01-05T14:31:00Z,10,11,9,12,1"))
    assert "row 3, column high: 11 is below the open/close" in message


def test_times_out_of_order_are_refused_with_the_fix(tmp_path: Path) -> None:
    message = refusal(write(tmp_path, GOOD[1], GOOD[0], GOOD[2]))
    assert "row 3, column time" in message and "before row 2's" in message
    assert "sort the file by time" in message


def test_a_repeated_time_is_refused_with_the_fix(tmp_path: Path) -> None:
    message = refusal(write(tmp_path, GOOD[0], GOOD[1], GOOD[1]))
    assert "row 4, column time" in message and "repeats row 3's" in message
    assert "remove the duplicate" in message


def test_a_missing_column_is_named_with_the_columns_found(tmp_path: Path) -> None:
    message = refusal(write(tmp_path, "2024-01-05T14:30:00Z,10,11,9", header="time,open,high,low"))
    assert "no close column" in message and "time, open, high, low" in message


def test_a_file_without_a_time_column_says_which_names_work(tmp_path: Path) -> None:
    message = refusal(write(tmp_path, "10,11,9,10", header="open,high,low,close"))
    assert "no time column" in message and "timestamp" in message


def test_an_empty_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bars.csv"
    path.write_text("", encoding="utf-8")
    assert "is empty" in refusal(path)


def test_a_header_without_bars_is_refused(tmp_path: Path) -> None:
    assert "no bars" in refusal(write(tmp_path))


def test_a_row_with_the_wrong_number_of_fields_is_refused(tmp_path: Path) -> None:
    message = refusal(write(tmp_path, GOOD[0], "2024-01-05T14:31:00Z,10,11,9,10,1,7"))
    assert "row 3 has 7 fields, the header 6" in message


def test_a_file_that_is_not_text_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bars.csv"
    path.write_bytes(b"\xff\xfe\x00\x01garbage")
    assert "not UTF-8 text" in refusal(path)


def test_a_missing_file_is_refused(tmp_path: Path) -> None:
    assert "not found" in refusal(tmp_path / "nope.csv")


def test_bars_spaced_unlike_the_interval_are_refused_with_the_interval_to_pass(
        tmp_path: Path) -> None:
    five = [f"2024-01-05T14:{30 + 5 * i}:00Z,10,11,9,10,1" for i in range(4)]
    message = refusal(write(tmp_path, *five), interval_s=60)
    assert "5m apart" in message and "1m" in message and "pass --interval 5m" in message


def test_bars_spaced_at_no_known_interval_say_which_intervals_exist(tmp_path: Path) -> None:
    daily = [f"2024-01-0{d}T21:00:00Z,10,11,9,10,1" for d in (2, 3, 4, 5)]
    message = refusal(write(tmp_path, *daily), interval_s=60)
    assert "1d apart" in message and "5s, 10s" in message and "1h" in message


def test_a_bar_closer_than_the_interval_is_refused(tmp_path: Path) -> None:
    rows = [*GOOD, "2024-01-05T14:32:30Z,10,11,9,10,1",
            *(f"2024-01-05T14:3{m}:00Z,10,11,9,10,1" for m in (3, 4, 5))]
    message = refusal(write(tmp_path, *rows))
    assert "row 5, column time" in message and "30s after the previous bar" in message


def test_gaps_between_bars_are_fine(tmp_path: Path) -> None:
    rows = [*GOOD, "2024-01-05T15:00:00Z,10,11,9,10,1"]
    assert len(csv_tape(write(tmp_path, *rows), KO, 60)) == 4


class WeekdaySessions:
    """NYSE-like sessions every weekday, 14:30-21:00 UTC (a fake SessionSource)."""

    def sessions(self, calendar: str, start: date, end: date) -> list[Session]:
        days = np.arange(np.datetime64(start), np.datetime64(end) + 1).astype(object)
        return [Session(datetime(d.year, d.month, d.day, 14, 30, tzinfo=UTC),
                        datetime(d.year, d.month, d.day, 21, 0, tzinfo=UTC))
                for d in days if d.weekday() < 5]


def test_bars_outside_the_markets_sessions_are_counted_in_one_warning(tmp_path: Path) -> None:
    weekend = [f"2024-01-06T15:0{i}:00Z,10,11,9,10,1" for i in range(3)]
    path = write(tmp_path, *GOOD, *weekend)
    tape = csv_tape(path, KO, 60)
    warning = off_session_warning(path, tape, WeekdaySessions())
    assert warning is not None and "\n" not in warning
    assert "3 of 6 bars" in warning and "2024-01-06T15:00:00+00:00" in warning
    assert "UTC" in warning and "--market" in warning


def test_a_bar_that_overlaps_the_open_is_inside_the_session(tmp_path: Path) -> None:
    hourly = ["2024-01-05T14:00:00Z,10,11,9,10,1", "2024-01-05T15:00:00Z,10,11,9,10,1"]
    path = write(tmp_path, *hourly)
    assert off_session_warning(path, csv_tape(path, KO, 3600), WeekdaySessions()) is None


def test_crypto_never_closes_so_weekend_bars_are_fine(tmp_path: Path) -> None:
    path = write(tmp_path, "2024-01-06T15:00:00Z,10,11,9,10,1")
    assert off_session_warning(path, csv_tape(path, BTC, 60), MarketCalendars()) is None


def test_the_real_nyse_calendar_knows_new_years_day(tmp_path: Path) -> None:
    path = write(tmp_path, "2024-01-01T15:00:00Z,10,11,9,10,1", *GOOD)
    warning = off_session_warning(path, csv_tape(path, KO, 60), MarketCalendars())
    assert warning is not None and "1 of 4 bars" in warning


@pytest.mark.parametrize("times", ["iso", "epoch"])
def test_a_file_read_row_by_row_gives_the_same_bars_as_one_read_at_once(
        tmp_path: Path, times: str) -> None:
    # A blank line sends a file to the careful, row-by-row reader; a clean one is read fast.
    rng = np.random.default_rng(11)
    prices = np.round(60 + np.cumsum(rng.standard_normal(300)) * 0.07, 6)
    stamps = [f"2024-01-05T{14 + (30 + i) // 60:02d}:{(30 + i) % 60:02d}:00+00:00"
              if times == "iso" else str(1704465000 + 60 * i) for i in range(300)]
    lines = [f"{t},{p},{p + 0.013},{p - 0.017},{p},{i % 7}"
             for i, (t, p) in enumerate(zip(stamps, prices.tolist(), strict=True))]
    clean = csv_tape(write(tmp_path, *lines), KO, 60)
    careful = csv_tape(write(tmp_path, *lines[:150], "", *lines[150:]), KO, 60)
    for name in ("ts_s", "open", "high", "low", "close", "volume"):
        assert np.array_equal(getattr(clean, name), getattr(careful, name)), name
    assert clean.ts_s[0] == 1704465000
