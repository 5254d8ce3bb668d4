"""VenueConfig validation: clear errors for settings no venue could have."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from fleetkit.brokers.sandbox.config import DEFAULT_INITIAL_CASH, VenueConfig


def test_defaults_describe_a_cheap_liquid_venue() -> None:
    config = VenueConfig()

    assert (config.fee_bps, config.slippage_bps) == (Decimal(1), Decimal(2))
    assert (config.latency_ms, config.partial_fill_probability) == (0, 0.1)
    assert config.initial_cash == DEFAULT_INITIAL_CASH
    assert config.allow_short and config.time_mode == "real"


def test_costs_given_as_text_or_whole_numbers_become_decimals() -> None:
    config = VenueConfig(fee_bps="0.5", slippage_bps=3)  # type: ignore[arg-type]

    assert (config.fee_bps, config.slippage_bps) == (Decimal("0.5"), Decimal(3))


@pytest.mark.parametrize(("settings", "message"), [
    ({"seed": 1.5}, "seed must be a whole number"),
    ({"seed": True}, "seed must be a whole number"),
    ({"fee_bps": Decimal(-1)}, "fee_bps must be between 0 and 1000"),
    ({"slippage_bps": Decimal("NaN")}, "slippage_bps must be a finite number"),
    ({"slippage_bps": Decimal(5000)}, "slippage_bps must be between 0 and 1000"),
    ({"latency_ms": -5}, "latency_ms must be between 0 and 60000"),
    ({"latency_ms": 0.5}, "latency_ms must be a whole number"),
    ({"partial_fill_probability": 1.5}, "partial_fill_probability must be between 0 and 1"),
    ({"partial_fill_probability": float("nan")}, "partial_fill_probability must be between"),
    ({"partial_fill_probability": "often"}, "partial_fill_probability must be a number"),
    ({"initial_cash": {"USD": Decimal(-1)}}, r"initial_cash\[USD\] must not be negative"),
    ({"initial_cash": {"": Decimal(1)}}, "is not a currency code"),
    ({"initial_cash": [("USD", 1)]}, "initial_cash must map currency codes"),
    ({"allow_short": "yes"}, "allow_short must be true or false"),
    ({"time_mode": "fast"}, "time_mode must be one of real, demo"),
])
def test_impossible_settings_are_refused_with_a_clear_message(settings: dict[str, Any],
                                                              message: str) -> None:
    with pytest.raises(ValueError, match=message):
        VenueConfig(**settings)


def test_config_from_a_file_section_refuses_unknown_keys() -> None:
    with pytest.raises(ValueError, match=r"unknown sandbox setting.*fees_bps"):
        VenueConfig.from_mapping({"fees_bps": 1})

    assert VenueConfig.from_mapping({"seed": 3, "time_mode": "demo"}).seed == 3


def test_initial_cash_cannot_be_changed_after_the_fact() -> None:
    cash = {"USD": Decimal(10)}
    config = VenueConfig(initial_cash=cash)
    cash["USD"] = Decimal(99)

    assert config.initial_cash["USD"] == Decimal(10)
    with pytest.raises(TypeError):
        config.initial_cash["USD"] = Decimal(1)  # type: ignore[index]


def test_equal_configs_are_equal_and_hash_alike() -> None:
    same = VenueConfig(initial_cash=dict(DEFAULT_INITIAL_CASH))

    assert same == VenueConfig()
    assert hash(same) == hash(VenueConfig())
