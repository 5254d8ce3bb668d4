"""Normalisation: fitted on the training rows only, saved with the feature set's hash and
columns, and refused for any other feature set."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import date
from pathlib import Path

import numpy as np
import pytest

from fleetkit.features import FeatureError, NormalisationMismatchError, default_feature_set
from fleetkit.features.batch import FeatureMatrix, compute_features
from fleetkit.features.normalise import fit_normalisation, load_normalisation
from tests.unit.features.feature_bars import always_sessions, random_bars

FS = default_feature_set(["1h", "4h"])
SESSIONS = always_sessions(date(2024, 1, 1), 120)


@pytest.fixture(scope="module")
def matrix() -> FeatureMatrix:
    return compute_features(FS, random_bars(SESSIONS, "1h"), SESSIONS)


def test_the_fit_uses_the_training_rows_and_nothing_else(matrix: FeatureMatrix) -> None:
    train = slice(matrix.ready_from, matrix.ready_from + 600)
    fitted = fit_normalisation(matrix, train)
    rows = matrix.values[train]
    assert np.allclose(fitted.mean, rows.mean(axis=0), rtol=1e-12, atol=0)
    # Every row outside the window replaced by wild values: the same fit, to the bit.
    changed = matrix.values.copy()
    changed[train.stop:] = 1e6
    changed[:train.start] = -1e6
    again = fit_normalisation(replace(matrix, values=changed), train)
    assert again == fitted
    scaled = fitted.apply(rows)
    assert np.allclose(scaled.mean(axis=0), 0, atol=1e-9)
    varying = np.array(fitted.scale) != 1.0
    assert np.allclose(scaled[:, varying].std(axis=0), 1)


def test_a_constant_column_is_centred_not_divided_by_zero(matrix: FeatureMatrix) -> None:
    values = matrix.values.copy()
    values[:, 0] = 0.25
    fitted = fit_normalisation(replace(matrix, values=values), slice(matrix.ready_from, None))
    assert fitted.scale[0] == 1.0
    assert np.isfinite(fitted.apply(values[matrix.ready_from:])).all()
    assert (fitted.apply(values[matrix.ready_from:])[:, 0] == 0).all()


def test_fitting_on_warmup_rows_names_the_nan_feature(matrix: FeatureMatrix) -> None:
    with pytest.raises(FeatureError, match=r"feature 1h\.ret_1 is nan for the bar at "
                                           r"2024-01-01T00:00:00\+00:00"):
        fit_normalisation(matrix, slice(0, 500))


def test_saved_and_loaded_for_the_same_set(matrix: FeatureMatrix, tmp_path: Path) -> None:
    fitted = fit_normalisation(matrix, slice(matrix.ready_from, None))
    path = tmp_path / "normalisation.json"
    fitted.save(path)
    saved = json.loads(path.read_text())
    assert saved["feature_set_hash"] == FS.hash()
    assert saved["columns"] == list(FS.columns)
    assert load_normalisation(path, FS) == fitted


def test_loading_for_another_feature_set_is_refused_in_one_line(matrix: FeatureMatrix,
                                                                tmp_path: Path) -> None:
    path = tmp_path / "normalisation.json"
    fit_normalisation(matrix, slice(matrix.ready_from, None)).save(path)
    other = default_feature_set(["1h"])
    with pytest.raises(NormalisationMismatchError, match=r"was fitted for feature set "
                       rf"{FS.hash()[:12]}, not this one \({other.hash()[:12]}\); fit"):
        load_normalisation(path, other)
    edited = json.loads(path.read_text())
    edited["columns"][0] = "1h.ret_2"
    path.write_text(json.dumps(edited))
    with pytest.raises(NormalisationMismatchError, match="columns that are not this"):
        load_normalisation(path, FS)
    path.write_text("{not json")
    with pytest.raises(NormalisationMismatchError, match="not a readable normalisation"):
        load_normalisation(path, FS)
