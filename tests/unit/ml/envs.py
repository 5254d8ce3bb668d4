"""Small training windows for the environment tests: a 24/7 coin on hourly bars (shorting
allowed) and an NSE-like share on quarter-hours (long only, lots of one, 0.05 ticks,
overnight gaps), each with a feature set whose warm-up is a few dozen bars."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from decimal import Decimal
from typing import Any

import numpy as np

from fleetkit.backtest.tape import BarTape
from fleetkit.brokers.sandbox.config import VenueConfig
from fleetkit.core.instruments import AssetClass, Instrument
from fleetkit.engine.assembly import BotRecipe
from fleetkit.engine.execution import BotIdentity
from fleetkit.engine.trader import Sizing
from fleetkit.features import parse_feature_set
from fleetkit.features.batch import FeatureMatrix, compute_features
from fleetkit.ml.env import FastTradingEnv, TradingEnv
from fleetkit.ml.spec import EnvConfig
from fleetkit.risk.rails import RiskLimits
from tests.unit.features.feature_bars import always_sessions, nse_sessions, random_bars

COIN = Instrument("BTC/USDT", "CRYPTO", AssetClass.CRYPTO, "USDT", Decimal("0.01"),
                  Decimal("0.001"), "24/7")
SHARE = Instrument("RELIANCE", "NSE", AssetClass.EQUITY, "INR", Decimal("0.05"), Decimal(1),
                   "XNSE")
VENUE = VenueConfig(fee_bps=Decimal(2), slippage_bps=Decimal(3), partial_fill_probability=0.0)
CONFIG = EnvConfig(window=8, episode_bars=120)


def feature_set(timeframe: str) -> Any:
    return parse_feature_set({"timeframes": {timeframe: [
        "returns", {"kind": "returns", "bars": 4}, {"kind": "bollinger", "period": 20},
        {"kind": "realised_volatility", "bars": 10}, {"kind": "volume_zscore", "bars": 10}]},
        "calendar": ["time_of_day", "session_position"]})


def limits(daily_loss_usd: Decimal | None = None, **changes: Any) -> RiskLimits:
    base = RiskLimits(Decimal(50_000), Decimal(50_000), Decimal(10), 600.0, daily_loss_usd,
                      None)
    return replace(base, **changes)


def recipe(instrument: Instrument, interval_s: int, usd_per_unit: Decimal, *,
           allow_short: bool, risk: RiskLimits | None = None) -> BotRecipe:
    return BotRecipe(BotIdentity(1, "rl-test", instrument.market, instrument.currency),
                     {instrument.key: instrument}, "rl_agent", {},
                     Sizing(Decimal(10_000), usd_per_unit, allow_short=allow_short),
                     risk or limits(), interval_s, {instrument.currency: usd_per_unit})


def coin_market(seed: int = 3, bars: int = 400) -> tuple[BotRecipe, BarTape, FeatureMatrix]:
    sessions = always_sessions(date(2024, 1, 1), bars // 24 + 2)
    columns = random_bars(sessions, "1h", seed=seed)
    return _market(recipe(COIN, 3600, Decimal(1), allow_short=True), COIN, 3600, columns,
                   sessions, bars, "1h")


def coin_market_of(columns: Any, sessions: Any, timeframe: str
                   ) -> tuple[BotRecipe, BarTape, FeatureMatrix]:
    """A coin window on the given bars (of `timeframe`: `1h` or slower)."""
    interval_s = {"1h": 3600, "4h": 14_400, "1d": 86_400}[timeframe]
    return _market(recipe(COIN, interval_s, Decimal(1), allow_short=True), COIN, interval_s,
                   columns, sessions, len(columns), timeframe)


def share_market(seed: int = 5, bars: int = 400) -> tuple[BotRecipe, BarTape, FeatureMatrix]:
    sessions = nse_sessions(date(2024, 1, 1), 40)
    columns = random_bars(sessions, "15m", seed=seed)
    # An NSE share near 2,500 rupees, not the walk's 20,000.
    scaled = replace(columns, open=columns.open / 8, high=columns.high / 8,
                     low=columns.low / 8, close=columns.close / 8)
    return _market(recipe(SHARE, 900, Decimal("0.012"), allow_short=False), SHARE, 900,
                   scaled, sessions, bars, "15m")


def _market(bot: BotRecipe, instrument: Instrument, interval_s: int, columns: Any,
            sessions: Any, bars: int, timeframe: str
            ) -> tuple[BotRecipe, BarTape, FeatureMatrix]:
    columns = columns.tail(len(columns))
    cut = slice(0, bars)
    tape = BarTape(instrument, interval_s, columns.open_s[cut], columns.open[cut],
                   columns.high[cut], columns.low[cut], columns.close[cut],
                   columns.volume[cut])
    matrix = compute_features(feature_set(timeframe), replace(
        columns, open_s=tape.ts_s, open=tape.open, high=tape.high, low=tape.low,
        close=tape.close, volume=tape.volume), sessions)
    return bot, tape, matrix


def engine_env(market: tuple[BotRecipe, BarTape, FeatureMatrix],
               config: EnvConfig = CONFIG) -> TradingEnv:
    bot, tape, matrix = market
    return TradingEnv(bot, tape, matrix, config=config, venue=VENUE)


def fast_env(market: tuple[BotRecipe, BarTape, FeatureMatrix],
             config: EnvConfig = CONFIG) -> FastTradingEnv:
    bot, tape, matrix = market
    return FastTradingEnv(bot, tape, matrix, config=config, venue=VENUE)


def random_actions(seed: int, count: int, levels: int = 7) -> list[int]:
    return np.random.default_rng(seed).integers(0, levels, count).tolist()
