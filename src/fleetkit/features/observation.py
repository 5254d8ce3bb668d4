"""The observation a policy sees, built one way for training (ml.window) and trading (the
`rl_policy` strategy): the last `window` normalised feature rows, then the position and its
unrealised P&L as fractions of the full position. Pure numpy, so the strategy layer can
build it without the `ml` package; the environment builds it with this same code."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from fleetkit.features.columns import FloatArray
from fleetkit.features.normalise import Normalisation

Float32Array = npt.NDArray[np.float32]
# Observation tail: position as a fraction of the full position size, unrealised P&L.
STATE_COLUMNS = ("position_fraction", "unrealised_pnl_fraction")
# Every observation value is clipped to +-this: ten standard deviations of a feature, ten
# times the position size; beyond it a value says nothing more to a policy (and gymnasium
# wants bounded spaces).
OBSERVATION_CLIP = 10.0


def observation_size(window: int, columns: int) -> int:
    return window * columns + len(STATE_COLUMNS)


def state_fractions(quantity: float, average_price: float, close: float, *,
                    position_usd: float, usd_per_unit: float,
                    full_units: float) -> tuple[float, float]:
    """(position, unrealised P&L) as fractions of the full position: `position_usd` its
    size in USD, `usd_per_unit` the USD per unit of the instrument's currency and
    `full_units` = float(position_usd / usd_per_unit) computed in Decimal (as the env does:
    the same float operations in the same order give the same bits)."""
    position = quantity * close * usd_per_unit / position_usd
    unrealised = quantity * (close - average_price) / full_units
    return position, unrealised


def build_observation(rows: Float32Array, position_fraction: float,
                      unrealised_fraction: float) -> Float32Array:
    """`rows`: the last `window` normalised (and clipped) feature rows, oldest first;
    flattened, then the two state values, clipped."""
    width = rows.size
    out = np.empty(width + len(STATE_COLUMNS), dtype=np.float32)
    out[:width] = rows.ravel()
    out[width] = min(max(position_fraction, -OBSERVATION_CLIP), OBSERVATION_CLIP)
    out[width + 1] = min(max(unrealised_fraction, -OBSERVATION_CLIP), OBSERVATION_CLIP)
    return out


def normalised(normalisation: Normalisation, values: FloatArray) -> Float32Array:
    """Feature rows (or one row) standardised, clipped and made float32: what the training
    window stores and the strategy feeds its window."""
    clipped = np.clip(normalisation.apply(values), -OBSERVATION_CLIP, OBSERVATION_CLIP)
    return clipped.astype(np.float32)
