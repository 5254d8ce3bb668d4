"""`fleet backtest --from-store`: the tapes of the instruments replayed, read from the bar
store (the market-data database) between --start and --to."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import typer

from fleetkit.backtest.stored_bars import TIMEFRAME_OF_INTERVAL, records_tape, stored_timeframe
from fleetkit.backtest.tape import BarTape
from fleetkit.cli.errors import fail
from fleetkit.config.loader import LoadedConfig
from fleetkit.core.instruments import Instrument, market

if TYPE_CHECKING:
    from sqlalchemy import Engine


def stored_tapes(loaded: LoadedConfig, instruments: dict[str, Instrument],
                 intervals: dict[str, int], start: str | None, end: str | None,
                 db: str | None, market_data_db: str | None) -> dict[str, BarTape]:
    from fleetkit.cli.data_cmds import _open

    for key, interval_s in intervals.items():
        if stored_timeframe(interval_s) is None:
            fail(f"{key}: the bar store serves {', '.join(TIMEFRAME_OF_INTERVAL.values())} "
                 f"bars, not every {interval_s} s: pass --interval 1m (or 5m, 15m, 1h)")
    database = _open(loaded, db, market_data_db)
    try:
        return {key: _tape(loaded, database.engine, key, instrument, intervals[key], start, end)
                for key, instrument in instruments.items()}
    finally:
        database.dispose()


def _tape(loaded: LoadedConfig, engine: Engine, key: str, instrument: Instrument,
          interval_s: int, start: str | None, end: str | None) -> BarTape:
    from fleetkit.cli.data_cmds import _moment, _sessions
    from fleetkit.core.bars import ONE_MINUTE, aggregate
    from fleetkit.store.bars import BarStore

    store = BarStore(engine)
    zone = ZoneInfo(market(key.partition(":")[0]).timezone)
    summary = next((s for s in store.summaries([key]) if s.timeframe == ONE_MINUTE), None)
    if summary is None:
        fail(f"the bar store has no bars of {key}: record them first with `fleet data "
             f"backfill {key}` (or `fleet data record` while the fleet runs)")
    first = _moment(start, "--start", zone) if start else summary.first
    last = (_moment(end, "--to", zone, next_day=True) if end
            else summary.last + timedelta(minutes=1))
    if first >= last:
        fail(f"--start {first:%Y-%m-%d %H:%M} is not before --to {last:%Y-%m-%d %H:%M} UTC: "
             "swap them")
    timeframe = TIMEFRAME_OF_INTERVAL[interval_s]
    if timeframe == ONE_MINUTE:
        records = store.read(key, ONE_MINUTE, first, last)
    else:
        minutes = store.read(key, ONE_MINUTE, first - timedelta(days=1),
                             last + timedelta(days=1))
        records = [b for b in aggregate(minutes, timeframe, _sessions(loaded, key, first, last))
                   if first <= b.open_time < last]
    if not records:
        fail(f"the bar store has no bars of {key} between {first:%Y-%m-%d %H:%M} and "
             f"{last:%Y-%m-%d %H:%M} UTC (it has {summary.first:%Y-%m-%d %H:%M} to "
             f"{summary.last:%Y-%m-%d %H:%M}): widen --start/--to or backfill")
    typer.echo(f"{key}: {len(records)} {timeframe} bars from the store, "
               f"{records[0].open_time:%Y-%m-%d %H:%M} to "
               f"{records[-1].open_time:%Y-%m-%d %H:%M} UTC", err=True)
    return records_tape(instrument, interval_s, records)

