"""The training window: one instrument's base bars, their feature rows and the
normalisation, aligned and checked once, and the observation built from them."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from fleetkit.backtest.tape import BarTape
from fleetkit.features.batch import FeatureMatrix
from fleetkit.features.guard import require_finite
from fleetkit.features.normalise import Normalisation, fit_normalisation

FloatArray = npt.NDArray[np.float64]
Float32Array = npt.NDArray[np.float32]
# Observation tail: position as a fraction of the full position size, unrealised P&L.
STATE_COLUMNS = ("position_fraction", "unrealised_pnl_fraction")
# Every observation value is clipped to +-this: ten standard deviations of a feature, ten
# times the position size; beyond it a value says nothing more to a policy (and gymnasium
# wants bounded spaces).
OBSERVATION_CLIP = 10.0


@dataclass(frozen=True, slots=True)
class TrainingWindow:
    """`features[i]` is bar i's normalised feature row, known at its close. Decisions are
    made at rows `first_row` .. len - 2 (the last bar has no next open to fill at)."""

    tape: BarTape
    columns: tuple[str, ...]
    features: Float32Array
    normalisation: Normalisation
    window: int
    first_row: int

    @classmethod
    def of(cls, tape: BarTape, matrix: FeatureMatrix, window: int,
           normalisation: Normalisation | None = None) -> TrainingWindow:
        """`matrix` computed from the tape's own bars; `normalisation` fitted on training
        rows (default: fitted here on every row past the warm-up)."""
        if len(matrix) != len(tape) or not np.array_equal(matrix.open_s, tape.ts_s):
            raise ValueError(f"the feature rows ({len(matrix)}) are not the tape's bars "
                             f"({len(tape)}): compute the features from the same base bars")
        ready = matrix.ready_from
        first_row = ready + window - 1
        if first_row + 1 >= len(tape):
            raise ValueError(f"{len(tape)} bars leave no step after the features' warm-up "
                             f"({ready} bars) and a window of {window}; give at least "
                             f"{first_row + 2} bars")
        require_finite(matrix.values[ready:], matrix.columns, matrix.open_s[ready:])
        scale = normalisation or fit_normalisation(matrix, slice(ready, None))
        if scale.columns != matrix.columns:
            raise ValueError("the normalisation was fitted on other feature columns")
        features = np.zeros(matrix.values.shape, dtype=np.float32)
        features[ready:] = np.clip(scale.apply(matrix.values[ready:]), -OBSERVATION_CLIP,
                                   OBSERVATION_CLIP)
        return cls(tape, matrix.columns, features, scale, window, first_row)

    @property
    def last_row(self) -> int:
        """The last row a decision can be made at."""
        return len(self.tape) - 2

    @property
    def observation_size(self) -> int:
        return self.window * len(self.columns) + len(STATE_COLUMNS)

    def observation(self, row: int, position_fraction: float,
                    unrealised_fraction: float) -> Float32Array:
        """The last `window` feature rows up to `row`, flattened oldest first, then the
        position and unrealised P&L (both fractions of the position size), all clipped."""
        out = np.empty(self.observation_size, dtype=np.float32)
        width = self.window * len(self.columns)
        out[:width] = self.features[row - self.window + 1:row + 1].ravel()
        out[width] = min(max(position_fraction, -OBSERVATION_CLIP), OBSERVATION_CLIP)
        out[width + 1] = min(max(unrealised_fraction, -OBSERVATION_CLIP), OBSERVATION_CLIP)
        return out
