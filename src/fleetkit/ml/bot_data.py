"""Everything a config bot's model for one timeframe is trained (and evaluated) on: the
bot's recipe with the traded instrument, the signal's base bars as a tape, their features,
the sessions, where the held-out tail starts and the normalisation fitted before it.

`fleet ml train` trains on rows [0, holdout_start); `fleet ml evaluate` replays the rows
from holdout_start on, with the same normalisation (the model directory saves it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from fleetkit.backtest.tape import BarTape
from fleetkit.brokers.sandbox.config import VenueConfig
from fleetkit.config.loader import LoadedConfig
from fleetkit.config.ml import ml_feature_set, ml_signal, ml_timeframes
from fleetkit.config.models import BotSettings
from fleetkit.core.bars import TIMEFRAMES
from fleetkit.core.errors import ConfigError, UnknownBotError, UserError
from fleetkit.core.instruments import Instrument
from fleetkit.core.sessions import Session
from fleetkit.core.signals import SignalLevel
from fleetkit.engine.assembly import BotRecipe
from fleetkit.engine.execution import BotIdentity
from fleetkit.features.batch import FeatureMatrix, compute_features
from fleetkit.features.normalise import Normalisation, fit_normalisation
from fleetkit.features.spec import FeatureSet, from_base
from fleetkit.ml.bot_bars import (
    BarRequest,
    SignalBars,
    Source,
    session_minutes,
    signal_bars,
)
from fleetkit.ml.spec import ALL_LEVELS, EnvConfig, RewardWeights
from fleetkit.runtime.connections import trading_costs
from fleetkit.runtime.wiring import (
    bot_instruments,
    bot_recipe,
    front_future_spec,
    sandbox_catalog,
    sandbox_contract_rules,
)

__all__ = ["BotTrainingData", "NotEnoughHistoryError", "bot_settings", "check_timeframe",
           "load_bot_training_data", "matrix_rows", "tape_rows", "training_bars"]

DAY_S = 86_400


class NotEnoughHistoryError(UserError):
    """Fewer bars than the warm-up and the history need; the message says how to get them."""


@dataclass(frozen=True, slots=True)
class BotTrainingData:
    """One timeframe's model of a bot: what it trades, on which bars and features.

    `tape` and `matrix` are the whole history (warm-up, training rows, held-out rows);
    `holdout_start` is the first held-out row (len(tape) when nothing is held out);
    `normalisation` was fitted on the training rows [matrix.ready_from, holdout_start)."""

    bot: BotSettings
    timeframe: str
    signal: str  # the instrument whose bars these are
    feature_set: FeatureSet
    recipe: BotRecipe
    tape: BarTape
    matrix: FeatureMatrix
    sessions: list[Session]
    holdout_start: int
    normalisation: Normalisation
    env_config: EnvConfig
    venue: VenueConfig
    models_dir: Path
    source: str
    notes: tuple[str, ...]

    @property
    def model_dir(self) -> Path:
        """Where this timeframe's model lives: <models_dir>/<timeframe>/."""
        return self.models_dir / self.timeframe

    @property
    def training_tape(self) -> BarTape:
        return tape_rows(self.tape, self.holdout_start)

    @property
    def training_matrix(self) -> FeatureMatrix:
        return matrix_rows(self.matrix, self.holdout_start)


def bot_settings(loaded: LoadedConfig, name: str) -> BotSettings:
    """The config's bot with an `ml:` section; one line naming the fix otherwise."""
    config = loaded.config
    try:
        bot = config.bot(name)
    except KeyError:
        known = ", ".join(b.name for b in config.bots) or "none"
        raise UnknownBotError(f"no bot named {name!r} in {loaded.source} (bots: {known})"
                              ) from None
    if bot.ml is None:
        raise ConfigError(f"bot {name} has no ml: section; add one (docs/ml.md, "
                          "\"Configuring a learning bot\"), e.g. ml: {timeframes: [1h]}")
    return bot


def check_timeframe(loaded: LoadedConfig, bot: BotSettings, timeframe: str) -> None:
    known = ml_timeframes(bot, loaded.config.defaults.bar_interval)
    if timeframe not in known:
        raise ConfigError(f"--timeframe {timeframe}: bot {bot.name} trains "
                          f"{', '.join(known)} (ml.timeframes); pick one of them")


def load_bot_training_data(loaded: LoadedConfig, bot: BotSettings, timeframe: str, *,
                           history_bars: int | None = None, end: datetime | None = None,
                           source: Source = "auto", require_history: bool = True,
                           db: str | None = None, market_data_db: str | None = None,
                           bars: SignalBars | None = None) -> BotTrainingData:
    """The data of `bot`'s `timeframe` model, the last bar complete by `end` (default
    now). `history_bars` (default ml.history_bars) counts bars of the bot's finest
    timeframe; `require_history=False` takes what there is (the features of one bar).
    `bars`: the signal bars already read (`fleet ml train --bars`, an exported file),
    instead of asking `source` for them."""
    ml = bot.ml
    if ml is None:
        raise ConfigError(f"bot {bot.name} has no ml: section")
    check_timeframe(loaded, bot, timeframe)
    feature_set = from_base(ml_feature_set(bot, loaded.config.defaults.bar_interval),
                            timeframe)
    signal = ml_signal(bot)
    end = end or datetime.now(UTC)
    day_minutes = session_minutes(loaded, signal, end)
    warmup = feature_set.warmup_bars(day_minutes)
    history = _history_for(loaded, bot, timeframe, history_bars, day_minutes)
    if bars is not None and (bars.instrument, bars.timeframe) != (signal, timeframe):
        raise ConfigError(f"the bars given are {bars.instrument} {bars.timeframe}, bot "
                          f"{bot.name}'s {timeframe} model reads {signal} {timeframe}: "
                          "export them again for this bot and timeframe")
    found = bars if bars is not None else signal_bars(
        loaded, bot, BarRequest(signal, timeframe, warmup + history, end), source=source,
        db=db, market_data_db=market_data_db)
    if require_history and len(found) < warmup + history:
        raise NotEnoughHistoryError(_too_little(found, warmup, history, day_minutes))
    if not len(found):
        raise NotEnoughHistoryError(_too_little(found, warmup, history, day_minutes))
    traded, notes = _traded_instrument(loaded, bot, signal)
    tape = _tape(traded, timeframe, found)
    matrix = compute_features(feature_set, found.bars, found.sessions)
    holdout = len(tape) - round((len(tape) - matrix.ready_from) * ml.holdout_fraction)
    env_config = EnvConfig(window=ml.window, episode_bars=ml.episode_bars,
                           levels=tuple(SignalLevel(v) for v in ml.levels) if ml.levels
                           else ALL_LEVELS,
                           reward=RewardWeights(**ml.reward.model_dump()))
    normalisation = _fitted(matrix, holdout, ml.window, require_history)
    return BotTrainingData(
        bot, timeframe, signal, feature_set, _recipe(loaded, bot, traded, tape.interval_s), tape,
        matrix, found.sessions, holdout, normalisation, env_config, _venue(loaded, bot),
        Path(ml.models_dir or ""), found.source, notes)


def training_bars(loaded: LoadedConfig, bot: BotSettings, timeframe: str, end: datetime, *,
                  source: Source = "auto", db: str | None = None,
                  market_data_db: str | None = None) -> SignalBars:
    """The signal bars `load_bot_training_data` would read for this model by `end`: what
    the training pipeline exports for a trainer (ml.bar_file)."""
    ml = bot.ml
    if ml is None:
        raise ConfigError(f"bot {bot.name} has no ml: section")
    check_timeframe(loaded, bot, timeframe)
    feature_set = from_base(ml_feature_set(bot, loaded.config.defaults.bar_interval),
                            timeframe)
    signal = ml_signal(bot)
    day_minutes = session_minutes(loaded, signal, end)
    count = (feature_set.warmup_bars(day_minutes)
             + _history_for(loaded, bot, timeframe, None, day_minutes))
    return signal_bars(loaded, bot, BarRequest(signal, timeframe, count, end), source=source,
                       db=db, market_data_db=market_data_db)


def _history_for(loaded: LoadedConfig, bot: BotSettings, timeframe: str,
                 history_bars: int | None, day_minutes: int) -> int:
    ml = bot.ml
    if ml is None:  # the callers checked
        raise ConfigError(f"bot {bot.name} has no ml: section")
    finest = ml_timeframes(bot, loaded.config.defaults.bar_interval)[0]
    return _history_in(timeframe, finest, ml.history_bars if history_bars is None
                       else history_bars, day_minutes)


def tape_rows(tape: BarTape, stop: int) -> BarTape:
    """The tape's first `stop` bars."""
    cut = slice(0, stop)
    return BarTape(tape.instrument, tape.interval_s, tape.ts_s[cut], tape.open[cut],
                   tape.high[cut], tape.low[cut], tape.close[cut], tape.volume[cut])


def matrix_rows(matrix: FeatureMatrix, stop: int) -> FeatureMatrix:
    """The matrix's first `stop` rows (a row depends only on the bars up to it)."""
    cut = slice(0, stop)
    return replace(matrix, open_s=matrix.open_s[cut], close_s=matrix.close_s[cut],
                   values=matrix.values[cut], ready_from=min(matrix.ready_from, stop))


def _history_in(timeframe: str, finest: str, history_bars: int, day_minutes: int) -> int:
    """`history_bars` of the finest timeframe as bars of `timeframe`: every model learns
    from the same stretch of time (and is held out on the same tail)."""
    def length(name: str) -> int:
        minutes = TIMEFRAMES[name]
        return day_minutes if minutes is None else min(minutes, day_minutes)

    return max(2, math.ceil(history_bars * length(finest) / length(timeframe)))


def _too_little(found: SignalBars, warmup: int, history: int, day_minutes: int) -> str:
    needed = warmup + history
    minutes = TIMEFRAMES[found.timeframe]
    per_day = 1 if minutes is None else max(1, day_minutes // minutes)
    days = math.ceil(needed / per_day * (7 / 5 if day_minutes < 1440 else 1)) + 2
    return (f"needs {needed} bars of {found.timeframe} for {found.instrument} (warm-up "
            f"{warmup} + history {history}), found {len(found)}: backfill with `fleet data "
            f"backfill '{found.instrument}' --days {days}` or lower ml.history_bars")


def _traded_instrument(loaded: LoadedConfig, bot: BotSettings, signal: str
                       ) -> tuple[Instrument, tuple[str, ...]]:
    """The bot's (first) instrument, trained at the signal's prices; the signal's own spec
    when the sandbox does not know what the bot trades (a future it cannot price yet)."""
    catalog = sandbox_catalog(loaded.config)
    notes: list[str] = []
    if len(bot.symbols) > 1:
        notes.append(f"trains on {bot.symbols[0]} only (one instrument per model)")
    if bot.contract == "front_future":
        future = front_future_spec(bot, bot.symbols[0], sandbox_contract_rules(loaded), catalog)
        notes.append(f"trades {bot.symbols[0]}'s front-month future (lots of "
                     f"{future.lot_size}) at {signal}'s prices")
        return future, tuple(notes)
    try:
        traded = next(iter(bot_instruments(bot.model_copy(update={"symbols": bot.symbols[:1]}),
                                           catalog).values()))
    except ConfigError:
        traded = None
    if signal not in catalog and (traded is None or traded.key != signal):
        raise ConfigError(f"bot {bot.name}: the sandbox does not know the signal "
                              f"{signal}; set ml.signal to an instrument it prices")
    if traded is None:
        notes.append(f"{bot.market}:{bot.symbols[0]} is not in the sandbox catalog: "
                     f"trained with {signal}'s lots and ticks")
        return catalog[signal].instrument, tuple(notes)
    if traded.key != signal:
        notes.append(f"trades {traded.key} at {signal}'s prices")
    return traded, tuple(notes)


def _tape(instrument: Instrument, timeframe: str, found: SignalBars) -> BarTape:
    minutes = TIMEFRAMES[timeframe]
    bars = found.bars
    return BarTape(instrument, DAY_S if minutes is None else minutes * 60, bars.open_s,
                   bars.open, bars.high, bars.low, bars.close, bars.volume)


def _recipe(loaded: LoadedConfig, bot: BotSettings, traded: Instrument,
            interval_s: int) -> BotRecipe:
    """The bot as config builds it (sizing, rails, exits), on the one traded instrument and
    the model's bars; the agent replaces its strategy in the environment."""
    recipe = bot_recipe(loaded.config, bot, 1, {traded.key: traded})
    identity = recipe.identity
    return replace(recipe, interval_s=interval_s,
                   identity=BotIdentity(identity.id, identity.name, traded.market,
                                        traded.currency))


def _venue(loaded: LoadedConfig, bot: BotSettings) -> VenueConfig:
    """The costs the bot trades at: the sandbox's, or paper trading's; whole fills."""
    config = loaded.config
    fee_bps, slippage_bps = trading_costs(config, bot)
    return VenueConfig(seed=config.sandbox.seed, fee_bps=fee_bps,
                       slippage_bps=slippage_bps, partial_fill_probability=0.0)


def _fitted(matrix: FeatureMatrix, holdout: int, window: int, required: bool
            ) -> Normalisation:
    """The normalisation of the training rows; too few of them is refused with the fix."""
    ready = matrix.ready_from
    if holdout - ready >= window + 2:
        return fit_normalisation(matrix, slice(ready, holdout))
    if required:
        raise NotEnoughHistoryError(
            f"{holdout - ready} training rows after the warm-up leave no step for a window "
            f"of {window}: raise ml.history_bars, or lower ml.window or ml.holdout_fraction")
    # Only the features are wanted (`fleet ml features`): scale nothing.
    return Normalisation(matrix.feature_set_hash, matrix.columns,
                         (0.0,) * len(matrix.columns), (1.0,) * len(matrix.columns))
