"""The instruments the sandbox can invent prices for: the shipped catalog and its validation."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from functools import cache
from importlib.resources import files
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from fleetkit.brokers.sandbox.pricing import SandboxInstrument
from fleetkit.core.instruments import MARKETS, AssetClass, Instrument

CATALOG_RESOURCE = "instruments.yaml"


class _CatalogEntry(BaseModel):
    """One instrument as written in YAML; market-given fields may be left out."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tick_size: Decimal
    lot_size: Decimal
    base_price: Decimal
    annual_volatility: float
    currency: str | None = None
    calendar: str | None = None
    asset_class: AssetClass | None = None
    min_quantity: Decimal | None = None


def load_catalog() -> dict[str, SandboxInstrument]:
    """The catalog shipped with fleetkit, keyed by instrument key ("NYSE:JPM")."""
    return dict(_shipped_catalog())


@cache
def _shipped_catalog() -> Mapping[str, SandboxInstrument]:
    text = files(__package__).joinpath(CATALOG_RESOURCE).read_text(encoding="utf-8")
    try:
        return parse_catalog(yaml.safe_load(text))
    except ValueError as exc:
        raise ValueError(f"the shipped {CATALOG_RESOURCE} is invalid: {exc}") from exc


def parse_catalog(mapping: Mapping[str, Any]) -> dict[str, SandboxInstrument]:
    """Validate `{"MARKET:SYMBOL": {tick_size: ..., ...}}` into sandbox instruments.

    Raises ValueError naming the offending entry and field.
    """
    if not isinstance(mapping, Mapping):
        raise ValueError(f"an instrument catalog must be a mapping, got {type(mapping).__name__}")
    return {key: _parse_entry(key, fields) for key, fields in mapping.items()}


def _parse_entry(key: object, fields: object) -> SandboxInstrument:
    market_code, symbol = _split_key(key)
    if not isinstance(fields, Mapping):
        raise ValueError(f"catalog entry {key!r}: expected a mapping of fields, "
                         f"got {type(fields).__name__}")
    try:
        entry = _CatalogEntry.model_validate(fields)
    except ValidationError as exc:
        raise ValueError(f"catalog entry {key!r}: {describe_validation_error(exc)}") from None
    market = MARKETS[market_code]
    try:
        instrument = Instrument(
            symbol=symbol,
            market=market_code,
            asset_class=entry.asset_class or market.asset_class,
            currency=entry.currency or market.currency,
            tick_size=entry.tick_size,
            lot_size=entry.lot_size,
            calendar=entry.calendar or market.calendar,
            min_quantity=entry.min_quantity,
        )
        return SandboxInstrument(instrument, entry.base_price, entry.annual_volatility)
    except ValueError as exc:  # the domain types' own checks, which already name the key
        raise ValueError(f"catalog entry {key!r}: {str(exc).removeprefix(f'{key}: ')}") from None


def _split_key(key: object) -> tuple[str, str]:
    if not isinstance(key, str) or ":" not in key:
        raise ValueError(f"catalog entry {key!r}: the key must read MARKET:SYMBOL, "
                         "like 'NYSE:JPM'")
    market_code, symbol = key.split(":", 1)
    if market_code not in MARKETS:
        known = ", ".join(sorted(MARKETS))
        raise ValueError(f"catalog entry {key!r}: unknown market {market_code!r}; "
                         f"known markets: {known}")
    if not symbol.strip() or symbol != symbol.strip():
        raise ValueError(f"catalog entry {key!r}: the symbol must be non-empty, "
                         "without surrounding spaces")
    return market_code, symbol


def describe_validation_error(error: ValidationError) -> str:
    """Pydantic's errors on one line: "tick_size: Input should be a valid decimal; ..."."""
    parts = []
    for detail in error.errors():
        where = ".".join(str(part) for part in detail["loc"]) or "entry"
        parts.append(f"{where}: {detail['msg']}")
    return "; ".join(parts)
