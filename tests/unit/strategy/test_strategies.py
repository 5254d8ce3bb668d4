"""Built-in strategies on crafted price series, their params, the registry, determinism."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from fleetkit.core.instruments import AssetClass, Instrument
from fleetkit.core.market_data import Bar
from fleetkit.core.signals import Signal, SignalLevel
from fleetkit.strategy.base import (
    Strategy,
    StrategyContext,
    StrategyParams,
    build_strategy,
    describe_params_error,
    register,
    registered,
    spec,
)

PROPERTY = settings(max_examples=60, deadline=None, database=None)
T0 = datetime(2026, 1, 5, 14, 30, tzinfo=UTC)
AAPL = Instrument("AAPL", "NYSE", AssetClass.EQUITY, "USD", Decimal("0.01"), Decimal(1), "XNYS")
BUILTINS = ("buy_and_hold", "donchian_breakout", "rsi_reversion", "sma_cross")


def bar(index: int, close: float, high: float | None = None, low: float | None = None) -> Bar:
    high = close if high is None else high
    low = close if low is None else low
    return Bar(T0 + timedelta(minutes=index), close, high, low, close, 1_000.0)


def run(strategy: Strategy, bars: list[Bar], ctx: StrategyContext | None = None
        ) -> list[Signal | None]:
    ctx = ctx or StrategyContext(AAPL)
    return [strategy.on_bar(b, ctx) for b in bars]


def closes(*values: float) -> list[Bar]:
    return [bar(i, v) for i, v in enumerate(values)]


def levels(signals: list[Signal | None]) -> list[SignalLevel | None]:
    return [None if s is None else s.level for s in signals]


BUY, SELL, HOLD = SignalLevel.STRONG_BUY, SignalLevel.STRONG_SELL, SignalLevel.HOLD


# --- warmup ------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "params", "bars"), [
    ("sma_cross", {"fast": 5, "slow": 20}, 20),
    ("rsi_reversion", {"period": 14}, 70),
    ("donchian_breakout", {"entry_period": 20, "exit_period": 10}, 21),
    ("donchian_breakout", {"entry_period": 5, "exit_period": 30}, 31),
    ("buy_and_hold", {}, 0),
])
def test_warmup_bars_cover_what_the_indicators_need(name: str, params: dict[str, Any],
                                                    bars: int) -> None:
    assert build_strategy(name, params).warmup_bars() == bars


# --- sma_cross ---------------------------------------------------------------------------


def test_sma_cross_says_nothing_until_the_slow_average_is_ready() -> None:
    strategy = build_strategy("sma_cross", {"fast": 2, "slow": 3})
    assert run(strategy, closes(10, 11)) == [None, None]


def test_sma_cross_up_is_strong_buy_and_cross_down_is_strong_sell() -> None:
    strategy = build_strategy("sma_cross", {"fast": 2, "slow": 3})
    signals = run(strategy, closes(10, 10, 10, 11, 12, 8, 7))
    assert levels(signals) == [None, None, None, BUY, BUY, SELL, SELL]


def test_sma_cross_says_nothing_while_the_averages_are_equal() -> None:
    strategy = build_strategy("sma_cross", {"fast": 2, "slow": 3})
    assert run(strategy, closes(10, 10, 10, 10)) == [None] * 4


# --- rsi_reversion -----------------------------------------------------------------------


def rsi(period: int = 2, oversold: float = 30, overbought: float = 70) -> Strategy:
    return build_strategy("rsi_reversion", {"period": period, "oversold": oversold,
                                            "overbought": overbought})


def test_rsi_oversold_is_strong_buy() -> None:
    assert levels(run(rsi(), closes(10, 9, 8))) == [None, None, BUY]


def test_rsi_overbought_is_strong_sell() -> None:
    assert levels(run(rsi(), closes(10, 11, 12))) == [None, None, SELL]


def test_rsi_in_between_says_nothing() -> None:
    # Wilder RSI(2) of this zig-zag runs 50, 75, 37.5: inside 30..80 throughout.
    assert run(rsi(oversold=30, overbought=80), closes(10, 11, 10, 11, 10)) == [None] * 5


def test_rsi_exactly_at_a_threshold_says_nothing() -> None:
    # One up and one down move of the same size: RSI 50.
    assert run(rsi(oversold=50, overbought=60), closes(10, 11, 10))[-1] is None
    assert run(rsi(oversold=40, overbought=50), closes(10, 11, 10))[-1] is None


# --- donchian_breakout -------------------------------------------------------------------


def donchian(entry: int = 3, exit_: int = 2) -> Strategy:
    return build_strategy("donchian_breakout", {"entry_period": entry, "exit_period": exit_})


RANGE = [bar(0, 9.5, 10, 9), bar(1, 9.5, 10, 9), bar(2, 9.5, 10, 9)]


def test_donchian_says_nothing_before_both_channels_exist() -> None:
    assert run(donchian(), [*RANGE[:2], bar(2, 50, 50, 50)]) == [None, None, None]


def test_donchian_close_above_the_n_bar_high_is_strong_buy() -> None:
    signals = run(donchian(), [*RANGE, bar(3, 10.5, 10.6, 9.8)])
    assert levels(signals)[-1] is BUY


def test_donchian_close_at_the_n_bar_high_is_not_a_breakout() -> None:
    assert run(donchian(), [*RANGE, bar(3, 10, 10, 9.8)])[-1] is None


def test_donchian_close_below_the_m_bar_low_is_strong_sell() -> None:
    # The exit channel looks back 2 bars only: a low of 8 three bars ago no longer counts.
    bars = [bar(0, 8.5, 10, 8), bar(1, 9.5, 10, 9), bar(2, 9.5, 10, 9), bar(3, 8.9, 9.6, 8.8)]
    assert levels(run(donchian(), bars))[-1] is SELL


def test_donchian_inside_the_channel_says_nothing() -> None:
    assert run(donchian(), [*RANGE, bar(3, 9.5, 9.9, 9.1)])[-1] is None


# --- buy_and_hold ------------------------------------------------------------------------


def test_buy_and_hold_enters_once_and_then_holds() -> None:
    ctx = StrategyContext(AAPL)
    signals = run(build_strategy("buy_and_hold", {}), closes(10, 11, 12), ctx)
    assert levels(signals) == [BUY, HOLD, HOLD]
    assert ctx.state["entered"] is True
    assert ctx.state["entered_at"] == T0.isoformat()


def test_buy_and_hold_never_enters_during_warmup() -> None:
    strategy = build_strategy("buy_and_hold", {})
    warm = StrategyContext(AAPL, warming_up=True)
    assert levels(run(strategy, closes(10, 11), warm)) == [HOLD, HOLD]
    assert warm.state == {}
    live = StrategyContext(AAPL)
    assert levels(run(strategy, [bar(2, 12)], live)) == [BUY]


def test_buy_and_hold_does_not_enter_again_after_a_restart() -> None:
    persisted: dict[str, Any] = {"entered": True, "entered_at": T0.isoformat()}
    restarted = build_strategy("buy_and_hold", {})
    ctx = StrategyContext(AAPL, state=persisted)
    assert levels(run(restarted, closes(10, 11), ctx)) == [HOLD, HOLD]


def test_buy_and_hold_can_enter_with_a_smaller_level() -> None:
    strategy = build_strategy("buy_and_hold", {"level": 1})
    assert levels(run(strategy, closes(10))) == [SignalLevel.WEAK_BUY]


# --- params ------------------------------------------------------------------------------


def params_error(name: str, params: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as caught:
        spec(name).validate(params)
    return describe_params_error(caught.value)


@pytest.mark.parametrize(("fast", "slow"), [(20, 20), (30, 20)])
def test_sma_cross_fast_must_be_below_slow(fast: int, slow: int) -> None:
    message = params_error("sma_cross", {"fast": fast, "slow": slow})
    assert message == f"fast ({fast}) must be smaller than slow ({slow})"


@pytest.mark.parametrize(("oversold", "overbought"), [(50, 50), (70, 30)])
def test_rsi_oversold_must_be_below_overbought(oversold: float, overbought: float) -> None:
    message = params_error("rsi_reversion", {"oversold": oversold, "overbought": overbought})
    assert message == "oversold must be below overbought"


def test_rsi_thresholds_must_lie_between_zero_and_one_hundred() -> None:
    assert params_error("rsi_reversion", {"overbought": 100}).startswith("overbought:")


def test_donchian_periods_must_be_at_least_two() -> None:
    assert params_error("donchian_breakout", {"entry_period": 1}).startswith("entry_period:")


def test_unknown_param_names_the_known_ones() -> None:
    message = params_error("sma_cross", {"fastt": 3})
    assert message == "fastt: unknown parameter (known: fast, slow)"


def test_every_param_problem_is_listed() -> None:
    message = params_error("donchian_breakout", {"entry_period": 0, "exit_perod": 3})
    assert "entry_period:" in message
    assert "exit_perod: unknown parameter (known: entry_period, exit_period)" in message


def test_params_are_frozen() -> None:
    params = spec("sma_cross").validate({"fast": 2, "slow": 3})
    with pytest.raises(ValidationError):
        params.fast = 5  # type: ignore[attr-defined]


def test_defaults_build_every_builtin() -> None:
    for name in BUILTINS:
        assert build_strategy(name, {}).name == name


# --- registry ----------------------------------------------------------------------------


def test_registry_holds_the_four_builtins() -> None:
    # Other tests in the same process may register strategies of their own.
    assert set(BUILTINS) <= set(registered())
    assert all(registered()[name].name == name and registered()[name].summary
               for name in BUILTINS)


def test_unknown_strategy_message_lists_the_known_ones() -> None:
    with pytest.raises(KeyError) as caught:
        spec("sma_crossover")
    known = ", ".join(sorted(registered()))
    assert caught.value.args[0] == f"unknown strategy 'sma_crossover'; built-in strategies: {known}"
    assert set(BUILTINS) <= set(known.split(", "))


def test_build_strategy_refuses_an_unknown_strategy() -> None:
    with pytest.raises(KeyError, match="unknown strategy 'nope'"):
        build_strategy("nope", {})


def test_registering_a_name_twice_is_refused() -> None:
    class Params(StrategyParams):
        pass

    with pytest.raises(ValueError, match="strategy 'sma_cross' registered twice"):
        register("sma_cross", "again", Params)(lambda params: build_strategy("sma_cross", {}))
    assert registered()["sma_cross"].summary != "again"


def test_strategy_params_reject_unknown_keys() -> None:
    assert issubclass(spec("sma_cross").params_model, BaseModel)
    assert spec("sma_cross").params_model.model_config.get("extra") == "forbid"


# --- determinism -------------------------------------------------------------------------


random_bars = st.lists(
    st.tuples(st.floats(50, 150, allow_nan=False), st.floats(0, 3, allow_nan=False),
              st.floats(0, 3, allow_nan=False)),
    min_size=1, max_size=120,
).map(lambda rows: [bar(i, c, c + up, c - down) for i, (c, up, down) in enumerate(rows)])

SMALL_PARAMS: dict[str, dict[str, Any]] = {
    "sma_cross": {"fast": 3, "slow": 7},
    "rsi_reversion": {"period": 4, "oversold": 35, "overbought": 65},
    "donchian_breakout": {"entry_period": 5, "exit_period": 3},
    "buy_and_hold": {},
}


@given(random_bars, st.sampled_from(BUILTINS))
@PROPERTY
def test_same_bars_give_the_same_signals(bars: list[Bar], name: str) -> None:
    first = run(build_strategy(name, SMALL_PARAMS[name]), bars)
    second = run(build_strategy(name, SMALL_PARAMS[name]), bars)
    assert first == second


@given(random_bars, st.sampled_from(BUILTINS))
@PROPERTY
def test_signals_are_only_ever_none_or_a_level(bars: list[Bar], name: str) -> None:
    for signal in run(build_strategy(name, SMALL_PARAMS[name]), bars):
        assert signal is None or (signal.level is not None and signal.target_quantity is None)
