"""Refuse NaN and infinite features: a model fed one would trade on a silent guess."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from fleetkit.features.columns import FloatArray, IntArray, iso
from fleetkit.features.errors import FeatureError


def require_finite(values: FloatArray, columns: Sequence[str],
                   open_s: int | IntArray) -> None:
    """Raise FeatureError naming the first column and bar whose value is NaN or infinite.

    `values` is one row (with that bar's start, Unix seconds) or a matrix of rows (with
    each row's start), e.g. a training window after its warm-up."""
    rows = np.atleast_2d(values)
    starts = np.atleast_1d(np.asarray(open_s, dtype=np.int64))
    if rows.shape[1] != len(columns) or len(starts) != rows.shape[0]:
        raise ValueError(f"{rows.shape[0]}x{rows.shape[1]} feature values do not match "
                         f"{len(columns)} columns and {len(starts)} bar times")
    bad = ~np.isfinite(rows)
    if not bool(bad.any()):
        return
    row, col = (int(i) for i in np.argwhere(bad)[0])
    at = iso(int(starts[row]))
    raise FeatureError(f"feature {columns[col]} is {rows[row, col]} for the bar at {at}; "
                       "refusing to trade on it (too little history for its warm-up, or "
                       "bad bars: check the bars around that time)",
                       column=columns[col], at=at)
