"""Per-column standardisation fitted on the training window only, saved beside the model.

The file names the feature set's hash and its columns, so a model is never fed features
scaled for another set: loading it for a different set is refused.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fleetkit.features.batch import FeatureMatrix
from fleetkit.features.columns import FloatArray
from fleetkit.features.errors import NormalisationMismatchError
from fleetkit.features.guard import require_finite
from fleetkit.features.spec import FeatureSet

FORMAT = "fleetkit.features.normalisation/1"
# A column whose spread is below this share of its size is constant for our purpose
# (a calendar column of a daily base, an index's volume): centred, not divided by ~0.
_FLAT = 1e-12


@dataclass(frozen=True, slots=True)
class Normalisation:
    """(value - mean) / scale per column; scale is the std, or 1 for a flat column."""

    feature_set_hash: str
    columns: tuple[str, ...]
    mean: tuple[float, ...]
    scale: tuple[float, ...]

    def apply(self, values: FloatArray) -> FloatArray:
        """`values` (a row or rows of this set's columns) standardised."""
        if np.shape(values)[-1] != len(self.columns):
            raise ValueError(f"{np.shape(values)[-1]} feature columns given; this "
                             f"normalisation has {len(self.columns)}")
        scaled: FloatArray = (values - np.asarray(self.mean)) / np.asarray(self.scale)
        return scaled

    def to_json(self) -> str:
        return json.dumps({"format": FORMAT, "feature_set_hash": self.feature_set_hash,
                           "columns": list(self.columns), "mean": list(self.mean),
                           "scale": list(self.scale)}, indent=1)

    def save(self, path: Path) -> None:
        path.write_text(self.to_json() + "\n", encoding="utf-8")


def fit_normalisation(features: FeatureMatrix, train_rows: slice) -> Normalisation:
    """Mean and std of each column over `train_rows` alone (which must be finite: start
    them at `features.ready_from` or later)."""
    rows = features.values[train_rows]
    if len(rows) < 2:
        raise ValueError(f"the training window has {len(rows)} rows; fit on at least 2")
    require_finite(rows, features.columns, features.open_s[train_rows])
    mean = rows.mean(axis=0)
    std = rows.std(axis=0)
    scale = np.where(std > _FLAT * np.maximum(np.abs(mean), 1.0), std, 1.0)
    return Normalisation(features.feature_set_hash, features.columns,
                         tuple(float(m) for m in mean), tuple(float(s) for s in scale))


def load_normalisation(path: Path, feature_set: FeatureSet) -> Normalisation:
    """The normalisation saved in `path`, refused unless it was fitted for `feature_set`."""
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
        if saved.get("format") != FORMAT:
            raise ValueError(f"format is {saved.get('format')!r}, not {FORMAT!r}")
        found = Normalisation(str(saved["feature_set_hash"]), tuple(saved["columns"]),
                              tuple(float(m) for m in saved["mean"]),
                              tuple(float(s) for s in saved["scale"]))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise NormalisationMismatchError(f"{path}: not a readable normalisation file "
                                         f"({exc}); fit it again") from None
    _check_fits(path, found, feature_set)
    return found


def _check_fits(path: Path, found: Normalisation, feature_set: FeatureSet) -> None:
    expected = feature_set.hash()
    if found.feature_set_hash != expected:
        raise NormalisationMismatchError(
            f"{path} was fitted for feature set {found.feature_set_hash[:12]}, not this "
            f"one ({expected[:12]}); fit the normalisation (and the model) on this set again")
    if found.columns != feature_set.columns:
        raise NormalisationMismatchError(
            f"{path} lists {len(found.columns)} columns that are not this feature set's "
            f"{len(feature_set.columns)} (same hash, edited file?); fit it again")
    if len(found.mean) != len(found.columns) or len(found.scale) != len(found.columns) or not (
            all(math.isfinite(v) for v in (*found.mean, *found.scale))
            and all(s > 0 for s in found.scale)):
        raise NormalisationMismatchError(f"{path}: means and scales must be finite, one per "
                                         "column, scales positive; fit it again")
