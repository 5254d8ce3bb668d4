"""Protective exits: stop-loss, take-profit and trailing stop, which the engine enforces
whatever the strategy says.

Each is set in percent of a price or in multiples of the average true range (Wilder's ATR
over `atr_period` bars). They are judged at every bar close on the close, like a signal,
and an exit is a market order for the whole position, sent through the same rails and
write-ahead path as any other order, with its reason on the order. The state they need —
the ATR and the most favourable close since the position was opened (the trailing stop's
high-water mark) — lives in the bot's persisted state, so a restart keeps it.

Pure functions over that state; TradingBot calls them.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from fleetkit.core.market_data import Bar


@dataclass(frozen=True, slots=True)
class ExitRules:
    """`*_pct`: percent of the position's average price (stop and take-profit) or of the
    best close since entry (trailing); `*_atr`: multiples of the ATR instead. At most one
    of the two for each exit (the config refuses both)."""

    stop_loss_pct: Decimal | None = None
    take_profit_pct: Decimal | None = None
    trailing_stop_pct: Decimal | None = None
    stop_loss_atr: Decimal | None = None
    take_profit_atr: Decimal | None = None
    trailing_stop_atr: Decimal | None = None
    atr_period: int = 14

    @property
    def active(self) -> bool:
        return any(getattr(self, name) is not None for name in _DISTANCES)

    @property
    def needs_atr(self) -> bool:
        return any(getattr(self, f"{kind}_atr") is not None for kind in _KINDS)


NO_EXITS = ExitRules()
_KINDS = ("stop_loss", "take_profit", "trailing_stop")
_DISTANCES = tuple(f"{kind}_{unit}" for kind in _KINDS for unit in ("pct", "atr"))


def update(state: dict[str, Any], bar: Bar, side: int, rules: ExitRules) -> None:
    """Take one bar into the exit state: the ATR, and the best close since the position
    (of sign `side`: 1 long, -1 short, 0 flat) was opened."""
    if rules.needs_atr:
        _update_atr(state, bar, rules.atr_period)
    if side == 0:
        state.pop("side", None)
        state.pop("best", None)
    elif state.get("side") != side:
        state["side"], state["best"] = side, bar.close  # a new position: its first close
    else:
        best = float(state["best"])
        state["best"] = max(best, bar.close) if side > 0 else min(best, bar.close)


def exit_reason(state: dict[str, Any], bar: Bar, side: int, average: float,
                rules: ExitRules) -> str | None:
    """Why the position (sign `side`, average price `average`) must be closed at this
    bar's close, or None. Checked in order: stop-loss, trailing stop, take-profit."""
    if side == 0 or not rules.active:
        return None
    close = bar.close
    atr = state.get("atr")
    best = float(state.get("best", close))
    for kind, anchor, against in (("stop_loss", average, True),
                                  ("trailing_stop", best, True),
                                  ("take_profit", average, False)):
        distance = _distance(rules, kind, anchor, atr)
        if distance is None:
            continue
        level = anchor - distance * side if against else anchor + distance * side
        hit = (close <= level) if (side > 0) == against else (close >= level)
        if hit:
            return (f"{kind}: close {close:g} {'<=' if (side > 0) == against else '>='} "
                    f"{level:g} ({_describe(rules, kind)} from {anchor:g})")
    return None


def _distance(rules: ExitRules, kind: str, anchor: float, atr: object) -> float | None:
    pct = getattr(rules, f"{kind}_pct")
    if pct is not None:
        return anchor * float(pct) / 100.0
    multiple = getattr(rules, f"{kind}_atr")
    if multiple is None or not isinstance(atr, float):
        return None  # no ATR yet (fewer bars than its period): not armed
    return atr * float(multiple)


def _describe(rules: ExitRules, kind: str) -> str:
    pct = getattr(rules, f"{kind}_pct")
    if pct is not None:
        return f"{pct}%"
    return f"{getattr(rules, f'{kind}_atr')} ATR"


def _update_atr(state: dict[str, Any], bar: Bar, period: int) -> None:
    previous = state.get("prev_close")
    true_range = bar.high - bar.low
    if isinstance(previous, float):
        true_range = max(true_range, abs(bar.high - previous), abs(bar.low - previous))
    state["prev_close"] = float(bar.close)
    atr = state.get("atr")
    if isinstance(atr, float):
        state["atr"] = (atr * (period - 1) + true_range) / period
        return
    count = int(state.get("tr_count", 0)) + 1
    total = float(state.get("tr_sum", 0.0)) + true_range
    if count < period:
        state["tr_count"], state["tr_sum"] = count, total
        return
    state.pop("tr_count", None)
    state.pop("tr_sum", None)
    state["atr"] = total / period
