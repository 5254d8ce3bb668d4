"""What the options collector collects, as plain data: the config layer builds it
(config.market_data.OptionCollectorSettings.plan) without importing the collector, its
store or their database drivers — every bot process loads the config."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class WantedChain:
    """One underlying's chains: `expiries` nearest listed (None: all), strikes each side
    of ATM (None: the venue's default)."""

    underlying: str
    expiries: int | None = None
    strikes_each_side: int | None = None


@dataclass(frozen=True, slots=True)
class CollectorPlan:
    """What the collector collects and how (config.market_data.OptionCollectorSettings
    makes one from the fleet config)."""

    name: str
    market: str
    chains: tuple[WantedChain, ...]
    snapshot_delay_s: float = 2.0
    late_after_s: float = 45.0
    fill_missed: bool = True
