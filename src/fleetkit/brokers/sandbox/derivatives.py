"""The sandbox's index derivatives: which options and futures are listed now, and their quotes.

Options are quote-only: priced on the venue's invented index spot (venue time, demo offsets
included) but not in the venue's catalog, so they take no orders. Futures are quoted here
and traded at the venue (listing.py prices them the same way). Listing follows
the contract rules (derivatives.yaml) and the venue's calendars: expired contracts leave at
their expiry's close and the next weekly joins. Everything is recomputed from (seed, time),
so nothing is stored and a restarted service answers as before.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import date, datetime, timedelta
from decimal import Decimal
from itertools import pairwise

from fleetkit.core.futures import FuturesCurve
from fleetkit.core.numbers import require_utc
from fleetkit.core.option_chains import ChainQuote, ChainRow, OptionChain
from fleetkit.core.options import OptionKind, atm_strike

from .chains import TICK, PricingMoment, VolatilityState, quote_option
from .contracts import (
    ContractRules,
    OptionContract,
    load_contract_rules,
    parse_option_symbol,
)
from .errors import DerivativesUnavailableError, UnknownInstrumentError
from .expiries import TradingDay, listed_expiries, monthly_expiries
from .futures import front_month, quote_future
from .venue import SandboxVenue

DAY_S = 86_400
REALISED_WINDOW_DAYS = 45  # calendar days of daily closes behind the realised volatility
_MIN_RETURNS = 5
_TRADING_DAYS_PER_YEAR = 252.0
MAX_QUOTES_PER_REQUEST = 500  # as Kite's quote API


class SandboxDerivatives:
    """Option chains over `venue`'s index spots, by `rules` (default: the venue's, which
    default to the shipped ones)."""

    def __init__(self, venue: SandboxVenue,
                 rules: Mapping[str, ContractRules] | None = None) -> None:
        self._venue = venue
        chosen = venue.contract_rules if rules is None else rules
        self._rules = dict(load_contract_rules() if chosen is None else chosen)
        self._calendar = venue.contract_calendar  # shared: one cache of sessions per venue
        self._realised: dict[tuple[str, int], float] = {}
        self._lock = threading.Lock()

    def underlyings(self) -> list[str]:
        return sorted(self._rules)

    def chain(self, underlying: str, expiry: date | None = None,
              strikes_each_side: int | None = None, at: datetime | None = None
              ) -> OptionChain:
        """Calls and puts of one expiry (default: the nearest) at strikes around the ATM."""
        rules = self._rules_for(underlying)
        moment, wall_at = self._moment(rules, at)
        listed = self._listed(rules, moment.at)
        chosen = listed[0] if expiry is None else expiry
        if chosen not in listed:
            raise ValueError(f"{underlying} lists no expiry on {chosen.isoformat()} at "
                             f"{wall_at.isoformat()}; listed: "
                             f"{', '.join(d.isoformat() for d in listed)}")
        each_side = rules.strikes_each_side if strikes_each_side is None else strikes_each_side
        if not 0 <= each_side <= 500:
            raise ValueError(f"strikes must be between 0 and 500 each side, got {each_side}")
        step = rules.strike_step
        spot = Decimal(repr(moment.spot)).quantize(TICK)  # as the quotes' underlying_price
        # The ATM of the spot the chain reports, so anyone can check it from the answer.
        atm = atm_strike(spot, step).quantize(step)
        close = self._close_of(rules, chosen)
        rows = []
        for offset in range(-each_side, each_side + 1):
            strike = atm + step * offset
            if strike <= 0:
                continue
            call, put = (quote_option(rules, self._contract(rules, chosen, strike, kind), close,
                                      moment) for kind in (OptionKind.CALL, OptionKind.PUT))
            rows.append(ChainRow(strike, _to_wall(call, wall_at), _to_wall(put, wall_at)))
        return OptionChain(underlying, rules.spot, spot, chosen,
                             tuple(listed), atm, step, rules.lot_size, wall_at, tuple(rows))

    def quotes(self, instruments: Sequence[str]) -> list[ChainQuote]:
        """Quotes of listed contracts, in the order asked. UnknownInstrumentError names the
        first key that is no listed contract."""
        if len(instruments) > MAX_QUOTES_PER_REQUEST:
            raise ValueError(f"at most {MAX_QUOTES_PER_REQUEST} instruments per request, "
                             f"got {len(instruments)}")
        moments: dict[str, tuple[PricingMoment, datetime]] = {}
        found = []
        for key in instruments:
            rules, contract = self._resolve(key)
            if rules.root not in moments:
                moments[rules.root] = self._moment(rules, None)
            moment, wall_at = moments[rules.root]
            quote = quote_option(rules, contract, self._close_of(rules, contract.expiry), moment)
            found.append(_to_wall(quote, wall_at))
        return found

    def futures(self, underlying: str, at: datetime | None = None) -> FuturesCurve:
        """The listed monthly futures of `underlying`, nearest first, and the front one."""
        rules = self._rules_for(underlying)
        if not rules.futures_listed or rules.monthly is None:
            raise DerivativesUnavailableError(f"the sandbox lists no futures on {underlying}")
        moment, wall_at = self._moment(rules, at)
        first_day = self._first_listed_day(rules, moment.at)
        is_day = self._is_trading_day(rules)
        expiries = monthly_expiries(rules.monthly, first_day, rules.futures_listed, is_day)
        near_close = self._close_of(rules, expiries[0])
        quotes = tuple(replace(quote_future(rules, rules.future_instrument(expiry), expiry,
                                            self._close_of(rules, expiry), position,
                                            near_close, moment), ts=wall_at)
                       for position, expiry in enumerate(expiries))
        front = front_month(expiries, first_day, rules.roll_days_before, is_day)
        offset = self._venue.offset(rules.spot_market)
        return FuturesCurve(underlying, rules.spot, quotes[0].underlying_price,
                            rules.future_instrument(front),
                            self._roll_close(rules, front, is_day) - offset, wall_at, quotes)

    def _roll_close(self, rules: ContractRules, front: date, is_day: TradingDay) -> datetime:
        """When the front stops being front: the close of the last trading day before its
        roll (its expiry's close when it rolls at expiry)."""
        day, left = front, rules.roll_days_before
        while left:
            day -= timedelta(days=1)
            if is_day(day):
                left -= 1
        return self._close_of(rules, day)

    # --- listing --------------------------------------------------------------------------

    def is_listed(self, key: str) -> bool:
        """Whether `key` is an option listed now: its symbol and listing, no pricing."""
        try:
            self._resolve(key)
        except (UnknownInstrumentError, ValueError, LookupError):
            return False
        return True

    def _resolve(self, key: str) -> tuple[ContractRules, OptionContract]:
        exchange, _, symbol = key.partition(":")
        candidates = tuple(r.root for r in self._rules.values() if r.exchange == exchange)
        parsed = parse_option_symbol(symbol, candidates)
        if parsed is None:
            raise UnknownInstrumentError(f"{key!r} is no option the sandbox lists; keys read "
                                         "like 'NFO:NIFTY26D0824000CE' or "
                                         "'NFO:NIFTY26DEC24000PE'")
        rules = self._rules[parsed.root]
        venue_now = self._venue.venue_now(rules.spot_market)
        listed = self._listed(rules, venue_now)
        for expiry in listed:
            if (expiry.year, expiry.month) != (parsed.year, parsed.month):
                continue
            if parsed.expiry_day not in (None, expiry.day):
                continue
            if parsed.strike % rules.strike_step:
                break
            contract = self._contract(rules, expiry, parsed.strike, parsed.kind)
            if contract.key == key:
                return rules, contract
        raise UnknownInstrumentError(
            f"{key!r} is not listed now (expired, not yet listed, or off the "
            f"{rules.strike_step}-point strike grid); {rules.root} lists expiries "
            f"{', '.join(d.isoformat() for d in listed)}")

    def _contract(self, rules: ContractRules, expiry: date, strike: Decimal,
                  kind: OptionKind) -> OptionContract:
        return OptionContract(rules.root, expiry, strike, kind,
                              rules.instrument(expiry, strike, kind), rules.is_monthly(expiry))

    def _listed(self, rules: ContractRules, venue_at: datetime) -> list[date]:
        return listed_expiries(rules, self._first_listed_day(rules, venue_at),
                               self._is_trading_day(rules))

    def _first_listed_day(self, rules: ContractRules, venue_at: datetime) -> date:
        return self._calendar.first_listed_day(rules, venue_at)

    def _is_trading_day(self, rules: ContractRules) -> TradingDay:
        return self._calendar.is_trading_day(rules)

    def _close_of(self, rules: ContractRules, expiry: date) -> datetime:
        return self._calendar.close_of(rules, expiry)

    # --- time, spot and volatility ----------------------------------------------------------

    def _moment(self, rules: ContractRules, at: datetime | None
                ) -> tuple[PricingMoment, datetime]:
        """The pricing inputs at wall time `at` (default now), and that wall time."""
        offset = self._venue.offset(rules.spot_market)
        if at is None:
            quote = self._venue.quote(rules.spot)
            wall_at = self._venue.wall_now()
            spot = float(quote.price)
        else:
            wall_at = require_utc(at, what="at")
            if wall_at > self._venue.wall_now():
                raise ValueError(f"at={wall_at.isoformat()} is in the future")
            spot = self._spot_at(rules, wall_at)
        venue_at = wall_at + offset
        trading_day, fraction = self._calendar.session_progress(rules, venue_at)
        state = VolatilityState(rules.atm_volatility, self._realised_volatility(rules, venue_at))
        return PricingMoment(self._venue.config.seed, venue_at, trading_day, spot, state,
                             fraction), wall_at

    def _spot_at(self, rules: ContractRules, wall_at: datetime) -> float:
        """The close of the last minute that ended by `at`: a past chain is priced on the
        minute grid, like the bars it can be checked against."""
        bars = self._venue.bars(rules.spot, 60, wall_at - timedelta(days=12),
                                wall_at - timedelta(seconds=59))
        if not bars:
            raise ValueError(f"{rules.spot} has no prices before {wall_at.isoformat()}")
        return bars[-1].close

    def _realised_volatility(self, rules: ContractRules, venue_at: datetime) -> float:
        """Annualised volatility of the daily closes of the last weeks, up to the day before
        `venue_at`'s (venue) UTC date: it changes once a day, never with today's moves."""
        day_number = int(venue_at.timestamp()) // DAY_S
        cache_key = (rules.root, day_number)
        with self._lock:
            cached = self._realised.get(cache_key)
        if cached is not None:
            return cached
        offset = self._venue.offset(rules.spot_market)
        end = datetime.fromtimestamp(day_number * DAY_S, venue_at.tzinfo) - offset
        bars = self._venue.bars(rules.spot, DAY_S, end - timedelta(days=REALISED_WINDOW_DAYS),
                                end)
        closes = [bar.close for bar in bars]
        returns = [math.log(b / a) for a, b in pairwise(closes)]
        realised = rules.atm_volatility
        if len(returns) >= _MIN_RETURNS:
            mean = sum(returns) / len(returns)
            variance = sum((r - mean) ** 2 for r in returns) / (len(returns) - 1)
            realised = math.sqrt(variance * _TRADING_DAYS_PER_YEAR)
        with self._lock:
            self._realised[cache_key] = realised
        return realised

    def _rules_for(self, underlying: str) -> ContractRules:
        try:
            return self._rules[underlying]
        except KeyError:
            raise DerivativesUnavailableError(
                f"the sandbox lists no options on {underlying!r}; it lists "
                f"{', '.join(self.underlyings()) or 'none'}") from None


def _to_wall(quote: ChainQuote, wall_at: datetime) -> ChainQuote:
    """The quote stamped with wall-clock time: the venue hands out no venue times."""
    return replace(quote, ts=wall_at)
