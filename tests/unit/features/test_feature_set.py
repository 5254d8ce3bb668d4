"""A declared feature set: parsed from its YAML form or refused in one line naming the key,
read back from its explicit form, hashed stably, its columns in a fixed order."""

from __future__ import annotations

import subprocess
import sys

import pytest

from fleetkit.core.errors import ConfigError
from fleetkit.features import (
    RSI,
    FeatureSet,
    FeatureSetError,
    Returns,
    TimeframeFeatures,
    default_feature_set,
    parse_feature_set,
)

NIFTY = {"timeframes": {"1d": ["rsi"], "15m": "default",
                        "1h": [{"kind": "rsi", "period": 7}, {"kind": "bollinger", "k": 2}]}}


def test_the_finest_timeframe_is_the_base_and_columns_follow_the_declaration() -> None:
    fs = parse_feature_set(NIFTY)
    assert fs.base == "15m"
    assert [t.timeframe for t in fs.timeframes] == ["15m", "1h", "1d"]
    assert fs.columns[:3] == ("15m.ret_1", "15m.ret_4", "15m.rsi_14")
    assert fs.columns[11:] == ("1h.rsi_7", "1h.bb_pos_20_2", "1h.bb_width_20_2", "1d.rsi_14",
                               "calendar.tod_sin", "calendar.tod_cos", "calendar.dow_sin",
                               "calendar.dow_cos", "calendar.session_pos")


def test_the_explicit_form_reads_back_to_the_same_set_with_the_same_hash() -> None:
    fs = parse_feature_set(NIFTY)
    again = parse_feature_set(fs.to_mapping())
    assert again == fs
    assert again.hash() == fs.hash()
    # k given as 2 and as 2.0 is one set.
    assert parse_feature_set({"timeframes": {"1h": [{"kind": "bollinger", "k": 2.0}]}}).hash() \
        == parse_feature_set({"timeframes": {"1h": [{"kind": "bollinger", "k": 2}]}}).hash()


def test_the_hash_is_stable_across_processes_and_changes_with_any_parameter() -> None:
    # Pinned: a change here means every saved model's feature set hash changed with it.
    assert default_feature_set(["15m", "1h", "1d"]).hash() == (
        "aa488fbd0887835a0e7757e3913e764dbf7b85f0cc6597c7ed6b9682ba97a28d")
    base = parse_feature_set({"timeframes": {"1h": [{"kind": "rsi", "period": 14}]}})
    other = parse_feature_set({"timeframes": {"1h": [{"kind": "rsi", "period": 15}]}})
    no_calendar = parse_feature_set({"timeframes": {"1h": ["rsi"]}, "calendar": []})
    assert len({base.hash(), other.hash(), no_calendar.hash()}) == 3
    assert no_calendar.columns == ("1h.rsi_14",)


def test_the_default_set_has_every_indicator_on_every_timeframe() -> None:
    fs = default_feature_set(["4h", "1h"])
    assert fs.base == "1h"
    kinds = {i.kind for i in fs.timeframes[0].indicators}
    assert kinds == {"returns", "rsi", "ema_distance", "bollinger", "atr", "macd",
                     "realised_volatility", "volume_zscore"}
    assert len(fs.columns) == 2 * 11 + 5


def test_warmup_counts_the_slowest_indicator_and_the_higher_timeframes_in_base_bars() -> None:
    fs = FeatureSet((TimeframeFeatures("15m", (Returns(1),)),
                     TimeframeFeatures("1h", (Returns(3),)), TimeframeFeatures("1d", (RSI(14),))))
    assert fs.warmup_by_timeframe() == {"15m": 2, "1h": 4, "1d": RSI(14).warmup_bars}
    # 1d: (warm-up + the first and the building bar) sessions of 25 quarter-hours.
    assert fs.warmup_bars(375) == (RSI(14).warmup_bars + 2) * 25
    assert RSI(14).warmup_bars > 14 * 20  # Wilder's smoothing forgets its seed slowly


@pytest.mark.parametrize(("declared", "message"), [
    ({"timeframes": {"1h": ["rsi"]}, "indicators": []},
     "features: unknown key 'indicators'; use timeframes or calendar"),
    ({"calendar": []}, "features.timeframes: missing"),
    ({"timeframes": {"2h": ["rsi"]}}, "features.timeframes.2h: unknown timeframe '2h'"),
    ({"timeframes": {"1h": ["rsx"]}}, "features.timeframes.1h[0].kind: unknown indicator 'rsx'"),
    ({"timeframes": {"1h": [{"kind": "rsi", "perod": 3}]}},
     "features.timeframes.1h[0]: unknown key 'perod' for rsi; use period"),
    ({"timeframes": {"1h": [{"kind": "rsi", "period": 1}]}},
     "features.timeframes.1h[0].period: must be an integer of at least 2, got 1"),
    ({"timeframes": {"1h": [{"kind": "rsi", "period": "14"}]}},
     "features.timeframes.1h[0].period: must be an integer, got '14'"),
    ({"timeframes": {"1h": ["atr", {"kind": "macd", "fast": 26, "slow": 12}]}},
     "features.timeframes.1h[1].slow: must be greater than fast (26), got 12"),
    ({"timeframes": {"1h": [{"kind": "bollinger", "k": 0}]}},
     "features.timeframes.1h[0].k: must be a positive number"),
    ({"timeframes": {"1h": ["rsi", "rsi"]}},
     "features.timeframes.1h: rsi_14 is listed twice; remove one"),
    ({"timeframes": {"1h": []}}, "features.timeframes.1h: must be a list of indicators"),
    ({"timeframes": {"1h": ["rsi"]}, "calendar": ["moon_phase"]},
     "features.calendar: unknown calendar feature 'moon_phase'"),
    ("rsi", "features: must be a mapping"),
])
def test_a_bad_declaration_is_refused_in_one_line_naming_the_key(declared: object,
                                                                 message: str) -> None:
    with pytest.raises(FeatureSetError) as caught:
        parse_feature_set(declared)
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)
    assert isinstance(caught.value, ValueError)
    assert isinstance(caught.value, ConfigError)  # the CLI prints it and exits 2


def test_errors_name_where_the_set_sits_in_the_bot_config() -> None:
    with pytest.raises(FeatureSetError, match=r"^ml\.features\.timeframes\.1h\[0\]\.kind"):
        parse_feature_set({"timeframes": {"1h": ["nope"]}}, where="ml.features")


def test_checking_a_feature_set_imports_neither_numpy_nor_talib() -> None:
    probe = ("import sys; from fleetkit.features import default_feature_set, "
             "parse_feature_set; parse_feature_set(default_feature_set(['1h']).to_mapping()); "
             "print(','.join(m for m in ('numpy', 'talib') if m in sys.modules))")
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            check=True).stdout.strip()
    assert loaded == ""
