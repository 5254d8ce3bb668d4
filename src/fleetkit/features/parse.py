"""A feature set from its YAML form, refusing anything off in one line that names the key.

    timeframes:                      # the finest is the base: one feature row per base bar
      15m:                           # a list of indicators, or "default" for every one
        - returns                    # a name alone takes the default parameters
        - {kind: returns, bars: 4}
        - {kind: rsi, period: 14}
      1h: default
    calendar: [time_of_day, day_of_week, session_position]   # optional; [] for none
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import fields
from typing import Any

from fleetkit.features.errors import FeatureSetError
from fleetkit.features.spec import (
    CALENDAR_FEATURES,
    INDICATORS,
    CalendarFeatures,
    FeatureSet,
    Indicator,
    TimeframeFeatures,
    default_indicators,
    timeframe_minutes,
)

_TOP_KEYS = ("timeframes", "calendar")


def parse_feature_set(mapping: object, *, where: str = "features") -> FeatureSet:
    """`mapping` (a bot's `features:` value) as a FeatureSet; `where` prefixes the key
    paths in errors (e.g. "ml.features" once a bot's config holds it)."""
    if not isinstance(mapping, Mapping):
        raise FeatureSetError(f"{where}: must be a mapping with {' and '.join(_TOP_KEYS)}, "
                              f"got {type(mapping).__name__}")
    for key in mapping:
        if key not in _TOP_KEYS:
            raise FeatureSetError(f"{where}: unknown key {key!r}; use "
                                  f"{' or '.join(_TOP_KEYS)}")
    if "timeframes" not in mapping:
        raise FeatureSetError(f"{where}.timeframes: missing; declare at least the base "
                              "timeframe, e.g. timeframes: {15m: default}")
    frames = _timeframes(mapping["timeframes"], f"{where}.timeframes")
    calendar = _calendar(mapping.get("calendar", list(CALENDAR_FEATURES)), f"{where}.calendar")
    try:
        return FeatureSet(frames, calendar)
    except FeatureSetError as exc:
        raise FeatureSetError(f"{where}.{exc}") from None


def _timeframes(value: object, where: str) -> tuple[TimeframeFeatures, ...]:
    if not isinstance(value, Mapping) or not value:
        raise FeatureSetError(f"{where}: must map each timeframe to its indicators, "
                              "e.g. {15m: default, 1h: [rsi, atr]}")
    frames: list[TimeframeFeatures] = []
    for name, indicators in value.items():
        path = f"{where}.{name}"
        try:
            timeframe_minutes(str(name))
        except FeatureSetError as exc:
            raise FeatureSetError(f"{path}: {exc}") from None
        declared = _indicators(indicators, path)
        try:
            frames.append(TimeframeFeatures(str(name), declared))
        except FeatureSetError as exc:  # its message starts with the timeframe
            raise FeatureSetError(f"{where}.{exc}") from None
    # The base is the finest timeframe whatever order the YAML lists them in.
    return tuple(sorted(frames, key=lambda f: timeframe_minutes(f.timeframe)))


def _indicators(value: object, where: str) -> tuple[Indicator, ...]:
    if value == "default":
        return default_indicators()
    if not isinstance(value, list) or not value:
        raise FeatureSetError(f"{where}: must be a list of indicators or \"default\"; "
                              f"indicators: {', '.join(INDICATORS)}")
    return tuple(_indicator(item, f"{where}[{i}]") for i, item in enumerate(value))


def _indicator(item: object, where: str) -> Indicator:
    declared: Mapping[str, Any]
    if isinstance(item, str):
        declared = {"kind": item}
    elif isinstance(item, Mapping):
        declared = item
    else:
        raise FeatureSetError(f"{where}: must be an indicator name or a mapping with kind, "
                              f"got {item!r}")
    kind = declared.get("kind")
    cls = INDICATORS.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise FeatureSetError(f"{where}.kind: unknown indicator {kind!r}; use one of "
                              f"{', '.join(INDICATORS)}")
    params = {f.name: f for f in fields(cls)}  # type: ignore[arg-type]
    values: dict[str, object] = {}
    for key, raw in declared.items():
        if key == "kind":
            continue
        if key not in params:
            allowed = ", ".join(params) or "no parameters"
            raise FeatureSetError(f"{where}: unknown key {key!r} for {kind}; use {allowed}")
        values[key] = _number(raw, params[key].type, f"{where}.{key}")
    try:
        indicator: Indicator = cls(**values)
    except FeatureSetError as exc:
        raise FeatureSetError(f"{where}.{exc}") from None
    return indicator


def _number(raw: object, declared_type: object, where: str) -> object:
    if declared_type == "float":
        if isinstance(raw, bool) or not isinstance(raw, int | float) or not math.isfinite(raw):
            raise FeatureSetError(f"{where}: must be a number, got {raw!r}")
        return float(raw)  # 2 and 2.0 are one set, with one hash
    if isinstance(raw, bool) or not isinstance(raw, int):
        raise FeatureSetError(f"{where}: must be an integer, got {raw!r}")
    return raw


def _calendar(value: object, where: str) -> CalendarFeatures:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise FeatureSetError(f"{where}: must be a list drawn from "
                              f"{', '.join(CALENDAR_FEATURES)} ([] for none)")
    for name in value:
        if name not in CALENDAR_FEATURES:
            raise FeatureSetError(f"{where}: unknown calendar feature {name!r}; use "
                                  f"{', '.join(CALENDAR_FEATURES)}")
    return CalendarFeatures(**{n: n in value for n in CALENDAR_FEATURES})
