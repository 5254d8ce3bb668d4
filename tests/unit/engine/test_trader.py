"""Trader: signal -> target position in whole lots -> the one order that moves toward it."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleetkit.core.instruments import AssetClass, Instrument
from fleetkit.core.orders import OrderType, Side
from fleetkit.core.signals import Signal, SignalLevel
from fleetkit.engine.trader import Sizing, TradeDecision, Trader, signal_key

L = SignalLevel
PROPERTY = settings(max_examples=300, deadline=None, database=None)
AAPL = Instrument("AAPL", "NYSE", AssetClass.EQUITY, "USD", Decimal("0.01"), Decimal(1), "XNYS")
TOYOTA = Instrument("7203", "JPX", AssetClass.EQUITY, "JPY", Decimal("0.5"), Decimal(100), "XTKS")
ETH = Instrument("ETH/USDT", "CRYPTO", AssetClass.CRYPTO, "USDT", Decimal("0.01"),
                 Decimal("0.0001"), "24/7", min_quantity=Decimal("0.001"))
USD_9000 = Sizing(position_size_usd=Decimal(9_000), usd_per_unit=Decimal(1))


def trader(instrument: Instrument = AAPL, sizing: Sizing = USD_9000) -> Trader:
    return Trader(instrument, sizing)


def decide(signal: Signal | None, price: float = 100.0, position: str = "0",
           open_quantity: str = "0", last_key: int | str | None = None, *,
           on: Trader | None = None) -> TradeDecision:
    return (on or trader()).decide(signal, price, Decimal(position), Decimal(open_quantity),
                                   last_key)


# --- level -> target ---------------------------------------------------------------------


@pytest.mark.parametrize(("level", "target"), [
    (L.STRONG_BUY, 90), (L.BUY, 60), (L.WEAK_BUY, 30),
    (L.WEAK_SELL, 0), (L.SELL, 0), (L.STRONG_SELL, 0),
])
def test_level_sizes_thirds_of_the_position_and_clips_shorts_to_flat(level: SignalLevel,
                                                                     target: int) -> None:
    assert trader().target_for(Signal.at(level), Decimal(100)) == Decimal(target)


@pytest.mark.parametrize(("level", "target"), [
    (L.WEAK_SELL, -30), (L.SELL, -60), (L.STRONG_SELL, -90), (L.STRONG_BUY, 90),
])
def test_level_sizes_shorts_when_shorting_is_allowed(level: SignalLevel, target: int) -> None:
    shorting = Sizing(Decimal(9_000), Decimal(1), allow_short=True)
    assert trader(sizing=shorting).target_for(Signal.at(level), Decimal(100)) == Decimal(target)


def test_level_target_is_floored_to_whole_lots() -> None:
    # 9,000 / 7 = 1,285.71 shares.
    assert trader().target_for(Signal.at(L.STRONG_BUY), Decimal(7)) == Decimal(1285)


def test_short_target_is_truncated_toward_zero_not_grown() -> None:
    shorting = Sizing(Decimal(9_000), Decimal(1), allow_short=True)
    assert trader(sizing=shorting).target_for(Signal.at(L.STRONG_SELL), Decimal(7)) == \
        Decimal(-1285)


@pytest.mark.parametrize(("size", "price", "level", "target"), [
    ("300", "1", L.WEAK_BUY, 100),
    ("3000", "10", L.WEAK_BUY, 100),
    ("30000", "100", L.WEAK_BUY, 100),
    ("300", "1", L.BUY, 200),
])
def test_a_third_that_is_a_whole_number_of_lots_is_not_rounded_down_a_lot(
        size: str, price: str, level: SignalLevel, target: int) -> None:
    sizing = Sizing(Decimal(size), Decimal(1), allow_short=True)
    assert trader(sizing=sizing).target_for(Signal.at(level), Decimal(price)) == Decimal(target)
    assert trader(sizing=sizing).target_for(Signal.at(SignalLevel(-level)), Decimal(price)) == \
        Decimal(-target)


def test_jpx_sizing_converts_usd_to_yen_and_trades_in_lots_of_100() -> None:
    # 10,000 USD at 0.0066 USD/JPY is 1,515,151.5 JPY; at 2,500 JPY that is 606 shares.
    yen = Sizing(Decimal(10_000), Decimal("0.0066"))
    toyota = trader(TOYOTA, yen)
    assert toyota.target_for(Signal.at(L.STRONG_BUY), Decimal(2500)) == Decimal(600)
    assert toyota.target_for(Signal.at(L.BUY), Decimal(2500)) == Decimal(400)
    assert toyota.target_for(Signal.at(L.WEAK_BUY), Decimal(2500)) == Decimal(200)
    decision = decide(Signal.at(L.STRONG_BUY), 2500.0, on=toyota)
    assert decision.intent is not None
    assert decision.intent.quantity == Decimal(600)


def test_hold_asks_for_no_target() -> None:
    assert trader().target_for(Signal.at(L.HOLD), Decimal(100)) is None


# --- target-quantity signals -------------------------------------------------------------


def test_target_quantity_is_taken_as_is_in_whole_lots() -> None:
    assert trader().target_for(Signal.target(Decimal("12.7")), Decimal(100)) == Decimal(12)


def test_negative_target_quantity_is_flat_when_shorting_is_not_allowed() -> None:
    assert trader().target_for(Signal.target(Decimal(-5)), Decimal(100)) == Decimal(0)


def test_negative_target_quantity_stands_when_shorting_is_allowed() -> None:
    shorting = Sizing(Decimal(9_000), Decimal(1), allow_short=True)
    assert trader(sizing=shorting).target_for(Signal.target(Decimal("-5.5")), Decimal(100)) == \
        Decimal(-5)


def test_target_quantity_signal_orders_the_difference() -> None:
    decision = decide(Signal.target(Decimal(25)), position="10")
    assert decision.key == "q:25"
    assert decision.intent is not None
    assert (decision.intent.side, decision.intent.quantity) == (Side.BUY, Decimal(15))


# --- decide ------------------------------------------------------------------------------


@pytest.mark.parametrize("signal", [None, Signal.at(L.HOLD)])
def test_hold_or_no_signal_leaves_everything_unchanged(signal: Signal | None) -> None:
    assert decide(signal, position="10") == TradeDecision(False)


def test_same_signal_twice_sends_no_order() -> None:
    assert decide(Signal.at(L.STRONG_BUY), last_key=int(L.STRONG_BUY)) == TradeDecision(False)
    assert decide(Signal.target(Decimal(7)), last_key="q:7") == TradeDecision(False)


def test_changed_signal_orders_target_minus_position_minus_open_quantity() -> None:
    decision = decide(Signal.at(L.STRONG_BUY, "fast above slow"), position="20",
                      open_quantity="10", last_key=int(L.WEAK_BUY))
    assert decision.changed
    assert (decision.key, decision.target) == (3, Decimal(90))
    intent = decision.intent
    assert intent is not None
    assert (intent.side, intent.quantity) == (Side.BUY, Decimal(60))
    assert intent.instrument == "NYSE:AAPL"
    assert intent.order_type is OrderType.MARKET
    assert intent.reference_price == Decimal(100)
    assert intent.limit_price is None
    assert intent.reason == "fast above slow"


def test_signal_to_go_flat_sells_the_position_and_what_is_in_flight() -> None:
    decision = decide(Signal.at(L.STRONG_SELL), position="60", open_quantity="30")
    assert decision.intent is not None
    assert (decision.intent.side, decision.intent.quantity) == (Side.SELL, Decimal(90))


def test_delta_below_one_lot_is_a_decision_without_an_order() -> None:
    decision = decide(Signal.at(L.STRONG_BUY), position="89.5")
    assert decision == TradeDecision(True, 3, Decimal(90), None)


def test_delta_below_the_minimum_quantity_is_a_decision_without_an_order() -> None:
    crypto = trader(ETH, Sizing(Decimal(3_000), Decimal(1)))
    # Target 1 ETH at 3,000; holding 0.9995 leaves 0.0005: five lots but below the minimum.
    decision = decide(Signal.at(L.STRONG_BUY), 3000.0, position="0.9995", on=crypto)
    assert decision.changed
    assert decision.target == Decimal(1)
    assert decision.intent is None


def test_level_and_target_signals_have_distinct_keys() -> None:
    assert signal_key(Signal.at(L.BUY)) == 2
    assert signal_key(Signal.target(Decimal("1.5"))) == "q:1.5"


@pytest.mark.parametrize("price", [0.0, -1.0])
def test_a_price_that_is_not_positive_changes_nothing(price: float) -> None:
    assert decide(Signal.at(L.STRONG_BUY), price) == TradeDecision(False)


def test_reference_price_comes_from_the_float_via_repr_and_is_rounded_to_the_tick() -> None:
    decision = decide(Signal.at(L.WEAK_BUY), 100.037)
    assert decision.intent is not None
    assert decision.intent.reference_price == Decimal("100.04")


# --- limit orders ------------------------------------------------------------------------


LIMIT_5BPS = Sizing(Decimal(9_000), Decimal(1), order_type=OrderType.LIMIT,
                    limit_offset_bps=Decimal(5))


def test_limit_buy_is_priced_through_the_reference_and_rounded_to_the_tick() -> None:
    decision = decide(Signal.at(L.STRONG_BUY), 100.03, on=trader(sizing=LIMIT_5BPS))
    assert decision.intent is not None
    assert decision.intent.order_type is OrderType.LIMIT
    assert decision.intent.limit_price == Decimal("100.08")  # 100.03 + 0.050015


def test_limit_sell_is_priced_below_the_reference_and_rounded_to_the_tick() -> None:
    decision = decide(Signal.at(L.STRONG_SELL), 100.03, position="50",
                      on=trader(sizing=LIMIT_5BPS))
    assert decision.intent is not None
    assert decision.intent.side is Side.SELL
    assert decision.intent.limit_price == Decimal("99.98")  # 100.03 - 0.050015


def test_limit_price_rounds_to_a_coarse_tick() -> None:
    yen = Sizing(Decimal(10_000), Decimal("0.0066"), order_type=OrderType.LIMIT,
                 limit_offset_bps=Decimal(10))
    decision = decide(Signal.at(L.STRONG_BUY), 2500.0, on=trader(TOYOTA, yen))
    assert decision.intent is not None
    assert decision.intent.limit_price == Decimal("2502.5")


def test_zero_offset_limit_order_is_priced_at_the_reference() -> None:
    at_reference = Sizing(Decimal(9_000), Decimal(1), order_type=OrderType.LIMIT)
    decision = decide(Signal.at(L.STRONG_BUY), 100.0, on=trader(sizing=at_reference))
    assert decision.intent is not None
    assert decision.intent.limit_price == Decimal(100)


@pytest.mark.parametrize(("size", "fx"), [("0", "1"), ("-1", "1"), ("100", "0")])
def test_sizing_must_be_positive(size: str, fx: str) -> None:
    with pytest.raises(ValueError, match="must be positive"):
        Sizing(Decimal(size), Decimal(fx))


# --- properties --------------------------------------------------------------------------


INSTRUMENTS = [AAPL, TOYOTA, ETH,
               Instrument("BTC/USDT", "CRYPTO", AssetClass.CRYPTO, "USDT", Decimal("0.01"),
                          Decimal("0.00001"), "24/7")]
sizes = st.decimals(min_value=Decimal(1), max_value=Decimal(1_000_000), places=2)
fx_rates = st.sampled_from([Decimal(1), Decimal("0.0066"), Decimal("1.08"), Decimal("0.0127"),
                            Decimal("0.0119")])
positive_prices = st.decimals(min_value=Decimal("0.01"), max_value=Decimal(100_000), places=2)
levels = st.sampled_from([lv for lv in SignalLevel if lv is not SignalLevel.HOLD])


def exact_target(level: SignalLevel, size: Decimal, fx: Decimal, price: Decimal,
                 lot: Decimal) -> Decimal:
    """level/3 of the position size, in instrument units, truncated toward zero to lots —
    computed with exact fractions."""
    units = Fraction(int(level), 3) * Fraction(size) / Fraction(fx) / Fraction(price)
    lots = int(units / Fraction(lot))  # int() truncates toward zero
    return lots * lot


@given(levels, sizes, fx_rates, positive_prices, st.sampled_from(INSTRUMENTS))
@PROPERTY
def test_level_target_is_exactly_level_thirds_in_whole_lots(
        level: SignalLevel, size: Decimal, fx: Decimal, price: Decimal,
        instrument: Instrument) -> None:
    shorting = Sizing(size, fx, allow_short=True)
    target = Trader(instrument, shorting).target_for(Signal.at(level), price)
    assert target == exact_target(level, size, fx, price, instrument.lot_size)


@given(levels, sizes, fx_rates, positive_prices, st.sampled_from(INSTRUMENTS), st.booleans())
@PROPERTY
def test_level_target_is_whole_lots_and_never_short_unless_allowed(
        level: SignalLevel, size: Decimal, fx: Decimal, price: Decimal,
        instrument: Instrument, allow_short: bool) -> None:
    target = Trader(instrument, Sizing(size, fx, allow_short=allow_short)).target_for(
        Signal.at(level), price)
    assert target is not None
    assert target % instrument.lot_size == 0
    assert allow_short or target >= 0
    full = Fraction(size) / Fraction(fx) / Fraction(price)
    assert abs(Fraction(target)) <= full


lot_counts = st.integers(min_value=-5_000, max_value=5_000)


@given(levels, positive_prices.map(float), lot_counts, lot_counts, st.sampled_from(INSTRUMENTS),
       st.booleans())
@PROPERTY
def test_the_order_closes_the_gap_to_the_target_to_within_a_lot(
        level: SignalLevel, price: float, position_lots: int, open_lots: int,
        instrument: Instrument, allow_short: bool) -> None:
    lot = instrument.lot_size
    position, open_quantity = position_lots * lot, open_lots * lot
    chosen = Trader(instrument, Sizing(Decimal(50_000), Decimal(1), allow_short=allow_short))
    decision = chosen.decide(Signal.at(level), price, position, open_quantity, None)
    assert decision.changed
    assert decision.target is not None
    gap = decision.target - position - open_quantity
    if decision.intent is None:
        assert abs(gap) < instrument.smallest_quantity
    else:
        assert decision.intent.signed_quantity == gap  # both are whole lots
        assert decision.intent.quantity >= instrument.smallest_quantity
        assert decision.intent.quantity % lot == 0
