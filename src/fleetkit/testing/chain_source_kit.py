"""The test kit every ChainSource adapter must pass (data.ports.ChainSource), written once and
run against the sandbox's chain REST API — and against your adapter on a fake of your
venue (docs/adapters.md, "Adding a chain source").

    from fleetkit.testing.chain_source_kit import ChainSourceContract, ChainSourceKit

    class TestMyChains(ChainSourceContract):
        @pytest.fixture
        def kit(self) -> Iterator[ChainSourceKit]:
            with FakeMyVenueQuotes() as venue:                   # on 127.0.0.1
                yield ChainSourceKit(MyBrokerChains(venue.url), underlying="NIFTY",
                                     unlisted_instrument="NFO:NIFTY26D0124000CE")

What it proves: the nearest expiry's chain is centred on the ATM strike of its own spot,
strikes evenly spaced and as many each side as asked; every row holds a call and a put of
its expiry and strike, under distinct "EXCHANGE:SYMBOL" keys; quotes are priced and never
crossed; expiries come nearest first and a later one can be asked for, an unlisted one is
refused; quotes by key answer exactly the keys asked, with the chain's contract fields, and
an unlisted key is an error naming it, not a silent gap; an unknown underlying is a
BrokerError naming it; futures come nearest first with a front month and its roll time;
and, given `serves_past`, a past moment's chain is the same each time it is asked.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from itertools import pairwise

import pytest

from fleetkit.core.errors import BrokerError
from fleetkit.core.futures import FutureQuote, FuturesCurve
from fleetkit.core.option_chains import ChainQuote, OptionChain
from fleetkit.core.options import OptionKind, atm_strike
from fleetkit.data.ports import ChainSource

# Enough strikes to see the spacing; few enough that a chain stays one quick request.
STRIKES_EACH_SIDE = 3


@dataclass
class ChainSourceKit:
    """An adapter under test. `underlying`: a root the venue lists options on ("NIFTY");
    `unlisted_instrument`: a well-formed key of a contract it does not list now (an expired
    weekly); `unknown_underlying`: a root it does not list. `lists_futures`: whether it
    lists index futures on `underlying` (False skips the futures test). `serves_past`:
    whether it answers a chain `at` a past moment — `past_at`, or by default `past_by`
    before the source's own time."""

    source: ChainSource
    underlying: str
    unlisted_instrument: str
    unknown_underlying: str = "NOSUCHINDEX"
    lists_futures: bool = True
    serves_past: bool = False
    past_at: datetime | None = None
    past_by: timedelta = timedelta(minutes=30)

    def small_chain(self, expiry: date | None = None, at: datetime | None = None
                    ) -> OptionChain:
        return self.source.chain(self.underlying, expiry, STRIKES_EACH_SIDE, at)


def _is_key(instrument: str) -> bool:
    """"EXCHANGE:SYMBOL": both parts present, no blanks around them."""
    exchange, colon, symbol = instrument.partition(":")
    return bool(colon and exchange and symbol) and exchange.strip() == exchange \
        and symbol.strip() == symbol


def _decimals_finite(*values: Decimal) -> bool:
    return all(value.is_finite() for value in values)


def _check_priced(quote: ChainQuote | FutureQuote) -> None:
    where = quote.instrument
    assert _decimals_finite(quote.bid, quote.ask, quote.last, quote.underlying_price), where
    assert 0 <= quote.bid <= quote.ask, f"{where}: bid {quote.bid} over ask {quote.ask}"
    assert quote.last >= 0 and quote.underlying_price > 0, where
    assert quote.volume >= 0 and quote.open_interest >= 0, where
    assert quote.lot_size > 0, f"{where}: lot size {quote.lot_size}"
    assert quote.ts.utcoffset() is not None, f"{where}: a naive timestamp"


def _legs(chain: OptionChain) -> list[ChainQuote]:
    return [quote for row in chain.rows for quote in (row.call, row.put)]


class ChainSourceContract:
    """Subclass with a `kit` fixture yielding a ChainSourceKit."""

    def test_the_nearest_chain_is_centred_on_the_atm_strike_of_its_spot(
            self, kit: ChainSourceKit) -> None:
        chain = kit.source.chain(kit.underlying)
        assert chain.underlying == kit.underlying
        assert chain.expiries and chain.expiry == chain.expiries[0], "None is the nearest"
        assert chain.spot > 0 and chain.strike_step > 0 and chain.lot_size > 0
        assert _is_key(chain.spot_instrument), chain.spot_instrument
        assert chain.atm_strike == atm_strike(chain.spot, chain.strike_step)
        strikes = [row.strike for row in chain.rows]
        assert chain.atm_strike in strikes
        middle = strikes.index(chain.atm_strike)
        assert middle == len(strikes) - 1 - middle, "as many strikes above the ATM as below"
        assert all(b - a == chain.strike_step for a, b in pairwise(strikes)), strikes

    @pytest.mark.parametrize("each_side", [0, STRIKES_EACH_SIDE])
    def test_strikes_each_side_are_honoured_on_the_strike_grid(
            self, kit: ChainSourceKit, each_side: int) -> None:
        chain = kit.source.chain(kit.underlying, strikes_each_side=each_side)
        assert [row.strike for row in chain.rows] == [
            chain.atm_strike + chain.strike_step * i for i in range(-each_side, each_side + 1)]

    def test_every_row_holds_a_call_and_a_put_of_its_expiry_and_strike(
            self, kit: ChainSourceKit) -> None:
        chain = kit.small_chain()
        for row in chain.rows:
            for quote, kind in ((row.call, OptionKind.CALL), (row.put, OptionKind.PUT)):
                assert quote.kind is kind, f"{quote.instrument} in the {kind.name} column"
                assert (quote.strike, quote.expiry) == (row.strike, chain.expiry)
                assert quote.underlying == chain.underlying
                assert quote.lot_size == chain.lot_size
                assert _is_key(quote.instrument), quote.instrument
        keys = [quote.instrument for quote in _legs(chain)]
        assert len(set(keys)) == len(keys), "each contract has a key of its own"

    def test_quotes_are_priced_and_never_crossed(self, kit: ChainSourceKit) -> None:
        chain = kit.small_chain()
        for quote in _legs(chain):
            _check_priced(quote)
            iv = quote.implied_volatility
            assert iv is None or (math.isfinite(iv) and iv >= 0), quote.instrument

    def test_expiries_are_listed_nearest_first(self, kit: ChainSourceKit) -> None:
        chain = kit.small_chain()
        assert all(a < b for a, b in pairwise(chain.expiries)), chain.expiries
        assert chain.expiry in chain.expiries
        assert chain.ts.utcoffset() is not None

    def test_a_later_listed_expiry_gives_that_expiry(self, kit: ChainSourceKit) -> None:
        listed = kit.small_chain().expiries
        if len(listed) < 2:
            pytest.skip(f"{kit.underlying} lists one expiry only")
        later = kit.small_chain(listed[-1])
        assert later.expiry == listed[-1]
        assert {quote.expiry for quote in _legs(later)} == {listed[-1]}

    def test_an_unlisted_expiry_is_refused_naming_it(self, kit: ChainSourceKit) -> None:
        before_the_nearest = kit.small_chain().expiries[0] - timedelta(days=1)
        with pytest.raises(BrokerError, match=before_the_nearest.isoformat()):
            kit.small_chain(before_the_nearest)

    def test_quotes_by_key_answer_exactly_the_keys_with_the_chains_contracts(
            self, kit: ChainSourceKit) -> None:
        chain = kit.small_chain()
        asked = {quote.instrument: quote for quote in _legs(chain)}
        answered = kit.source.option_quotes(list(asked))
        assert set(answered) == set(asked)
        for key, quote in answered.items():
            was = asked[key]
            assert quote.instrument == key
            assert (quote.underlying, quote.expiry, quote.strike, quote.kind, quote.lot_size) \
                == (was.underlying, was.expiry, was.strike, was.kind, was.lot_size)
            _check_priced(quote)
        assert kit.source.option_quotes([]) == {}

    def test_an_unlisted_instrument_is_refused_naming_it(self, kit: ChainSourceKit) -> None:
        listed = kit.small_chain().rows[0].call.instrument
        with pytest.raises(BrokerError, match=_literal(kit.unlisted_instrument)):
            kit.source.option_quotes([listed, kit.unlisted_instrument])

    def test_an_unknown_underlying_is_a_broker_error_naming_it(self, kit: ChainSourceKit
                                                               ) -> None:
        with pytest.raises(BrokerError, match=_literal(kit.unknown_underlying)):
            kit.source.chain(kit.unknown_underlying)
        with pytest.raises(BrokerError, match=_literal(kit.unknown_underlying)):
            kit.source.futures(kit.unknown_underlying)

    def test_futures_come_nearest_first_with_a_front_month_and_its_roll(
            self, kit: ChainSourceKit) -> None:
        if not kit.lists_futures:
            pytest.skip(f"the kit says {kit.underlying} has no futures")
        curve = kit.source.futures(kit.underlying)
        assert curve.underlying == kit.underlying and curve.spot > 0
        assert curve.futures, "at least the near month"
        assert all(a.expiry < b.expiry for a, b in pairwise(curve.futures))
        keys = [future.instrument for future in curve.futures]
        assert len(set(keys)) == len(keys) and all(_is_key(key) for key in keys), keys
        for future in curve.futures:
            assert future.underlying == kit.underlying
            _check_priced(future)
        assert curve.front in keys[:2], "the front is the near month, or the next in a roll"
        front = curve.futures[keys.index(curve.front)]
        assert curve.roll_at.utcoffset() is not None
        assert curve.ts <= curve.roll_at, "the front rolls later, not before now"
        assert curve.roll_at.date() <= front.expiry, "the front rolls by its own expiry"

    def test_a_past_moment_gives_the_chain_as_it_stood_then(self, kit: ChainSourceKit
                                                            ) -> None:
        if not kit.serves_past:
            pytest.skip("the kit says the source serves no past chains")
        at = kit.past_at or kit.small_chain().ts - kit.past_by
        first = kit.small_chain(at=at)
        assert first.ts == at, "stamped with the moment asked about, not now"
        assert all(quote.ts <= at for quote in _legs(first)), "nothing quoted after it"
        assert kit.small_chain(at=at) == first, "the past does not change when asked again"
        if kit.lists_futures:
            curve: FuturesCurve = kit.source.futures(kit.underlying, at)
            assert curve.ts == at and kit.source.futures(kit.underlying, at) == curve


def _literal(text: str) -> str:
    """`text` as a regular expression matching itself (keys may hold "|", "." and such)."""
    return re.escape(text)
