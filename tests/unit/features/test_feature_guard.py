"""NaN and infinite features are refused with the column and the bar's time named."""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest

from fleetkit.core.errors import StrategyError
from fleetkit.features import FeatureError, default_feature_set
from fleetkit.features.guard import require_finite
from fleetkit.features.live import LiveFeatures
from tests.unit.features.feature_bars import always_sessions, random_bars

COLUMNS = ("1h.ret_1", "1h.rsi_14", "calendar.tod_sin")
T0 = 1_704_067_200  # 2024-01-01T00:00:00Z


def test_a_finite_row_and_matrix_pass() -> None:
    require_finite(np.array([0.1, 0.5, -1.0]), COLUMNS, T0)
    require_finite(np.zeros((3, 3)), COLUMNS, np.array([T0, T0 + 3600, T0 + 7200]))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_a_bad_value_names_its_column_and_bar(bad: float) -> None:
    rows = np.zeros((3, 3))
    rows[2, 1] = bad
    with pytest.raises(FeatureError) as caught:
        require_finite(rows, COLUMNS, np.array([T0, T0 + 3600, T0 + 7200]))
    assert caught.value.column == "1h.rsi_14"
    assert caught.value.at == "2024-01-01T02:00:00+00:00"
    assert str(caught.value).startswith(f"feature 1h.rsi_14 is {bad} for the bar at "
                                        "2024-01-01T02:00:00+00:00; refusing to trade")
    assert isinstance(caught.value, StrategyError)  # the bot halts with the reason


def test_a_live_row_before_its_warmup_is_refused() -> None:
    sessions = always_sessions(date(2024, 1, 1), 3)
    bars = random_bars(sessions, "1h")
    fs = default_feature_set(["1h", "4h"])
    row = LiveFeatures(fs, sessions).feed(bars.tail(30))
    assert row is not None
    with pytest.raises(FeatureError, match=r"^feature 1h\.macd_12_26_9 is nan"):
        require_finite(row, fs.columns, int(bars.open_s[-1]))


def test_values_and_columns_that_do_not_match_are_an_error_not_a_pass() -> None:
    with pytest.raises(ValueError, match="do not match"):
        require_finite(np.zeros(2), COLUMNS, T0)
