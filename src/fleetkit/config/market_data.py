"""The market-data collectors' settings (`market_data:` in the fleet config): which option
chains the options collector snapshots every minute, which straddles and strangles the
tracker follows, and how long option quotes stay in the hot database.

The collectors themselves run as market-hours services (`services:`); these settings say
what they collect, the service entry says when (docs/market-data.md).
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, Field, field_validator

from fleetkit.config.strict import Strict, require_unique
from fleetkit.core.instruments import MARKETS
from fleetkit.data.plans import CollectorPlan, WantedChain

_UNDERLYING = re.compile(r"^[A-Z][A-Z0-9&_-]{0,31}$")
_COLLECTOR = re.compile(r"^[a-z0-9][a-z0-9_-]{0,47}$")


def _underlying(name: str) -> str:
    if not _UNDERLYING.match(name):
        raise ValueError(f"underlying {name!r} must be the index's root in capitals, as the "
                         "venue lists it: NIFTY, BANKNIFTY, SENSEX")
    return name


def _market(code: str) -> str:
    if code not in MARKETS:
        raise ValueError(f"unknown market {code!r}; known: {', '.join(MARKETS)}")
    return code


def _collector_name(name: str) -> str:
    if not _COLLECTOR.match(name):
        raise ValueError("collector names are 1-48 lowercase letters, digits, '-' or '_', "
                         "starting with a letter or digit")
    return name


Underlying = Annotated[str, AfterValidator(_underlying)]
CollectorName = Annotated[str, AfterValidator(_collector_name)]
MarketCode = Annotated[str, AfterValidator(_market)]


class ChainSettings(Strict):
    """One underlying's chains to snapshot: its listed expiries (nearest first) and the
    strikes around the money, re-centred on the spot every minute."""

    underlying: Underlying
    expiries: int | None = Field(default=None, ge=1, le=12, description="how many listed "
                                 "expiries, nearest first (default: every one listed)")
    strikes_each_side: int | None = Field(default=None, ge=0, le=200, description="strikes "
                                          "each side of ATM (default: the venue's, 45 in "
                                          "the sandbox)")


def _default_chains() -> list[ChainSettings]:
    return [ChainSettings(underlying=u) for u in ("NIFTY", "BANKNIFTY", "SENSEX")]


class OptionCollectorSettings(Strict):
    """`fleet data collect-options`: a chain snapshot a minute into option_quotes."""

    name: CollectorName = Field(default="options", description="the collector's name in "
                                "its ledger of minutes (option_quote_minutes)")
    market: MarketCode = Field(default="NSE", description="whose calendar says which minutes are "
                        "in session and which trading day a minute belongs to")
    chains: list[ChainSettings] = Field(default_factory=_default_chains)
    snapshot_delay_s: float = Field(default=2.0, ge=0, le=30, description="seconds after "
                                    "each minute starts to take its snapshot")
    late_after_s: float = Field(default=45.0, gt=0, le=59, description="a snapshot not in "
                                "hand this long after its minute started is late: the "
                                "minute is recorded missed (a data.* event) unless the venue "
                                "can still serve it")
    fill_missed: bool = Field(default=True, description="ask the venue for minutes missed "
                              "(a restart, an outage) when it can serve past snapshots: the "
                              "sandbox can, most brokers cannot")
    hot_days: int = Field(default=30, ge=1, le=3650, description="calendar days of option "
                          "quotes kept in the database, today included; `fleet data archive` "
                          "moves older days to Parquet")
    archive_dir: str | None = Field(default=None, description="where archived days go "
                                    "(default: $FLEET_HOME/archive/option_quotes)")

    def plan(self) -> CollectorPlan:
        return CollectorPlan(self.name, self.market, tuple(
            WantedChain(c.underlying, c.expiries, c.strikes_each_side) for c in self.chains),
            self.snapshot_delay_s, self.late_after_s, self.fill_missed)

    @field_validator("chains")
    @classmethod
    def _one_entry_each(cls, chains: list[ChainSettings]) -> list[ChainSettings]:
        if not chains:
            raise ValueError("list at least one chain, e.g. [{underlying: NIFTY}]")
        require_unique("underlying", [c.underlying for c in chains])
        return chains


class StraddleTrackerSettings(Strict):
    """`fleet data track-straddles`: the ATM straddle of the nearest expiry, and strangles
    around it, followed tick by tick over the venue's quote stream."""

    name: CollectorName = Field(default="straddles", description="the tracker's name on "
                                "its snapshots and heartbeat")
    market: MarketCode = Field(default="NSE", description="whose calendar gives a snapshot's "
                        "trading day")
    underlyings: list[Underlying] = Field(
        default_factory=lambda: ["NIFTY", "BANKNIFTY", "SENSEX"])
    strangles: list[int] = Field(default_factory=lambda: [1, 2], description="strangle "
                                 "widths in strikes each side of ATM (the ATM straddle is "
                                 "always tracked)")
    flush_interval_ms: int = Field(default=50, ge=10, le=60_000, description="snapshots "
                                   "are persisted in batches at least this often")
    max_batch: int = Field(default=200, ge=1, le=100_000)
    max_tick_age_s: float = Field(default=10.0, gt=0, le=3600, description="ticks older "
                                  "than this are rejected as stale")

    @field_validator("underlyings")
    @classmethod
    def _some_underlyings(cls, names: list[str]) -> list[str]:
        if not names:
            raise ValueError("list at least one underlying, e.g. [NIFTY]")
        require_unique("underlying", names)
        return names

    @field_validator("strangles")
    @classmethod
    def _widths(cls, widths: list[int]) -> list[int]:
        if any(w < 1 or w > 50 for w in widths):
            raise ValueError("strangle widths are 1-50 strikes each side of ATM")
        if len(set(widths)) != len(widths):
            raise ValueError("list each strangle width once")
        return sorted(widths)


class MarketDataSettings(Strict):
    option_collector: OptionCollectorSettings = Field(default_factory=OptionCollectorSettings)
    straddle_tracker: StraddleTrackerSettings = Field(default_factory=StraddleTrackerSettings)
