"""The environment's knobs: which signal levels the actions are, the observation window,
episode length and the reward's weights (a bot's config will give them later)."""

from __future__ import annotations

from dataclasses import dataclass, field

from fleetkit.core.signals import ACTION_LEVELS, SignalLevel

ALL_LEVELS = ACTION_LEVELS  # action i is ALL_LEVELS[i] (core.signals)


@dataclass(frozen=True, slots=True)
class RewardWeights:
    """reward = step P&L + `sharpe` x differential Sharpe ratio - `drawdown` x the step's
    increase in drawdown; P&L and drawdown are fractions of the bot's position size.

    The differential Sharpe ratio (Moody & Saffell) is scale-free and of order
    1/sqrt(`sharpe_eta`), while a bar's P&L is of order 1e-3: hence the small default.
    `sharpe_eta` is the rate of its moving averages of the return and its square."""

    sharpe: float = 0.001
    drawdown: float = 0.5
    sharpe_eta: float = 0.01

    def __post_init__(self) -> None:
        if self.sharpe < 0 or self.drawdown < 0:
            raise ValueError("reward weights must not be negative")
        if not 0 < self.sharpe_eta < 1:
            raise ValueError(f"sharpe_eta must be in (0, 1), got {self.sharpe_eta}")


@dataclass(frozen=True, slots=True)
class EnvConfig:
    """`window`: feature rows in an observation. `episode_bars`: steps before an episode
    is truncated (None: it runs to the window's end). `levels`: the signal level of each
    action, in action order; the trader maps a level to level/3 of the position size."""

    window: int = 16
    episode_bars: int | None = 256
    levels: tuple[SignalLevel, ...] = ALL_LEVELS
    reward: RewardWeights = field(default_factory=RewardWeights)

    def __post_init__(self) -> None:
        if self.window < 1:
            raise ValueError(f"window must be at least 1 row, got {self.window}")
        if self.episode_bars is not None and self.episode_bars < 1:
            raise ValueError(f"episode_bars must be at least 1, got {self.episode_bars}")
        if len(self.levels) < 2 or len(set(self.levels)) != len(self.levels):
            raise ValueError("levels must name at least two different signal levels")
        object.__setattr__(self, "levels", tuple(SignalLevel(lv) for lv in self.levels))
