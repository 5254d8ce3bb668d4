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
from fleetkit.features.observation import (
    OBSERVATION_CLIP,
    STATE_COLUMNS,
    Float32Array,
    build_observation,
    normalised,
    observation_size,
)
from fleetkit.features.spec import FeatureSet

__all__ = ["OBSERVATION_CLIP", "STATE_COLUMNS", "Float32Array", "FloatArray",
           "TrainingWindow"]

FloatArray = npt.NDArray[np.float64]


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
    feature_set: FeatureSet | None = None

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
        features[ready:] = normalised(scale, matrix.values[ready:])
        return cls(tape, matrix.columns, features, scale, window, first_row,
                   matrix.feature_set)

    @property
    def last_row(self) -> int:
        """The last row a decision can be made at."""
        return len(self.tape) - 2

    @property
    def observation_size(self) -> int:
        return observation_size(self.window, len(self.columns))

    def observation(self, row: int, position_fraction: float,
                    unrealised_fraction: float) -> Float32Array:
        """The last `window` feature rows up to `row`, flattened oldest first, then the
        position and unrealised P&L (both fractions of the position size), all clipped:
        features.observation's builder, the one the rl_policy strategy trades with."""
        return build_observation(self.features[row - self.window + 1:row + 1],
                                 position_fraction, unrealised_fraction)
