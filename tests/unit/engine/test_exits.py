"""Protective exits as pure functions over the bot's exit state (engine.exits)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from fleetkit.config.exits import ExitSettings
from fleetkit.core.market_data import Bar
from fleetkit.engine.exits import ExitRules, exit_reason, update

T0 = datetime(2026, 1, 5, tzinfo=UTC)


def bar(close: float, i: int = 0, spread: float = 1.0) -> Bar:
    return Bar(T0 + timedelta(minutes=i), close, close + spread, close - spread, close, 1.0)


def run(rules: ExitRules, closes: list[float], side: int, average: float
        ) -> tuple[list[str | None], dict[str, Any]]:
    state: dict[str, Any] = {}
    reasons = []
    for i, close in enumerate(closes):
        update(state, bar(close, i), side, rules)
        reasons.append(exit_reason(state, bar(close, i), side, average, rules))
    return reasons, state


def test_a_long_stop_loss_fires_at_the_first_close_at_or_below_its_level() -> None:
    reasons, _ = run(ExitRules(stop_loss_pct=Decimal(2)), [100, 99, 98.1, 98.0, 97], 1, 100.0)
    assert reasons[:3] == [None, None, None]
    assert reasons[3] == "stop_loss: close 98 <= 98 (2% from 100)"


def test_a_short_take_profit_fires_when_the_price_falls_far_enough() -> None:
    reasons, _ = run(ExitRules(take_profit_pct=Decimal(5)), [100, 97, 95.5, 94.9], -1, 100.0)
    assert reasons[:3] == [None, None, None]
    assert reasons[3] is not None and reasons[3].startswith("take_profit: close 94.9 <= 95")


def test_a_trailing_stop_follows_the_best_close_and_fires_on_the_pullback() -> None:
    rules = ExitRules(trailing_stop_pct=Decimal(1))
    reasons, state = run(rules, [100, 102, 104, 103.5, 102.96], 1, 100.0)
    assert state["best"] == 104
    assert reasons[:4] == [None] * 4
    assert reasons[4] == "trailing_stop: close 102.96 <= 102.96 (1% from 104)"


def test_a_short_trailing_stop_follows_the_lowest_close() -> None:
    reasons, state = run(ExitRules(trailing_stop_pct=Decimal(2)), [100, 95, 96, 96.9], -1, 100.0)
    assert state["best"] == 95
    assert reasons == [None, None, None, "trailing_stop: close 96.9 >= 96.9 (2% from 95)"]


def test_atr_exits_are_not_armed_until_the_atr_has_its_period() -> None:
    rules = ExitRules(stop_loss_atr=Decimal(2), atr_period=3)
    reasons, state = run(rules, [100, 90, 80, 99], 1, 100.0)
    assert reasons[:2] == [None, None]  # two bars: no ATR yet, even far below the average
    # True ranges 2, 11, 11 (gaps from the previous close count): ATR 8 after three bars,
    # then Wilder's smoothing with the fourth bar's 20.
    assert reasons[2] == "stop_loss: close 80 <= 84 (2 ATR from 100)"
    assert state["atr"] == pytest.approx((8 * 2 + 20) / 3)


def test_a_new_position_starts_its_best_close_again_and_flat_forgets_it() -> None:
    rules = ExitRules(trailing_stop_pct=Decimal(1))
    state: dict[str, Any] = {}
    update(state, bar(110), 1, rules)
    update(state, bar(100), 0, rules)
    assert "best" not in state
    update(state, bar(90), -1, rules)
    assert (state["side"], state["best"]) == (-1, 90)


def test_without_exits_nothing_fires() -> None:
    assert run(ExitRules(), [100, 1, 1000], 1, 100.0)[0] == [None, None, None]


def test_the_config_refuses_a_percent_and_an_atr_for_the_same_exit() -> None:
    with pytest.raises(ValueError, match="stop_loss_pct or stop_loss_atr, not both"):
        ExitSettings(stop_loss_pct=Decimal(1), stop_loss_atr=Decimal(2))
    assert ExitSettings(stop_loss_pct=Decimal(1), trailing_stop_atr=Decimal(3)).atr_period == 14
