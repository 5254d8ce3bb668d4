"""A declared feature set: timeframes, the indicators of each, calendar features, its hash.

Plain frozen data, no numpy and no TA-Lib, so the configuration layer can check a bot's
feature set without the `ml` extra. The first timeframe is the base: one feature row per
base bar; every higher timeframe contributes the values of its last *completed* bar.

Warm-up: an indicator's `warmup_bars` is how many bars of its own timeframe make its value
independent of where the history started, to `CONVERGENCE` (relative to the seed's error).
Window indicators (returns, Bollinger, volatility, volume z-score) need exactly their
window; exponential ones (EMA, RSI and ATR's Wilder smoothing, MACD) need their lookback
plus the bars it takes their seed's weight, (1 - alpha)^k, to fall below `CONVERGENCE`.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, fields
from itertools import pairwise
from typing import ClassVar, Protocol

from fleetkit.core.bars import TIMEFRAMES
from fleetkit.features.errors import FeatureSetError

# Bump when a formula changes: the hash changes with it, so models and normalisations
# fitted on the old formulas are refused instead of silently fed different numbers.
FEATURES_VERSION = 1
CONVERGENCE = 1e-11
DAY_MINUTES = 1440


def settle_bars(alpha: float) -> int:
    """Bars after which an exponential recursion's seed weighs less than CONVERGENCE."""
    return math.ceil(math.log(CONVERGENCE) / math.log1p(-alpha))


def _check_int(name: str, value: int, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise FeatureSetError(f"{name}: must be an integer of at least {minimum}, "
                              f"got {value!r}")


class Indicator(Protocol):
    """One indicator with its parameters: what it is called, its columns, its warm-up."""

    kind: ClassVar[str]

    @property
    def columns(self) -> tuple[str, ...]: ...

    @property
    def warmup_bars(self) -> int: ...

    @property
    def exact_window(self) -> int | None:
        """Bars its last value depends on exactly (window indicators), or None when it is a
        recursion that depends on all history (and converges within `warmup_bars`)."""


@dataclass(frozen=True, slots=True)
class Returns:
    """Log return over `bars` bars: ln(close / close `bars` ago)."""

    bars: int = 1
    kind: ClassVar[str] = "returns"

    def __post_init__(self) -> None:
        _check_int("bars", self.bars, 1)

    @property
    def columns(self) -> tuple[str, ...]:
        return (f"ret_{self.bars}",)

    @property
    def warmup_bars(self) -> int:
        return self.bars + 1

    @property
    def exact_window(self) -> int | None:
        return self.bars + 1


@dataclass(frozen=True, slots=True)
class _WilderSmoothed:
    """An indicator smoothed the way Wilder's are (alpha 1/period): one column, and a
    warm-up until the recursion has forgotten where the history started."""

    period: int = 14
    kind: ClassVar[str] = ""

    def __post_init__(self) -> None:
        _check_int("period", self.period, 2)

    @property
    def columns(self) -> tuple[str, ...]:
        return (f"{self.kind}_{self.period}",)

    @property
    def warmup_bars(self) -> int:
        return self.period + 1 + settle_bars(1 / self.period)

    @property
    def exact_window(self) -> int | None:
        return None


@dataclass(frozen=True, slots=True)
class RSI(_WilderSmoothed):
    """Wilder's relative strength index over `period` bars, scaled to 0..1."""

    kind: ClassVar[str] = "rsi"


@dataclass(frozen=True, slots=True)
class EMADistance:
    """(close - EMA(period)) / close."""

    period: int = 20
    kind: ClassVar[str] = "ema_distance"

    def __post_init__(self) -> None:
        _check_int("period", self.period, 2)

    @property
    def columns(self) -> tuple[str, ...]:
        return (f"ema_dist_{self.period}",)

    @property
    def warmup_bars(self) -> int:
        return self.period + settle_bars(2 / (self.period + 1))

    @property
    def exact_window(self) -> int | None:
        return None


@dataclass(frozen=True, slots=True)
class Bollinger:
    """Position of the close within the bands (0 at the lower, 1 at the upper; 0.5 when
    they touch) and their width over the middle, for mean ± k population std of `period`
    closes."""

    period: int = 20
    k: float = 2.0
    kind: ClassVar[str] = "bollinger"

    def __post_init__(self) -> None:
        _check_int("period", self.period, 2)
        if (isinstance(self.k, bool) or not isinstance(self.k, int | float)
                or not math.isfinite(self.k) or self.k <= 0):
            raise FeatureSetError(f"k: must be a positive number of standard deviations, "
                                  f"got {self.k!r}")

    @property
    def columns(self) -> tuple[str, ...]:
        tag = f"{self.period}_{self.k:g}"
        return (f"bb_pos_{tag}", f"bb_width_{tag}")

    @property
    def warmup_bars(self) -> int:
        return self.period

    @property
    def exact_window(self) -> int | None:
        return self.period


@dataclass(frozen=True, slots=True)
class ATR(_WilderSmoothed):
    """Wilder's average true range over `period` bars, divided by the close."""

    kind: ClassVar[str] = "atr"


@dataclass(frozen=True, slots=True)
class MACD:
    """MACD line (EMA(fast) - EMA(slow)) and its histogram (line - EMA(signal) of the
    line), each divided by the close."""

    fast: int = 12
    slow: int = 26
    signal: int = 9
    kind: ClassVar[str] = "macd"

    def __post_init__(self) -> None:
        _check_int("fast", self.fast, 2)
        _check_int("slow", self.slow, 3)
        _check_int("signal", self.signal, 1)
        if self.slow <= self.fast:
            raise FeatureSetError(f"slow: must be greater than fast ({self.fast}), "
                                  f"got {self.slow}")

    @property
    def columns(self) -> tuple[str, ...]:
        tag = f"{self.fast}_{self.slow}_{self.signal}"
        return (f"macd_{tag}", f"macd_hist_{tag}")

    @property
    def warmup_bars(self) -> int:
        # The signal line smooths a line that is itself still settling; its own seed fades
        # faster than the slow EMA's, so one more signal period covers the difference.
        return 2 * self.signal + self.slow + settle_bars(2 / (self.slow + 1))

    @property
    def exact_window(self) -> int | None:
        return None


@dataclass(frozen=True, slots=True)
class RealisedVolatility:
    """Root mean square of the last `bars` one-bar log returns (per bar, not annualised)."""

    bars: int = 20
    kind: ClassVar[str] = "realised_volatility"

    def __post_init__(self) -> None:
        _check_int("bars", self.bars, 2)

    @property
    def columns(self) -> tuple[str, ...]:
        return (f"rvol_{self.bars}",)

    @property
    def warmup_bars(self) -> int:
        return self.bars + 1

    @property
    def exact_window(self) -> int | None:
        return self.bars + 1


@dataclass(frozen=True, slots=True)
class VolumeZScore:
    """(volume - mean) / population std over the last `bars` volumes; 0 when they are all
    equal (an index without volume)."""

    bars: int = 20
    kind: ClassVar[str] = "volume_zscore"

    def __post_init__(self) -> None:
        _check_int("bars", self.bars, 2)

    @property
    def columns(self) -> tuple[str, ...]:
        return (f"vol_z_{self.bars}",)

    @property
    def warmup_bars(self) -> int:
        return self.bars

    @property
    def exact_window(self) -> int | None:
        return self.bars


INDICATORS: dict[str, type[Indicator]] = {
    cls.kind: cls for cls in (Returns, RSI, EMADistance, Bollinger, ATR, MACD,
                              RealisedVolatility, VolumeZScore)}


def indicator_params(indicator: Indicator) -> dict[str, int | float]:
    """The indicator's parameters by name, in declaration order."""
    return {f.name: getattr(indicator, f.name) for f in fields(indicator)}  # type: ignore[arg-type]


def timeframe_minutes(timeframe: str) -> float:
    """Nominal length for ordering and warm-up; a daily bar sorts after every intraday one."""
    if timeframe not in TIMEFRAMES:
        raise FeatureSetError(f"unknown timeframe {timeframe!r}; use one of "
                              f"{', '.join(TIMEFRAMES)}")
    minutes = TIMEFRAMES[timeframe]
    return math.inf if minutes is None else minutes


@dataclass(frozen=True, slots=True)
class TimeframeFeatures:
    """The indicators computed on one timeframe's bars."""

    timeframe: str
    indicators: tuple[Indicator, ...]

    def __post_init__(self) -> None:
        timeframe_minutes(self.timeframe)  # refuses an unknown one
        if not self.indicators:
            raise FeatureSetError(f"{self.timeframe}: list at least one indicator")
        seen: set[str] = set()
        for indicator in self.indicators:
            for column in indicator.columns:
                if column in seen:
                    raise FeatureSetError(f"{self.timeframe}: {column} is listed twice; "
                                          "remove one")
                seen.add(column)

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(f"{self.timeframe}.{c}" for i in self.indicators for c in i.columns)

    @property
    def warmup_bars(self) -> int:
        """Bars of this timeframe before every indicator on it has settled."""
        return max(i.warmup_bars for i in self.indicators)


CALENDAR_FEATURES = ("time_of_day", "day_of_week", "session_position")


@dataclass(frozen=True, slots=True)
class CalendarFeatures:
    """Calendar features of each base bar: time of day and day of week of its open (UTC)
    as sin/cos pairs, and how far through its session it closes (0..1)."""

    time_of_day: bool = True
    day_of_week: bool = True
    session_position: bool = True

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(n for n in CALENDAR_FEATURES if getattr(self, n))

    @property
    def columns(self) -> tuple[str, ...]:
        found: list[str] = []
        if self.time_of_day:
            found += ["calendar.tod_sin", "calendar.tod_cos"]
        if self.day_of_week:
            found += ["calendar.dow_sin", "calendar.dow_cos"]
        if self.session_position:
            found.append("calendar.session_pos")
        return tuple(found)


@dataclass(frozen=True, slots=True)
class FeatureSet:
    """Timeframes from the base (finest) up, and the base bar's calendar features."""

    timeframes: tuple[TimeframeFeatures, ...]
    calendar: CalendarFeatures = CalendarFeatures()

    def __post_init__(self) -> None:
        if not self.timeframes:
            raise FeatureSetError("timeframes: declare at least the base timeframe")
        lengths = [timeframe_minutes(t.timeframe) for t in self.timeframes]
        if any(a >= b for a, b in pairwise(lengths)):
            names = ", ".join(t.timeframe for t in self.timeframes)
            raise FeatureSetError(f"timeframes: list each once, finest (the base) first, "
                                  f"got {names}")

    @property
    def base(self) -> str:
        return self.timeframes[0].timeframe

    @property
    def columns(self) -> tuple[str, ...]:
        return (*(c for t in self.timeframes for c in t.columns), *self.calendar.columns)

    def to_mapping(self) -> dict[str, object]:
        """The explicit form, every parameter spelled out: `parse_feature_set` reads it
        back to an equal set, and its canonical JSON is what `hash` digests."""
        return {
            "timeframes": {t.timeframe: [{"kind": i.kind, **indicator_params(i)}
                                         for i in t.indicators] for t in self.timeframes},
            "calendar": list(self.calendar.names),
        }

    def hash(self) -> str:
        """sha256 of the canonical JSON of the set and the formulas' version."""
        canonical = json.dumps({"version": FEATURES_VERSION, **self.to_mapping()},
                               sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    def warmup_by_timeframe(self) -> dict[str, int]:
        """Completed bars each timeframe needs before its features have settled."""
        return {t.timeframe: t.warmup_bars for t in self.timeframes}

    def warmup_bars(self, session_minutes: int = DAY_MINUTES) -> int:
        """Base bars of history to feed before every feature has settled, for sessions no
        longer than `session_minutes` (a 24/7 market's day is 1440; NSE's 375). A higher
        timeframe counts two bars more than it needs: the first may be cut short by where
        the history starts, and the last is still being built."""
        base_minutes = timeframe_minutes(self.base)
        needed = self.timeframes[0].warmup_bars
        for frame in self.timeframes[1:]:
            minutes = timeframe_minutes(frame.timeframe)
            span = session_minutes if math.isinf(minutes) else minutes
            per_bar = 1 if math.isinf(base_minutes) else math.ceil(span / base_minutes)
            needed = max(needed, (frame.warmup_bars + 2) * per_bar)
        return needed


def from_base(feature_set: FeatureSet, timeframe: str) -> FeatureSet:
    """The set restricted to `timeframe` and the timeframes above it, with `timeframe` as
    the base (the calendar features kept): what a model trained on `timeframe` bars reads,
    e.g. 1h and 1d of a 15m/1h/1d set for the 1h model."""
    minutes = timeframe_minutes(timeframe)
    kept = tuple(t for t in feature_set.timeframes if timeframe_minutes(t.timeframe) >= minutes)
    if not kept or kept[0].timeframe != timeframe:
        declared = ", ".join(t.timeframe for t in feature_set.timeframes)
        raise FeatureSetError(f"timeframes: {timeframe} is not declared (declared: "
                              f"{declared}); a model's timeframe must have features")
    return FeatureSet(kept, feature_set.calendar)


def default_indicators() -> tuple[Indicator, ...]:
    """Every indicator once, with the textbook parameters (and 1- and 4-bar returns)."""
    return (Returns(1), Returns(4), RSI(14), EMADistance(20), Bollinger(20, 2.0), ATR(14),
            MACD(12, 26, 9), RealisedVolatility(20), VolumeZScore(20))


def default_feature_set(timeframes: Sequence[str]) -> FeatureSet:
    """The default indicators on each of a bot's timeframes (any order; the finest is the
    base) and every calendar feature: e.g. ("15m", "1h", "1d") for a NIFTY bot."""
    ordered = sorted(dict.fromkeys(timeframes), key=timeframe_minutes)
    return FeatureSet(tuple(TimeframeFeatures(t, default_indicators()) for t in ordered))
