"""Bars from a CSV file for backtests, checked as they are read: every problem is one line
naming the file, the row (the header is row 1, as in an editor), the column and the fix."""

from __future__ import annotations

import csv
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from fleetkit.backtest.tape import BarTape, FloatArray, IntArray
from fleetkit.core.errors import ConfigError
from fleetkit.core.instruments import ALWAYS_OPEN, Instrument
from fleetkit.core.market_data import INTERVALS_S
from fleetkit.engine.ports import SessionSource

TIME_COLUMNS = ("ts", "timestamp", "time", "date", "datetime")
PRICE_COLUMNS = ("open", "high", "low", "close")
HEADER_HINT = "time,open,high,low,close[,volume]"
TIME_HINT = ("ISO 8601 (2024-01-02T14:30:00Z; a time without an offset is UTC) or epoch "
             "seconds or milliseconds")
CELL_FIX = "fix the value or delete the row"
_CHUNK_ROWS = 65_536  # rows held as text at once; a long file is converted as it is read


@dataclass(frozen=True, slots=True)
class _Layout:
    """Where each column is, and its name as the file writes it."""

    names: tuple[str, ...]
    time: int
    prices: dict[str, int]
    volume: int | None

    @classmethod
    def of(cls, path: Path, header: Sequence[str]) -> _Layout:
        names = tuple(cell.strip() for cell in header)
        where = {name.lower(): i for i, name in reversed(list(enumerate(names)))}
        found = ", ".join(name for name in names if name) or "nothing"
        time = next((where[c] for c in TIME_COLUMNS if c in where), None)
        if time is None:
            raise ConfigError(f"{path}: no time column (the header has: {found}); name it one "
                              f"of {', '.join(TIME_COLUMNS)} — the header needs {HEADER_HINT}, "
                              "comma-separated")
        missing = [c for c in PRICE_COLUMNS if c not in where]
        if missing:
            listed = " and ".join([", ".join(missing[:-1]), missing[-1]] if len(missing) > 1
                                  else missing)
            raise ConfigError(f"{path}: no {listed} column{'s' if len(missing) > 1 else ''} "
                              f"(the header has: {found}); the header needs {HEADER_HINT}, "
                              "comma-separated")
        return cls(names, time, {c: where[c] for c in PRICE_COLUMNS}, where.get("volume"))


@dataclass(frozen=True, slots=True)
class _Bars:
    rows: IntArray  # each bar's row in the file
    ts_s: IntArray
    open: FloatArray
    high: FloatArray
    low: FloatArray
    close: FloatArray
    volume: FloatArray

    @classmethod
    def concatenate(cls, parts: Sequence[_Bars]) -> _Bars:
        if not parts:
            no_ints, no_floats = np.empty(0, np.int64), np.empty(0, np.float64)
            return cls(no_ints, no_ints, no_floats, no_floats, no_floats, no_floats, no_floats)
        return cls(*(np.concatenate([getattr(p, name) for p in parts]) for name in
                     ("rows", "ts_s", "open", "high", "low", "close", "volume")))


def csv_tape(path: Path, instrument: Instrument, interval_s: int) -> BarTape:
    """Read OHLCV bars, refusing (ConfigError, one line) anything a replay would misread:
    bad cells, high/low that do not hold open and close, times out of order or repeated,
    and bars spaced unlike `interval_s`. Gaps (closed markets, missing bars) are fine."""
    bars, layout = _read(path)
    if len(bars.ts_s) == 0:
        raise ConfigError(f"{path} has a header but no bars; add one line per bar "
                          f"({HEADER_HINT})")
    time_name = layout.names[layout.time]
    _check_order(path, time_name, bars)
    _check_ranges(path, bars)
    _check_spacing(path, time_name, bars, interval_s)
    return BarTape(instrument, interval_s, bars.ts_s, bars.open, bars.high, bars.low,
                   bars.close, bars.volume)


def _read(path: Path) -> tuple[_Bars, _Layout]:
    return _read_clean(path) or _read_checking(path)


def _read_clean(path: Path) -> tuple[_Bars, _Layout] | None:
    """The fast way, for a file without a flaw: pandas' C reader (ten times faster than
    the csv module). Anything unusual (a warning, an error, text or NaN where a number
    belongs) returns None: the checking reader then finds the problem and names it."""
    import warnings

    import pandas as pd  # only backtests from CSV pay for pandas

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            frame = pd.read_csv(path, encoding="utf-8-sig", skipinitialspace=True,
                                skip_blank_lines=False, index_col=False)
        except (ValueError, OSError, Warning):
            return None
    try:
        layout = _Layout.of(path, [str(c) for c in frame.columns])
    except ConfigError:
        return None  # said in the checking reader's words, about the header as written
    columns = [frame.iloc[:, i].to_numpy() for i in range(len(frame.columns))]
    wanted = [*layout.prices.values(), *([] if layout.volume is None else [layout.volume])]
    if len(frame) == 0 or any(columns[i].dtype.kind not in "iuf" for i in wanted):
        return None
    o, h, lo, c = (columns[layout.prices[name]].astype(np.float64) for name in PRICE_COLUMNS)
    volume = (np.zeros(len(frame)) if layout.volume is None
              else columns[layout.volume].astype(np.float64))
    ts = _clean_times(columns[layout.time])
    prices_ok = np.isfinite(np.r_[o, h, lo, c]).all() and (np.r_[o, h, lo, c] > 0).all()
    if ts is None or not prices_ok or not (np.isfinite(volume) & (volume >= 0)).all():
        return None
    rows = np.arange(2, len(frame) + 2, dtype=np.int64)  # no blank lines: they would be NaN
    return _Bars(rows, ts, o, h, lo, c, volume), layout


def _clean_times(cells: npt.NDArray[Any]) -> IntArray | None:
    if cells.dtype.kind in "iuf":
        values = cells.astype(np.float64)
        scale = 1000.0 if len(values) and abs(values[0]) > 1e11 else 1.0
        seconds = values / scale
    else:
        seconds = np.asarray([_iso_seconds(str(c).strip()) for c in cells], dtype=np.float64)
    if not np.isfinite(seconds).all():
        return None
    result: IntArray = np.floor(seconds).astype(np.int64)
    return result


def _read_checking(path: Path) -> tuple[_Bars, _Layout]:
    """Row by row with the csv module, so that every problem is found with its row."""
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            reader = csv.reader(handle, skipinitialspace=True)
            try:
                return _parse(path, reader)
            except csv.Error as exc:
                raise ConfigError(f"{path} line {reader.line_num}: not CSV ({exc}); save it "
                                  "as comma-separated text") from None
    except FileNotFoundError:
        raise ConfigError(f"CSV file {path} not found; check the path") from None
    except IsADirectoryError:
        raise ConfigError(f"{path} is a directory; give the CSV file inside it") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not UTF-8 text; export it as CSV (UTF-8)") from None
    except OSError as exc:
        raise ConfigError(f"cannot read CSV {path}: {exc.strerror or exc}") from None


def _parse(path: Path, reader: Iterator[list[str]]) -> tuple[_Bars, _Layout]:
    header = next(reader, None)
    if header is None:
        raise ConfigError(f"{path} is empty; it needs a header line ({HEADER_HINT}) and one "
                          "line per bar")
    layout = _Layout.of(path, header)
    parts: list[_Bars] = []
    rows: list[int] = []
    records: list[list[str]] = []
    scale: float | None = None  # the first bar's time says: epoch s, ms, or ISO 8601 (None)
    for row, record in enumerate(reader, start=2):
        if not record or record == [""]:
            continue  # a blank line: counted as a row, holds no bar
        if len(record) != len(header):
            raise ConfigError(f"{path} row {row} has {len(record)} fields, the header "
                              f"{len(header)}; every row needs one value per column")
        if not parts and not rows:
            scale = _epoch_scale(record[layout.time].strip())
        rows.append(row)
        records.append(record)
        if len(records) == _CHUNK_ROWS:
            parts.append(_convert(path, layout, rows, records, scale))
            rows, records = [], []
    if records:
        parts.append(_convert(path, layout, rows, records, scale))
    return _Bars.concatenate(parts), layout


def _convert(path: Path, layout: _Layout, rows: list[int], records: list[list[str]],
             scale: float | None) -> _Bars:
    def column(i: int) -> list[str]:
        return [record[i].strip() for record in records]

    def cell(i: int) -> _Cell:
        return _Cell(path, layout.names[i], rows)

    ts = _times(cell(layout.time), column(layout.time), scale)
    o, h, lo, c = (_numbers(cell(layout.prices[name]), column(layout.prices[name]),
                            allow_zero=False) for name in PRICE_COLUMNS)
    volume = (np.zeros(len(records)) if layout.volume is None
              else _numbers(cell(layout.volume), column(layout.volume), allow_zero=True))
    return _Bars(np.asarray(rows, dtype=np.int64), ts, o, h, lo, c, volume)


@dataclass(frozen=True, slots=True)
class _Cell:
    """Names a cell of one column as a user finds it: file, row, column."""

    path: Path
    column: str
    rows: list[int]

    def at(self, i: int) -> str:
        return f"{self.path} row {self.rows[i]}, column {self.column}"


def _epoch_scale(first: str) -> float | None:
    try:
        value = float(first)
    except ValueError:
        return None
    return 1000.0 if abs(value) > 1e11 else 1.0


def _times(where: _Cell, cells: list[str], scale: float | None) -> IntArray:
    seconds = ([_iso_seconds(c) for c in cells] if scale is None
               else (_floats(cells) / scale).tolist())
    values = np.asarray(seconds, dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(values))
    if len(bad):
        i = int(bad[0])
        what = "is empty" if not cells[i] else f": {cells[i]!r} is not a time"
        raise ConfigError(f"{where.at(i)}{'' if what.startswith(':') else ' '}{what}; write "
                          f"{TIME_HINT}{'' if scale is None else ', like the first row'}")
    result: IntArray = np.floor(values).astype(np.int64)
    return result


def _iso_seconds(cell: str) -> float:
    try:
        moment = datetime.fromisoformat(cell)
    except ValueError:
        return math.nan
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def _floats(cells: list[str]) -> FloatArray:
    try:
        return np.asarray(cells, dtype=np.float64)
    except ValueError:
        return np.asarray([_float_or_nan(c) for c in cells], dtype=np.float64)


def _float_or_nan(cell: str) -> float:
    try:
        return float(cell)
    except ValueError:
        return math.nan


def _numbers(where: _Cell, cells: list[str], *, allow_zero: bool) -> FloatArray:
    values = _floats(cells)
    finite = np.isfinite(values)
    bad = np.flatnonzero(~finite | ((values < 0) if allow_zero else (values <= 0)))
    if len(bad):
        i = int(bad[0])
        raise ConfigError(f"{where.at(i)}{_problem(cells[i], bool(finite[i]), allow_zero)}; "
                          f"{CELL_FIX}")
    return values


def _problem(cell: str, finite: bool, allow_zero: bool) -> str:
    if not cell:
        return " is empty"
    if not finite:
        return f": {cell!r} is not a number"
    return f": {cell} is not a {'non-negative number' if allow_zero else 'positive price'}"


def _check_order(path: Path, time_name: str, bars: _Bars) -> None:
    wrong = np.flatnonzero(np.diff(bars.ts_s) <= 0)
    if not len(wrong):
        return
    i = int(wrong[0]) + 1
    here, there = int(bars.ts_s[i]), int(bars.ts_s[i - 1])
    where = f"{path} row {bars.rows[i]}, column {time_name}: {_iso(here)}"
    if here == there:
        raise ConfigError(f"{where} repeats row {bars.rows[i - 1]}'s time; remove the "
                          "duplicate row")
    raise ConfigError(f"{where} comes before row {bars.rows[i - 1]}'s {_iso(there)}; sort "
                      "the file by time")


def _check_ranges(path: Path, bars: _Bars) -> None:
    i = _first(bars.high < bars.low)
    if i is not None:
        raise ConfigError(f"{path} row {bars.rows[i]}: high {_text(bars.high[i])} is below low "
                          f"{_text(bars.low[i])}; swap them or fix the row")
    body_top, body_bottom = np.maximum(bars.open, bars.close), np.minimum(bars.open, bars.close)
    i = _first(bars.high < body_top)
    if i is not None:
        raise ConfigError(f"{path} row {bars.rows[i]}, column high: {_text(bars.high[i])} is "
                          f"below the open/close ({_text(body_top[i])}); {CELL_FIX}")
    i = _first(bars.low > body_bottom)
    if i is not None:
        raise ConfigError(f"{path} row {bars.rows[i]}, column low: {_text(bars.low[i])} is "
                          f"above the open/close ({_text(body_bottom[i])}); {CELL_FIX}")


def _first(broken: npt.NDArray[np.bool_]) -> int | None:
    found = np.flatnonzero(broken)
    return int(found[0]) if len(found) else None


def _check_spacing(path: Path, time_name: str, bars: _Bars, interval_s: int) -> None:
    if len(bars.ts_s) < 2:
        return
    gaps = np.diff(bars.ts_s)
    values, counts = np.unique(gaps, return_counts=True)
    spacing = int(values[np.argmax(counts)])
    if spacing != interval_s:
        fix = (f"pass --interval {_duration(spacing)}" if spacing in INTERVALS_S.values()
               else f"resample the file to one of {', '.join(INTERVALS_S)} and pass that "
                    "--interval")
        raise ConfigError(f"{path}: its bars are {_duration(spacing)} apart (the most common "
                          f"spacing), not the {_duration(interval_s)} interval asked; {fix}")
    close = np.flatnonzero(gaps < interval_s)
    if len(close):
        i = int(close[0]) + 1
        raise ConfigError(f"{path} row {bars.rows[i]}, column {time_name}: "
                          f"{_iso(int(bars.ts_s[i]))} is {_duration(int(gaps[i - 1]))} after "
                          f"the previous bar, closer than the {_duration(interval_s)} "
                          "interval; remove the extra row")


def bars_outside_sessions(tape: BarTape, sessions: SessionSource) -> IntArray:
    """Indices of the bars that overlap none of the instrument's trading spans."""
    calendar = tape.instrument.calendar
    first = datetime.fromtimestamp(int(tape.ts_s[0]), UTC).date() - timedelta(days=1)
    last = datetime.fromtimestamp(int(tape.ts_s[-1]) + tape.interval_s, UTC).date()
    spans = [span for session in sessions.sessions(calendar, first, last)
             for span in session.trading_spans()]
    opens = np.asarray([start.timestamp() for start, _ in spans], dtype=np.float64)
    closes = np.asarray([end.timestamp() for _, end in spans], dtype=np.float64)
    if not spans:
        return np.arange(len(tape), dtype=np.int64)
    # The last span that opened before the bar ended must still be open when it starts.
    j = np.searchsorted(opens, tape.ts_s + tape.interval_s, side="left") - 1
    inside = (j >= 0) & (closes[np.maximum(j, 0)] > tape.ts_s)
    outside: IntArray = np.flatnonzero(~inside)
    return outside


def off_session_warning(path: Path, tape: BarTape, sessions: SessionSource) -> str | None:
    """One line if some bars lie outside the market's sessions (weekends, holidays, the
    night), else None. Not a refusal: extended-hours data is real and replays as written."""
    if tape.instrument.calendar == ALWAYS_OPEN or len(tape) == 0:
        return None
    outside = bars_outside_sessions(tape, sessions)
    if not len(outside):
        return None
    market = tape.instrument.market
    return (f"{path}: {len(outside):,} of {len(tape):,} bars lie outside {market}'s trading "
            f"sessions ({tape.instrument.calendar}), the first at "
            f"{_iso(int(tape.ts_s[outside[0]]))}; a time without an offset is read as UTC — "
            "give times their offset (2024-01-02T09:30:00-05:00) or pass the file's --market; "
            "extended-hours bars are replayed as they are")


def _iso(ts_s: int) -> str:
    return datetime.fromtimestamp(ts_s, UTC).isoformat()


def _text(value: np.float64 | float) -> str:
    return f"{float(value):.15g}"


def _duration(seconds: int) -> str:
    for size, unit in ((86_400, "d"), (3_600, "h"), (60, "m")):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
