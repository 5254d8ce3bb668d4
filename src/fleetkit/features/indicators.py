"""The indicator formulas over one timeframe's bar columns, vectorised (numpy + TA-Lib).

Window statistics (Bollinger, volatility, volume z-score) are summed here window by window
in a fixed order rather than by TA-Lib's running totals: a running total carries rounding
from every bar it ever saw, so a live window and a year-long batch would disagree in the
low bits; summed per window, the same bars give the same value to the last bit. The
recursions (EMA, Wilder's RSI and ATR, MACD) are TA-Lib's and converge instead (see spec).
"""

from __future__ import annotations

import math

import numpy as np
import talib

from fleetkit.features.columns import BarColumns, FloatArray
from fleetkit.features.spec import (
    ATR,
    MACD,
    RSI,
    Bollinger,
    EMADistance,
    Indicator,
    RealisedVolatility,
    Returns,
    TimeframeFeatures,
    VolumeZScore,
)

NAN = float("nan")


def timeframe_block(frame: TimeframeFeatures, bars: BarColumns, *,
                    last_only: bool = False) -> FloatArray:
    """The frame's columns for each bar, shape (bars, columns); with `last_only`, the last
    bar's row alone, shape (1, columns) — what a live update needs, computed on no more
    bars than each indicator's value depends on."""
    rows = 1 if last_only else len(bars)
    out = np.empty((rows, len(frame.columns)), dtype=np.float64)
    col = 0
    for indicator in frame.indicators:
        window = indicator.exact_window
        start = max(len(bars) - window, 0) if last_only and window is not None else 0
        for column in _columns_of(indicator, bars.high[start:], bars.low[start:],
                                  bars.close[start:], bars.volume[start:]):
            out[:, col] = column[len(column) - rows:]
            col += 1
    return out


def _columns_of(spec: Indicator, high: FloatArray, low: FloatArray, close: FloatArray,
                volume: FloatArray) -> list[FloatArray]:
    if isinstance(spec, Returns):
        return [_log_return(close, spec.bars)]
    if isinstance(spec, RSI):
        return [talib.RSI(close, timeperiod=spec.period) / 100.0]
    if isinstance(spec, EMADistance):
        return [(close - talib.EMA(close, timeperiod=spec.period)) / close]
    if isinstance(spec, Bollinger):
        return _bollinger(close, spec)
    if isinstance(spec, ATR):
        return [talib.ATR(high, low, close, timeperiod=spec.period) / close]
    if isinstance(spec, MACD):
        line, _signal, histogram = talib.MACD(close, fastperiod=spec.fast,
                                              slowperiod=spec.slow, signalperiod=spec.signal)
        return [line / close, histogram / close]
    if isinstance(spec, RealisedVolatility):
        return [_realised_volatility(close, spec.bars)]
    if isinstance(spec, VolumeZScore):
        return [_zscore(volume, spec.bars)]
    raise TypeError(f"no formula for {type(spec).__name__}")


def _log_return(close: FloatArray, n: int) -> FloatArray:
    out = np.full(len(close), NAN)
    if len(close) > n:
        out[n:] = np.log(close[n:] / close[:-n])
    return out


def _bollinger(close: FloatArray, spec: Bollinger) -> list[FloatArray]:
    mean, std = window_mean_std(close, spec.period)
    span = 2.0 * spec.k * std
    lower = mean - spec.k * std
    with np.errstate(divide="ignore", invalid="ignore"):
        # Bands that touch (a flat window) put the close in the middle, not at 0/0.
        position = np.where(span > 0, (close - lower) / span, 0.5)
    position[np.isnan(mean)] = NAN
    return [position, span / mean]


def _realised_volatility(close: FloatArray, n: int) -> FloatArray:
    out = np.full(len(close), NAN)
    if len(close) > n:
        step = np.log(close[1:] / close[:-1])
        out[1:] = np.sqrt(window_sum(step * step, n) / n)
    return out


def _zscore(values: FloatArray, n: int) -> FloatArray:
    mean, std = window_mean_std(values, n)
    with np.errstate(divide="ignore", invalid="ignore"):
        # A constant window (an index has no volume) is unremarkable: 0, not 0/0.
        z = np.where(std > 0, (values - mean) / std, 0.0)
    z[np.isnan(mean)] = NAN
    return z


def window_sum(values: FloatArray, n: int) -> FloatArray:
    """Sum of each value and the n-1 before it (NaN until there are n), added oldest first
    within each window, so a window's sum never depends on what came before it."""
    out = np.full(len(values), NAN)
    count = len(values) - n + 1
    if count == 1:
        # One window (a live update): the same additions in the same order, without a
        # numpy call per term; IEEE addition makes it the batch's sum to the bit.
        total = 0.0
        for value in values.tolist():
            total += value
        out[-1] = total
    elif count > 1:
        total_array = values[:count].copy()
        for shift in range(1, n):
            total_array += values[shift:shift + count]
        out[n - 1:] = total_array
    return out


def window_mean_std(values: FloatArray, n: int) -> tuple[FloatArray, FloatArray]:
    """Mean and population standard deviation of each window of n, from the deviations
    about the window's mean (no cancellation between large sums of squares)."""
    mean = window_sum(values, n) / n
    std = np.full(len(values), NAN)
    count = len(values) - n + 1
    if count == 1:
        centre = float(mean[-1])
        squares = 0.0
        for value in values.tolist():
            deviation = value - centre
            squares += deviation * deviation
        std[-1] = math.sqrt(squares / n)
    elif count > 1:
        centre_array = mean[n - 1:]
        total = np.zeros(count)
        deviations = np.empty(count)
        for shift in range(n):
            np.subtract(values[shift:shift + count], centre_array, out=deviations)
            np.multiply(deviations, deviations, out=deviations)
            total += deviations
        std[n - 1:] = np.sqrt(total / n)
    return mean, std
