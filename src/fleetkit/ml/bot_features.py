"""`fleet ml features`: a bot's feature row for the last base bar complete at a moment, as
the model of that timeframe would read it — raw, and normalised with the trained model's
saved normalisation when there is a model that verifies."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from fleetkit.config.loader import LoadedConfig
from fleetkit.config.models import BotSettings
from fleetkit.core.errors import ConfigError
from fleetkit.features.columns import iso
from fleetkit.features.normalise import load_normalisation
from fleetkit.ml.bot_bars import Source
from fleetkit.ml.bot_data import load_bot_training_data
from fleetkit.ml.model_dir import MANIFEST, NORMALISATION_FILE, verify_model_dir


@dataclass(frozen=True, slots=True)
class FeatureRow:
    bot: str
    timeframe: str
    instrument: str
    bar_open: str
    bar_close: str
    ready: bool
    columns: tuple[str, ...]
    raw: tuple[float, ...]
    normalised: tuple[float, ...] | None
    feature_set_hash: str
    model_dir: Path
    model_note: str | None
    source: str

    def as_json(self) -> dict[str, object]:
        return {"bot": self.bot, "timeframe": self.timeframe, "instrument": self.instrument,
                "bar_open": self.bar_open, "bar_close": self.bar_close, "ready": self.ready,
                "feature_set_hash": self.feature_set_hash, "model_dir": str(self.model_dir),
                "model_note": self.model_note, "bars_from": self.source,
                "features": [{"column": c, "raw": _number(r),
                              "normalised": None if self.normalised is None
                              else _number(self.normalised[i])}
                             for i, (c, r) in enumerate(zip(self.columns, self.raw,
                                                            strict=True))]}


def feature_row(loaded: LoadedConfig, bot: BotSettings, timeframe: str, *,
                at: datetime | None, source: Source = "auto", db: str | None = None,
                market_data_db: str | None = None) -> FeatureRow:
    """The row of the last `timeframe` bar complete by `at` (default now): it is ready
    when the bars before it cover the features' warm-up."""
    data = load_bot_training_data(loaded, bot, timeframe, history_bars=0, end=at,
                                  source=source, require_history=False, db=db,
                                  market_data_db=market_data_db)
    matrix = data.matrix
    last = len(matrix) - 1
    raw = matrix.values[last]
    normalised, note = None, None
    directory = data.model_dir
    if (directory / MANIFEST).exists():
        try:
            verify_model_dir(directory, feature_set_hash=data.feature_set.hash())
            scale = load_normalisation(directory / NORMALISATION_FILE, data.feature_set)
            normalised = tuple(float(v) for v in scale.apply(raw))
        except ConfigError as exc:  # ModelRefusedError, NormalisationMismatchError
            note = f"not normalised: {exc}"
    else:
        note = f"no trained model at {directory} (`fleet ml train {bot.name}`)"
    return FeatureRow(bot.name, timeframe, data.signal, iso(int(matrix.open_s[last])),
                      iso(int(matrix.close_s[last])), last >= matrix.ready_from, matrix.columns,
                      tuple(float(v) for v in raw), normalised, matrix.feature_set_hash,
                      directory, note, data.source)


def _number(value: float) -> float | None:
    return value if value == value else None  # NaN (warm-up) is null in JSON
