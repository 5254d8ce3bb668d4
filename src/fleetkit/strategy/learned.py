"""The `rl_policy` strategy: one trained model per timeframe, each fed the bot's bars through
its own live features, their levels combined into the one the bot trades.

Each model decides on the bars of its own base timeframe only: the bot's bars (the finest
model's timeframe) go straight to the finest model, and are built into slower bars on the
sessions' boundaries (`features.live.LiveBars`) for the others, which decide when one of
their bars completes; between its decisions a model's last level stands. A model's row is
refused if any value is NaN or infinite, normalised with the model's saved normalisation
and built into the observation with the environment's own builder (features.observation);
the policy picks an action deterministically (an LSTM's state carried from one of its
decisions to the next) and the action is its signal level.

The models are loaded (every sha256 checked first) by a loader that lives with torch in
`fleetkit.ml`, which sits above this layer: the registered factory reaches it by reference
(`LOADER`, imported as a config's `plugins:` are, only when an rl_policy bot is built), and
tests inject their own. A model that is refused does not stop the process: the strategy is
built refused and raises its one line on its first bar, which the runner turns into a halt
(source strategy_error) and a critical `strategy.error` event: the alert.

Sessions: a 24/7 market's are UTC days, as its training bars were cut. Any other market's
come from its calendar, a few weeks at a time as the bars reach them: the calendars the
runtime hands over (`use_sessions`, the config's overrides applied), else `fleetkit.calendars`
with the shipped overrides, reached by reference like the loader (pandas comes with them).

Models from the registry (`params.model: registry`): the strategy is built holding no
model and loads nothing itself; the runtime, which reads the registry and the artifact
store (layers this one never imports), hands it each timeframe's active version as a
verified local directory (`use_models`), at start and again whenever the active versions
change — the strategy then loads them through the same loader (every sha256 checked before
anything is unpickled) and starts its model state afresh, and the runtime re-warms it from
history before the next bar decides. A refusal there leaves the models it had untouched.
Until models are handed over (no active version), the strategy refuses with the reason.

The models' levels combine by `combine` (models ordered finest first):
    mean             the mean of their levels, rounded toward hold (-1.5 -> -1, 2.7 -> 2)
    agree            their common level when all say the same, else hold
    finest_confirmed the finest model's level when every slower one is on its side (buying
                     or selling, any strength), else hold
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar, Protocol, cast

import numpy as np

from fleetkit.core.bars import TIMEFRAMES
from fleetkit.core.errors import ConfigError, StrategyError
from fleetkit.core.instruments import ALWAYS_OPEN
from fleetkit.core.market_data import Bar
from fleetkit.core.sessions import Session
from fleetkit.core.signals import ACTION_LEVELS, Signal, SignalLevel
from fleetkit.features.guard import require_finite
from fleetkit.features.live import LiveBars, LiveFeatures, SessionBook
from fleetkit.features.normalise import Normalisation
from fleetkit.features.observation import (
    Float32Array,
    build_observation,
    normalised,
    state_fractions,
)
from fleetkit.features.parse import parse_feature_set
from fleetkit.features.spec import DAY_MINUTES, FeatureSet, timeframe_minutes
from fleetkit.registry import import_provider
from fleetkit.strategy.base import StrategyContext

# Where the torch-facing loader lives (see the module docstring).
LOADER = "fleetkit.ml.policy_loader:load_policy"
# The calendars and their shipped overrides, for a market with sessions (see above).
CALENDARS = "fleetkit.calendars.market_calendars:MarketCalendars"
OVERRIDES = "fleetkit.calendars.overrides:load_overrides"
MANIFEST = "manifest.json"  # ml.model_dir.MANIFEST: what makes a directory a model's
# `params.model: registry` (config.ml.MODELS_FROM_REGISTRY): models handed over by the
# runtime from the registry's active versions.
REGISTRY = "registry"
LEVELS = ACTION_LEVELS  # action i is LEVELS[i], as in training (core.signals)
COMBINE_RULES = ("mean", "agree", "finest_confirmed", "finest_unopposed")
_LOG = logging.getLogger("fleetkit.strategy.rl_policy")
# Sessions are asked for this many days ahead of the bar that needs them: a calendar call
# (pandas) a month, not a bar.
_SESSION_DAYS = 31
# A session that opened on an earlier UTC date can hold the first bar (an evening open).
_SESSION_LOOKBACK = timedelta(days=3)


class LoadedPolicy(Protocol):
    """A verified model: its feature set, window of rows, normalisation, and one action a
    call."""

    feature_set: FeatureSet
    window: int
    normalisation: Normalisation
    actions: int

    def act(self, observation: Float32Array) -> int: ...


class PolicyLoader(Protocol):
    def __call__(self, directory: Path, feature_set: FeatureSet | None, *,
                 device: str) -> LoadedPolicy: ...


class SessionSource(Protocol):
    """Trading sessions of a calendar for whole UTC dates (engine.ports.SessionSource)."""

    def sessions(self, calendar: str, start: date, end: date) -> list[Session]: ...


def calendar_sessions() -> SessionSource:
    """`fleetkit.calendars` with the shipped overrides, reached by reference."""
    calendars: Any = import_provider(CALENDARS)
    overrides: Any = import_provider(OVERRIDES)
    return cast(SessionSource, calendars(overrides(None).for_market_calendars()))


def combine_levels(levels: Sequence[SignalLevel], rule: str) -> SignalLevel:
    """One level from several models' (finest first; see the module docstring)."""
    if rule == "agree":
        return levels[0] if all(lv == levels[0] for lv in levels) else SignalLevel.HOLD
    if rule == "mean":
        return SignalLevel(math.trunc(sum(int(lv) for lv in levels) / len(levels)))
    if rule == "finest_confirmed":
        side = _side(levels[0])
        return levels[0] if all(_side(lv) == side for lv in levels[1:]) else SignalLevel.HOLD
    if rule == "finest_unopposed":
        # The slower models as a filter, not a vote: they may stop a trade against their
        # side, but a slower model that is flat lets the finest one trade.
        side = _side(levels[0])
        opposed = any(_side(lv) == -side for lv in levels[1:]) and side != 0
        return SignalLevel.HOLD if opposed else levels[0]
    raise ValueError(f"unknown combine rule {rule!r}; choose one of {', '.join(COMBINE_RULES)}")


def _side(level: SignalLevel) -> int:
    return (int(level) > 0) - (int(level) < 0)


def model_directories(models: Sequence[str]) -> list[Path]:
    """Each reference's model directories: a directory with a manifest.json is one model;
    one whose subdirectories are named like timeframes (`15m/`, `1h/`, `1d/`: what
    `fleet ml train` writes) holds one model per timeframe. ConfigError naming the path."""
    found: list[Path] = []
    for reference in models:
        path = Path(reference).expanduser()
        if (path / MANIFEST).is_file():
            found.append(path)
            continue
        per_timeframe = [path / t for t in TIMEFRAMES if (path / t).is_dir()]
        if not per_timeframe:
            raise ConfigError(f"{path} holds no model: neither a {MANIFEST} nor timeframe "
                              "directories (15m/, 1h/, 1d/ ...) holding one; train with "
                              "`fleet ml train` or name a model directory")
        for directory in per_timeframe:
            if not (directory / MANIFEST).is_file():
                raise ConfigError(f"{directory} has no {MANIFEST}: its training did not "
                                  "finish; train it again or remove the directory")
        found += per_timeframe
    return found


def build_rl_policy(models: Sequence[str], features: dict[str, Any] | None, combine: str,
                    device: str = "cpu", *, loader: PolicyLoader | None = None
                    ) -> RlPolicyStrategy:
    """Loads every model (verified first); a refusal builds a strategy that halts its bot
    with the reason at its first bar instead of trading. `features`: the set the models
    were trained on, needed only for manifests that do not declare it."""
    try:
        feature_set = None if features is None else parse_feature_set(features)
        load: PolicyLoader = loader or import_provider(LOADER)  # type: ignore[assignment]
        if list(models) == [REGISTRY]:
            # The runtime hands the registry's versions over (`use_models`); until it
            # does, the strategy refuses, so a bot that nothing hands them to (a backtest)
            # halts with the reason instead of trading nothing silently.
            return RlPolicyStrategy([], combine, refused=AWAITING_REGISTRY,
                                    source=_Source(load, feature_set, device))
        directories = model_directories(models)
        policies = [load(d, feature_set, device=device) for d in directories]
        for directory, policy in zip(directories, policies, strict=True):
            _check_policy(directory, policy, directory.name if directory.name in TIMEFRAMES
                          else None)
    except Exception as exc:  # the loader's refusal, or the `ml` extra missing
        return RlPolicyStrategy([], combine, refused=_one_line(exc))
    return RlPolicyStrategy(policies, combine, names=[str(d) for d in directories])


AWAITING_REGISTRY = ("rl_policy follows the model registry (params.model: registry) but no "
                     "model version was handed to it: only a running bot (`fleet bot run`, "
                     "`fleet up`) reads the registry; elsewhere name a model directory")


@dataclass(frozen=True, slots=True)
class _Source:
    """How models handed over later are loaded: the build's loader, features and device."""

    load: PolicyLoader
    feature_set: FeatureSet | None
    device: str


def _check_policy(directory: Path, policy: LoadedPolicy, timeframe: str | None) -> None:
    if policy.actions != len(LEVELS):
        raise ConfigError(f"{directory} has {policy.actions} actions, not the "
                          f"{len(LEVELS)} signal levels; train it again")
    base = policy.feature_set.base
    if timeframe is not None and timeframe != base:
        raise ConfigError(f"{directory} holds a {base} model, not a {timeframe} one; "
                          + (f"move it to {directory.parent / base}"
                             if directory.name == timeframe else
                             "register it under its own timeframe"))


def _minutes(policy: LoadedPolicy) -> float:
    return timeframe_minutes(policy.feature_set.base)


def _one_line(exc: Exception) -> str:
    text = " ".join(str(exc).split())
    if isinstance(exc, ImportError):
        text += " (install the ml extra: pip install -e '.[ml]' -c constraints/torch-cpu.txt)"
    return f"rl_policy refused its model: {text}"


@dataclass(slots=True, eq=False)
class _Model:
    """One model's pipeline: its bars (the bot's, or built from them), live features,
    window of normalised rows and its last level."""

    name: str
    policy: LoadedPolicy
    timeframe: str
    rows: deque[Float32Array]
    live: LiveFeatures | None = None
    bars: LiveBars | None = None  # None: the bot's own bars are this model's
    level: SignalLevel | None = None
    decisions: int = 0
    version: int | None = None  # the registry's version id, for models handed over


class RlPolicyStrategy:
    name: ClassVar[str] = "rl_policy"
    # Its observation holds the unrealised P&L: the bot refreshes the average price on
    # every fill for it (engine.bot), as it does for the exits.
    reads_average_price: ClassVar[bool] = True

    def __init__(self, policies: Sequence[LoadedPolicy], combine: str, *,
                 names: Sequence[str] | None = None, refused: str | None = None,
                 source: _Source | None = None) -> None:
        if combine not in COMBINE_RULES:
            raise ValueError(f"unknown combine rule {combine!r}")
        self.combine = combine
        self.refused = refused
        # Set: the models come from the registry, handed over by the runtime.
        self._source = source
        self._sessions: SessionSource | None = None
        self._set_models(policies, names, [None] * len(policies))

    def _set_models(self, policies: Sequence[LoadedPolicy], names: Sequence[str] | None,
                    versions: Sequence[int | None]) -> None:
        """These models, with every piece of state fed from bars started afresh (the
        calendars handed over stay)."""
        names = list(names) if names is not None else [f"model {i}" for i in
                                                       range(len(policies))]
        ordered = sorted(zip(names, policies, versions, strict=True),
                         key=lambda p: _minutes(p[1]))
        self.models = [_Model(n, p, p.feature_set.base, deque(maxlen=p.window), version=v)
                       for n, p, v in ordered]  # finest first: the bot's bars are its bars
        self._book: SessionBook | None = None
        self._known_until_s = 0  # sessions are known for bars opening before this
        self._next_day: date | None = None
        self._calendar = ALWAYS_OPEN
        self._last: tuple[int, int] | None = None  # the last bar's open and its session
        self._least_gap_s: int | None = None
        self._checked_bars = False
        self._said_warming = False

    @property
    def policies(self) -> list[LoadedPolicy]:
        return [m.policy for m in self.models]

    @property
    def follows_registry(self) -> bool:
        """Whether the runtime must hand this strategy its models (`use_models`)."""
        return self._source is not None

    @property
    def versions(self) -> dict[str, int]:
        """timeframe -> the registry version each model trades (handed-over models only)."""
        return {m.timeframe: m.version for m in self.models if m.version is not None}

    def use_models(self, models: Sequence[tuple[str, Path, int]]) -> None:
        """Trade these models from now on: (timeframe, verified directory, registry version)
        for each of the bot's timeframes. Each is loaded through the build's loader (every
        sha256 checked before anything is unpickled); all load or nothing changes (the
        loader's refusal is raised, one line). The model state starts afresh: the caller
        warms it up again from history before the next bar trades."""
        if self._source is None:
            raise ConfigError("rl_policy: this strategy loads its own models (params.model "
                              "names directories); it takes none from the registry")
        source = self._source
        loaded = []
        for timeframe, directory, version in models:
            policy = source.load(directory, source.feature_set, device=source.device)
            _check_policy(directory, policy, timeframe)
            loaded.append((f"{timeframe} version {version} ({directory})", policy, version))
        if not loaded:
            raise ConfigError("rl_policy: no model was handed over")
        self._set_models([p for _, p, _ in loaded], [n for n, _, _ in loaded],
                         [v for _, _, v in loaded])
        self.refused = None

    def refuse(self, reason: str) -> None:
        """Halt at the next bar with `reason` (one line): e.g. no active version to trade."""
        self.refused = reason

    @property
    def timeframe(self) -> str | None:
        """The bot's bars: the finest model's timeframe (None when refused)."""
        return self.models[0].timeframe if self.models else None

    def use_sessions(self, source: SessionSource) -> None:
        """The calendars to ask for a market's sessions (the runtime's, with the config's
        overrides); before the first bar."""
        self._sessions = source

    def warmup_bars(self) -> int:
        """Bot bars until the slowest model has its first decision: its features' warm-up
        and its window in its own bars (a day counted as 24 hours: enough for any market),
        one more when its bars are built from the bot's (the first may be cut short)."""
        if self.refused is not None or not self.models:
            return 0
        bot = timeframe_minutes(self.models[0].timeframe)
        needed = 0
        for model in self.models:
            own = timeframe_minutes(model.timeframe)
            per_bar = 1 if math.isinf(bot) else math.ceil(
                (DAY_MINUTES if math.isinf(own) else own) / bot)
            extra = 0 if model.timeframe == self.models[0].timeframe else 1
            bars = model.policy.feature_set.warmup_bars() + model.policy.window + extra
            needed = max(needed, bars * per_bar)
        return needed

    def on_bar(self, bar: Bar, ctx: StrategyContext) -> Signal | None:
        if self.refused is not None:
            raise StrategyError(self.refused)
        if self._book is None:
            self._start(ctx)
        open_s = int(bar.ts.timestamp())
        if open_s >= self._known_until_s:
            self._more_sessions(open_s)
        self._watch_bar_length(open_s)
        decided = False
        for index, model in enumerate(self.models):
            decided |= self._feed(index, model, bar, open_s, ctx)
        levels = [m.level for m in self.models]
        if any(level is None for level in levels):
            self._warming(ctx, "features warming up" if not decided
                          else "waiting for the slower models' first decisions")
            return None
        if not self._checked_bars:
            self._check_bar_length()
        known = cast(list[SignalLevel], levels)
        level = combine_levels(known, self.combine)
        return Signal.at(level, "rl_policy " + ",".join(
            f"{m.timeframe}:{int(lv)}" for m, lv in zip(self.models, known, strict=True)))

    def _feed(self, index: int, model: _Model, bar: Bar, open_s: int,
              ctx: StrategyContext) -> bool:
        """This bot bar through one model: its own bars that completed, each a row and, once
        its window is full, a decision. True if it decided."""
        live = cast(LiveFeatures, model.live)
        try:
            if model.bars is None:
                rows = [(open_s, live.update_at(open_s, bar.open, bar.high, bar.low,
                                                bar.close, bar.volume))]
            else:
                rows = [(b.open_s, live.update_at(*b)) for b in model.bars.update_at(
                    open_s, bar.open, bar.high, bar.low, bar.close, bar.volume)]
        except ValueError as exc:  # a bar off the model's boundaries or the sessions
            raise StrategyError(f"rl_policy: {exc} (the bot's bars must be "
                                f"{self.models[0].timeframe}, the finest model's)") from None
        decided = False
        for row_open_s, row in rows:
            if not live.ready:
                continue
            require_finite(row, live.columns, row_open_s)
            model.rows.append(normalised(model.policy.normalisation, row))
            if len(model.rows) == model.rows.maxlen:
                model.level = LEVELS[model.policy.act(self.observation(ctx, bar.close, index))]
                model.decisions += 1
                decided = True
        return decided

    def observation(self, ctx: StrategyContext, close: float, index: int = 0) -> Float32Array:
        """Model `index`'s observation now (finest first): its window of rows, the position
        and its unrealised P&L (the environment's builder, over the bot's sizing)."""
        if ctx.position_size_usd is None or ctx.usd_per_unit is None:
            raise StrategyError("rl_policy needs the bot's sizing in its context")
        position, unrealised = state_fractions(
            float(ctx.position), float(ctx.average_price), close,
            position_usd=float(ctx.position_size_usd), usd_per_unit=float(ctx.usd_per_unit),
            full_units=float(ctx.position_size_usd / ctx.usd_per_unit))
        return build_observation(np.stack(self.models[index].rows), position, unrealised)

    # --- sessions and the bot's bars ----------------------------------------------------

    def _start(self, ctx: StrategyContext) -> None:
        self._calendar = ctx.instrument.calendar
        if self._calendar != ALWAYS_OPEN and self._sessions is None:
            try:
                self._sessions = calendar_sessions()
            except Exception as exc:  # the calendars' extra (pandas) missing, say
                raise StrategyError(f"rl_policy cannot read the {self._calendar} calendar "
                                    f"for {ctx.instrument.key}: {exc}") from None
        book = self._book = SessionBook()
        bot = self.models[0].timeframe
        for model in self.models:
            model.live = LiveFeatures(model.policy.feature_set, book)
            if model.timeframe != bot:
                model.bars = LiveBars(bot, model.timeframe, book)

    def _more_sessions(self, open_s: int) -> None:
        """Sessions from where the book ends (or a few days before the first bar) to a
        month past this bar's UTC date."""
        day = datetime.fromtimestamp(open_s, UTC).date()
        start = self._next_day or day - _SESSION_LOOKBACK
        end = day + timedelta(days=_SESSION_DAYS)
        if self._calendar == ALWAYS_OPEN:
            sessions = _utc_days(start, end)
        else:
            try:
                sessions = cast(SessionSource, self._sessions).sessions(self._calendar,
                                                                        start, end)
            except Exception as exc:  # a calendar that cannot answer: no trading blind
                raise StrategyError(f"rl_policy cannot read the {self._calendar} sessions "
                                    f"{start}..{end}: {' '.join(str(exc).split())}") from None
        cast(SessionBook, self._book).add(sessions)
        self._next_day = end + timedelta(days=1)
        self._known_until_s = int(datetime(self._next_day.year, self._next_day.month,
                                           self._next_day.day, tzinfo=UTC).timestamp())

    def _watch_bar_length(self, open_s: int) -> None:
        """The least gap between two bars of one session: longer than the finest model's
        timeframe everywhere means the bot's bars are longer than that model's."""
        book = cast(SessionBook, self._book)
        try:
            session = book.find(open_s)
        except ValueError:
            return  # said by the features, with the bar
        last = self._last
        if last is not None and last[1] == session:
            gap = open_s - last[0]
            if self._least_gap_s is None or gap < self._least_gap_s:
                self._least_gap_s = gap
        self._last = (open_s, session)

    def _check_bar_length(self) -> None:
        self._checked_bars = True
        finest = self.models[0]
        minutes = TIMEFRAMES[finest.timeframe]
        if minutes is None or self._least_gap_s is None:
            return  # daily bars, or no two bars in one session: nothing to tell
        if self._least_gap_s > minutes * 60:
            raise StrategyError(
                f"rl_policy: the bot's bars are {self._least_gap_s // 60} minutes apart or "
                f"more, but {finest.name} decides on {finest.timeframe} bars; set the bot's "
                f"bar interval to {finest.timeframe} or use models of its bars")

    def _warming(self, ctx: StrategyContext, why: str) -> None:
        if not self._said_warming and not ctx.warming_up:
            self._said_warming = True  # once: a warm-up is news, each held bar is not
            _LOG.info("rl_policy holding on %s: %s", ctx.instrument.key, why)


def _utc_days(start: date, end: date) -> list[Session]:
    """A 24/7 market's sessions: UTC days, as its training bars were cut."""
    first = datetime(start.year, start.month, start.day, tzinfo=UTC)
    return [Session(first + timedelta(days=d), first + timedelta(days=d + 1))
            for d in range((end - start).days + 1)]


__all__ = ["LoadedPolicy", "PolicyLoader", "RlPolicyStrategy", "SessionSource",
           "build_rl_policy", "calendar_sessions", "combine_levels",
           "model_directories"]
