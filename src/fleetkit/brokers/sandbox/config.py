"""VenueConfig: the sandbox venue's knobs (costs, fills, latency, starting cash, time mode)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from decimal import Decimal
from types import MappingProxyType
from typing import Any, Literal, get_args

from fleetkit.core.numbers import to_decimal

TimeMode = Literal["real", "demo"]
TIME_MODES: tuple[str, ...] = get_args(TimeMode)

MAX_COST_BPS = Decimal(1000)  # 10%: anything above is a typo, not a venue
MAX_LATENCY_MS = 60_000

DEFAULT_INITIAL_CASH: Mapping[str, Decimal] = MappingProxyType({
    "USD": Decimal(1_000_000),
    "INR": Decimal(80_000_000),
    "GBX": Decimal(80_000_000),
    "JPY": Decimal(150_000_000),
    "EUR": Decimal(1_000_000),
    "USDT": Decimal(1_000_000),
})


@dataclass(frozen=True)
class VenueConfig:
    """How the sandbox behaves. Costs are in basis points of notional.

    `time_mode` "real" runs every market on the wall clock; "demo" shifts each market that is
    closed when the sandbox is first created so that it is in session from the first minute
    (see SandboxVenue). `seed` makes partial-fill decisions reproducible.
    """

    seed: int = 0
    fee_bps: Decimal = Decimal(1)
    slippage_bps: Decimal = Decimal(2)
    latency_ms: int = 0
    partial_fill_probability: float = 0.1
    # hash=False: a read-only mapping cannot be hashed, and equal configs still compare equal
    initial_cash: Mapping[str, Decimal] = field(default_factory=lambda: DEFAULT_INITIAL_CASH,
                                                hash=False)
    allow_short: bool = True
    time_mode: TimeMode = "real"

    def __post_init__(self) -> None:
        _require_int("seed", self.seed)
        for name in ("fee_bps", "slippage_bps"):
            object.__setattr__(self, name, _cost_bps(name, getattr(self, name)))
        _require_int("latency_ms", self.latency_ms)
        if not 0 <= self.latency_ms <= MAX_LATENCY_MS:
            raise ValueError(f"latency_ms must be between 0 and {MAX_LATENCY_MS}, "
                             f"got {self.latency_ms}")
        object.__setattr__(self, "partial_fill_probability",
                           _probability(self.partial_fill_probability))
        object.__setattr__(self, "initial_cash", _initial_cash(self.initial_cash))
        if not isinstance(self.allow_short, bool):
            raise ValueError(f"allow_short must be true or false, got {self.allow_short!r}")
        if self.time_mode not in TIME_MODES:
            raise ValueError(f"time_mode must be one of {', '.join(TIME_MODES)}, "
                             f"got {self.time_mode!r}")

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> VenueConfig:
        """Build from a parsed config file section, refusing keys it does not know."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown sandbox setting(s) {', '.join(unknown)}; "
                             f"known: {', '.join(sorted(known))}")
        return cls(**dict(data))

    def initial_cash_in(self, currency: str) -> Decimal:
        return self.initial_cash.get(currency, Decimal(0))


def _require_int(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be a whole number, got {value!r}")


def _cost_bps(name: str, value: object) -> Decimal:
    amount = to_decimal(value, what=name)
    if not 0 <= amount <= MAX_COST_BPS:
        raise ValueError(f"{name} must be between 0 and {MAX_COST_BPS} basis points, got {amount}")
    return amount


def _probability(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"partial_fill_probability must be a number, got {value!r}")
    probability = float(value)
    if not math.isfinite(probability) or not 0 <= probability <= 1:
        raise ValueError(f"partial_fill_probability must be between 0 and 1, got {value!r}")
    return probability


def _initial_cash(value: object) -> Mapping[str, Decimal]:
    if not isinstance(value, Mapping):
        raise ValueError("initial_cash must map currency codes to amounts")
    cash: dict[str, Decimal] = {}
    for currency, amount in value.items():
        if not isinstance(currency, str) or not currency or not currency.isalnum():
            raise ValueError(f"initial_cash: {currency!r} is not a currency code")
        cash[currency] = to_decimal(amount, what=f"initial_cash[{currency}]")
        if cash[currency] < 0:
            raise ValueError(f"initial_cash[{currency}] must not be negative, got {amount}")
    return MappingProxyType(cash)
