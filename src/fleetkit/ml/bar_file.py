"""A learning bot's training bars as one compressed file: what the training pipeline exports
on the production box and `fleet ml train --bars FILE` reads on the trainer
(docs/pipeline.md, "Runs and steps").

The file is a numpy `.npz` written with `savez_compressed` (deflate): the signal's base bars
as columns (open_s int64, open/high/low/close/volume float64, exactly as `SignalBars`
holds them: no rounding through text), the sessions that hold them (open, close and break
times in Unix seconds, -1 for no break) and a small JSON header (instrument, timeframe,
source, the moment the bars end). Why not Parquet: both ends already have numpy (the
features need it), pyarrow would be one more wheel on a 2-vCPU box for a file of a few
megabytes; and the file is read with `allow_pickle=False`, so a shipped file can never run
code on the trainer.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from fleetkit.core.errors import ConfigError
from fleetkit.core.sessions import Session
from fleetkit.features.columns import BarColumns
from fleetkit.ml.bot_bars import SignalBars

FORMAT = "fleetkit.ml.bars/1"
_COLUMNS = ("open", "high", "low", "close", "volume")


def write_bar_file(path: Path, bars: SignalBars, end: datetime) -> None:
    """Write `bars` (complete by `end`) to `path` (a `.npz`), whole or not at all."""
    header = {"format": FORMAT, "instrument": bars.instrument, "timeframe": bars.timeframe,
              "source": bars.source, "end": end.astimezone(UTC).isoformat(),
              "bars": len(bars)}
    sessions = bars.sessions
    partial = path.with_name(path.name + ".partial")
    with partial.open("wb") as handle:
        np.savez_compressed(
            handle, header=np.frombuffer(json.dumps(header).encode(), dtype=np.uint8),
            open_s=bars.bars.open_s.astype(np.int64),
            **{name: getattr(bars.bars, name).astype(np.float64) for name in _COLUMNS},
            session_open=_seconds([s.open for s in sessions]),
            session_close=_seconds([s.close for s in sessions]),
            break_start=_seconds([s.break_start for s in sessions]),
            break_end=_seconds([s.break_end for s in sessions]))
    partial.replace(path)


def read_bar_file(path: Path) -> tuple[SignalBars, datetime]:
    """The bars a file holds and the moment they end; ConfigError naming the file when it
    is not one."""
    try:
        with np.load(path, allow_pickle=False) as data:
            header = json.loads(bytes(data["header"]).decode())
            if header.get("format") != FORMAT:
                raise ValueError(f"not a {FORMAT} file")
            columns = BarColumns(str(header["timeframe"]), data["open_s"].astype(np.int64),
                                 *(data[name].astype(np.float64) for name in _COLUMNS))
            sessions = [Session(_moment(o), _moment(c), _maybe(b), _maybe(e)) for o, c, b, e
                        in zip(data["session_open"].tolist(), data["session_close"].tolist(),
                               data["break_start"].tolist(), data["break_end"].tolist(),
                               strict=True)]
    except FileNotFoundError:
        raise ConfigError(f"--bars {path}: no such file") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"--bars {path} is not a readable bar file ({exc}); export it "
                          "again (`fleet train run`)") from None
    end = datetime.fromisoformat(str(header["end"])).astimezone(UTC)
    return SignalBars(str(header["instrument"]), columns.timeframe, columns, sessions,
                      str(header["source"])), end


def _seconds(moments: list[datetime | None]) -> np.ndarray[tuple[int], np.dtype[np.int64]]:
    return np.array([-1 if m is None else int(m.timestamp()) for m in moments],
                    dtype=np.int64)


def _moment(seconds: int) -> datetime:
    return datetime.fromtimestamp(int(seconds), UTC)


def _maybe(seconds: int) -> datetime | None:
    return None if int(seconds) < 0 else _moment(seconds)
