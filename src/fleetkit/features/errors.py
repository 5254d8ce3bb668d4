"""What can go wrong with features, sorted by what must be done about it.

    ConfigError (core)
    ├── FeatureSetError          a declared feature set is malformed: fix the key the message names
    └── NormalisationMismatch    a saved normalisation belongs to another feature set: fit again
    StrategyError (core)
    └── FeatureError             a feature came out NaN or infinite: refuse to trade, halt the bot
"""

from __future__ import annotations

from fleetkit.core.errors import ConfigError, StrategyError


class FeatureSetError(ConfigError, ValueError):
    """A feature set declaration is wrong; the message names the key and the fix."""


class NormalisationMismatchError(ConfigError):
    """A normalisation file was fitted for another feature set (hash or columns differ)."""


class FeatureError(StrategyError):
    """A feature value is NaN or infinite; trading on it would be a silent guess."""

    def __init__(self, message: str, *, column: str, at: str) -> None:
        super().__init__(message)
        self.column = column
        self.at = at
