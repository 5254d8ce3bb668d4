"""The sandbox instrument catalog: what ships, and how bad entries are refused."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal
from typing import Any

import pytest

from fleetkit.brokers.sandbox.catalog import load_catalog, parse_catalog
from fleetkit.brokers.sandbox.pricing import SandboxInstrument
from fleetkit.core.instruments import MARKETS, AssetClass

GOOD_FIELDS: dict[str, Any] = {"tick_size": "0.01", "lot_size": "1", "base_price": "100",
                               "annual_volatility": 0.25}


@pytest.fixture(scope="module")
def catalog() -> dict[str, SandboxInstrument]:
    return load_catalog()


def test_the_shipped_catalog_has_at_least_eight_instruments_in_every_cash_market(
        catalog: dict[str, SandboxInstrument]) -> None:
    per_market = Counter(entry.instrument.market for entry in catalog.values())
    # Derivatives segments list contracts (derivatives.yaml), not catalog entries; BSE is
    # there for SENSEX, the underlying of its options.
    assert set(per_market) == {code for code, market in MARKETS.items()
                               if market.asset_class is not AssetClass.DERIVATIVE}
    assert per_market.pop("BSE") == 1
    assert min(per_market.values()) >= 8


def test_catalog_keys_are_the_instruments_keys(catalog: dict[str, SandboxInstrument]) -> None:
    assert all(key == entry.instrument.key for key, entry in catalog.items())


def test_currency_calendar_and_asset_class_come_from_the_market(
        catalog: dict[str, SandboxInstrument]) -> None:
    for entry in catalog.values():
        market = MARKETS[entry.instrument.market]
        assert entry.instrument.currency == market.currency
        assert entry.instrument.calendar == market.calendar
        assert entry.instrument.asset_class == market.asset_class


def test_london_quotes_in_pence(catalog: dict[str, SandboxInstrument]) -> None:
    assert catalog["LSE:AZN"].instrument.currency == "GBX"


@pytest.mark.parametrize(("market", "ticks", "lots"), [
    ("NYSE", {Decimal("0.01")}, {Decimal(1)}),
    ("NSE", {Decimal("0.05")}, {Decimal(1)}),
    ("JPX", None, {Decimal(100)}),
    ("XETRA", {Decimal("0.01"), Decimal("0.02"), Decimal("0.05")}, {Decimal(1)}),
])
def test_equity_ticks_and_lots_follow_their_exchange(
        catalog: dict[str, SandboxInstrument], market: str, ticks: set[Decimal] | None,
        lots: set[Decimal]) -> None:
    listed = [e.instrument for e in catalog.values() if e.instrument.market == market]
    assert {i.lot_size for i in listed} == lots
    if ticks is not None:
        assert {i.tick_size for i in listed} <= ticks


@pytest.mark.parametrize(("key", "tick", "lot"), [
    ("CRYPTO:BTC/USDT", "0.01", "0.00001"),
    ("CRYPTO:ETH/USDT", "0.01", "0.0001"),
    ("CRYPTO:XRP/USDT", "0.0001", "0.1"),
    ("CRYPTO:DOGE/USDT", "0.00001", "1"),
])
def test_crypto_pairs_carry_their_venue_increments(
        catalog: dict[str, SandboxInstrument], key: str, tick: str, lot: str) -> None:
    instrument = catalog[key].instrument
    assert (instrument.tick_size, instrument.lot_size) == (Decimal(tick), Decimal(lot))
    assert instrument.calendar == "24/7"


def test_volatilities_are_plausible_for_the_asset_class(
        catalog: dict[str, SandboxInstrument]) -> None:
    for entry in catalog.values():
        low, high = (0.5, 0.9) if entry.instrument.asset_class is AssetClass.CRYPTO else (0.15,
                                                                                          0.4)
        assert low <= entry.annual_volatility <= high, entry.instrument.key


def test_base_prices_are_many_ticks_wide(catalog: dict[str, SandboxInstrument]) -> None:
    # With fewer ticks than this an invented walk would move in visible stair steps.
    for entry in catalog.values():
        assert entry.base_price / entry.instrument.tick_size >= 500, entry.instrument.key


def test_load_catalog_returns_a_fresh_dict_each_time() -> None:
    first = load_catalog()
    first.clear()
    assert load_catalog()


def test_an_entry_may_override_what_its_market_gives() -> None:
    parsed = parse_catalog({"NYSE:SPY-EU": {**GOOD_FIELDS, "currency": "EUR", "calendar": "XETR",
                                            "min_quantity": "5"}})
    instrument = parsed["NYSE:SPY-EU"].instrument
    assert (instrument.currency, instrument.calendar) == ("EUR", "XETR")
    assert instrument.smallest_quantity == Decimal(5)


def test_decimal_fields_keep_their_written_digits() -> None:
    parsed = parse_catalog({"NSE:ABC": {**GOOD_FIELDS, "tick_size": 0.05, "base_price": "99.95"}})
    assert parsed["NSE:ABC"].instrument.tick_size == Decimal("0.05")
    assert parsed["NSE:ABC"].base_price == Decimal("99.95")


@pytest.mark.parametrize(("mapping", "message"), [
    ({"NYSEJPM": GOOD_FIELDS}, "'NYSEJPM': the key must read MARKET:SYMBOL"),
    ({"NASDAQ:AAPL": GOOD_FIELDS}, "'NASDAQ:AAPL': unknown market 'NASDAQ'"),
    ({"NYSE:": GOOD_FIELDS}, "'NYSE:': the symbol must be non-empty"),
    ({"NYSE:JPM": 12}, "'NYSE:JPM': expected a mapping of fields"),
    ({"NYSE:JPM": {**GOOD_FIELDS, "tick": "0.01"}}, "'NYSE:JPM': tick: Extra inputs"),
    ({"NYSE:JPM": {**GOOD_FIELDS, "tick_size": "a cent"}}, "'NYSE:JPM': tick_size: "),
    ({"NYSE:JPM": {k: v for k, v in GOOD_FIELDS.items() if k != "base_price"}},
     "'NYSE:JPM': base_price: Field required"),
    ({"NYSE:JPM": {**GOOD_FIELDS, "tick_size": "0"}}, "'NYSE:JPM': tick_size and lot_size must"),
    ({"NYSE:JPM": {**GOOD_FIELDS, "base_price": "-1"}}, "'NYSE:JPM': base_price must be positive"),
    ({"NYSE:JPM": {**GOOD_FIELDS, "annual_volatility": 7}}, "'NYSE:JPM': annual_volatility"),
    ({"NYSE:JPM": {**GOOD_FIELDS, "asset_class": "bonds"}}, "'NYSE:JPM': asset_class: "),
])
def test_a_bad_entry_is_refused_naming_the_entry_and_the_field(
        mapping: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match="catalog entry ") as raised:
        parse_catalog(mapping)
    assert message in str(raised.value)


def test_a_catalog_that_is_not_a_mapping_is_refused() -> None:
    with pytest.raises(ValueError, match="must be a mapping, got list"):
        parse_catalog(["NYSE:JPM"])  # type: ignore[arg-type]
