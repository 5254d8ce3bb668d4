"""The derivatives the venue trades: listed index futures and the perpetuals, as instruments
and as prices (the venue asks this listing what it asks its PriceSource of the catalog).

Units. A derivative's quantity is counted in units of its underlying, as NSE brokers count
futures (one NIFTY lot is `lot_size` units, and an order must be a whole number of lots);
P&L is the price change times the units. A venue that quotes in contracts would be
converted at its adapter, not here.

Prices. A future's last trade at venue time t is its quote's `last` at t (futures.py: the
spot carried to expiry plus the day's basis draw) on the spot's last trade at t, so it is
exactly what `GET /v1/futures` shows; the perpetual's is its mark (perpetuals.py). Bars are
the underlying's bars with open, high, low and close each scaled by the factor of the
price at the bar's start, and no volume (0): an approximation, since a real future's
high need not come with the spot's. Each trades in its underlying's market hours, and a
derivative market (NFO, BFO) shares the venue time (demo offset) of its spot's market.

Listing. Futures are listed by the contract rules and calendars exactly as the quotes list
them (contract_calendar.py): an expired one leaves at its expiry's close. A perpetual is
listed while the venue prices its index. Specs are derived from keys, so a restart knows
every contract an account may still hold.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

from fleetkit.core.instruments import MARKETS, AssetClass, Instrument
from fleetkit.core.market_data import Bar, MarketClock, Quote
from fleetkit.core.numbers import round_to_step

from .chains import TICK
from .contract_calendar import ContractCalendar
from .contracts import ContractRules, future_symbol, parse_future_symbol
from .errors import UnknownInstrumentError
from .futures import future_last
from .perpetuals import PERPETUALS, Perpetual, mark_price
from .pricing import PriceSource

logger = logging.getLogger("fleetkit.sandbox")

_DERIVATIVE = AssetClass.DERIVATIVE


@dataclass(frozen=True, slots=True)
class DerivativeSpec:
    """One tradable derivative. A future has `rules`, `expiry` and `expiry_close` (venue
    time); a perpetual has `perpetual`. `underlying`: the catalog key it is priced from."""

    instrument: Instrument
    underlying: str
    margin_rate: Decimal
    rules: ContractRules | None = None
    expiry: date | None = None
    expiry_close: datetime | None = None
    perpetual: Perpetual | None = None

    @property
    def key(self) -> str:
        return self.instrument.key


class DerivativeListing:
    """Futures of `rules` whose spot `prices` prices, and the `perpetuals` whose index it
    prices. `offsets`: venue time minus wall time per spot market (the venue's)."""

    def __init__(self, prices: PriceSource, catalog: Mapping[str, Instrument],
                 offsets: Mapping[str, timedelta], calendar: ContractCalendar,
                 rules: Mapping[str, ContractRules], perpetuals: Mapping[str, Perpetual],
                 seed: int) -> None:
        self._prices = prices
        self._offsets = offsets
        self._calendar = calendar
        self._seed = seed
        self._aliases: dict[str, str] = {}  # a derivative market -> the spot market it follows
        self._rules: dict[str, ContractRules] = {}
        for root in sorted(rules):
            found = rules[root]
            if not found.futures_listed or found.monthly is None or found.spot not in catalog:
                continue
            spot_market = self._aliases.setdefault(found.exchange, found.spot_market)
            if spot_market != found.spot_market:
                logger.warning("sandbox lists no %s futures: %s follows %s, %s's spot is in %s",
                               root, found.exchange, spot_market, root, found.spot_market)
                continue
            self._rules[root] = found
        self._catalog = catalog
        self._perpetuals: dict[str, DerivativeSpec] = {}
        for key, perpetual in sorted(perpetuals.items()):
            index = catalog.get(perpetual.index)
            if index is not None:
                self._perpetuals[key] = _perpetual_spec(perpetual, index)
                self._aliases.setdefault(self._perpetuals[key].instrument.market, index.market)
        self._specs: dict[str, DerivativeSpec] = dict(self._perpetuals)
        self._lock = threading.Lock()
        self._listed_days: tuple[date, ...] | None = None
        self._listed: Mapping[str, DerivativeSpec] = {}

    @property
    def perpetuals(self) -> Mapping[str, DerivativeSpec]:
        """The perpetuals listed (always: while the venue prices their index)."""
        return self._perpetuals

    @property
    def market_aliases(self) -> Mapping[str, str]:
        """Derivative market -> the spot market whose clock and venue time it shares."""
        return self._aliases

    # --- listing --------------------------------------------------------------------------

    def listed(self, wall: datetime) -> Mapping[str, DerivativeSpec]:
        """What is listed at wall time `wall`, by key (perpetuals first, then futures by
        root, nearest expiry first)."""
        days = tuple(self._calendar.first_listed_day(rules, self._venue_at(rules, wall))
                     for rules in self._rules.values())
        with self._lock:
            if days == self._listed_days:
                return self._listed
        found = dict(self._perpetuals)
        for rules, day in zip(self._rules.values(), days, strict=True):
            for expiry in self._calendar.futures_from(rules, day):
                spec = self._future_spec(rules, expiry)
                found[spec.key] = spec
        with self._lock:
            self._listed_days, self._listed = days, found
        return found

    def listed_spec(self, key: str, wall: datetime) -> DerivativeSpec | None:
        return self.listed(wall).get(key)

    def spec(self, key: str) -> DerivativeSpec | None:
        """The derivative `key` names, listed or not (an expired future too); None if none."""
        with self._lock:
            found = self._specs.get(key)
        if found is not None:
            return found
        exchange, _, symbol = key.partition(":")
        roots = tuple(root for root, rules in self._rules.items() if rules.exchange == exchange)
        parsed = parse_future_symbol(symbol, roots) if roots else None
        if parsed is None:
            return None
        rules = self._rules[parsed[0]]
        try:
            expiry = self._calendar.future_expiry(rules, parsed[1], parsed[2])
        except LookupError:  # a year the calendars hold no sessions for
            return None
        if expiry is None or rules.future_instrument(expiry) != key:
            return None
        return self._future_spec(rules, expiry)

    def unlisted_reason(self, key: str) -> str | None:
        """Why an order on `key` is refused when it names a future that is not listed now
        (expired or not yet listed); None when it names no derivative at all."""
        spec = self.spec(key)
        if spec is None or spec.expiry is None:
            return None
        return (f"{key} is not listed now (it expires {spec.expiry.isoformat()}: expired, "
                "or not yet listed)")

    def next_expiry(self, wall: datetime) -> datetime | None:
        """The wall time the first future listed at `wall` expires (None: no futures)."""
        closes = [spec.expiry_close - self._offsets[spec.rules.spot_market]
                  for spec in self.listed(wall).values()
                  if spec.expiry_close is not None and spec.rules is not None]
        return min(closes, default=None)

    def venue_time(self, spec: DerivativeSpec, wall: datetime) -> datetime:
        """Wall time `wall` as venue time in `spec`'s market (its spot market's)."""
        return wall + self._offsets[self._aliases.get(spec.instrument.market,
                                                      spec.instrument.market)]

    def settlement_price(self, spec: DerivativeSpec) -> Decimal:
        """A future's final settlement: its spot's last trade at the expiry's close, on the
        future's tick grid."""
        if spec.rules is None or spec.expiry_close is None:
            raise ValueError(f"{spec.key} is no future: it does not expire")
        spot = self._prices.last_trade(spec.rules.spot, spec.expiry_close).price
        return max(round_to_step(spot, spec.instrument.tick_size), spec.instrument.tick_size)

    # --- prices (venue times, as PriceSource) ---------------------------------------------

    def last_trade(self, instrument: str, at: datetime) -> Quote:
        spec = self._require(instrument)
        underlying = self._prices.last_trade(spec.underlying, at)
        if spec.perpetual is not None:
            mark = mark_price(self._seed, instrument, underlying.price, at,
                              spec.instrument.tick_size)
            return Quote(instrument, mark, underlying.ts)
        rules, close = _future_parts(spec)
        day, _ = self._calendar.session_progress(rules, at)
        price = future_last(self._seed, instrument, close, float(underlying.price), at, day)
        return Quote(instrument, max(price, TICK), underlying.ts)

    def bars(self, instrument: str, interval_s: int, start: datetime, end: datetime,
             now: datetime) -> list[Bar]:
        """The underlying's bars, each price scaled as the derivative's price at the bar's
        start would be; volume 0 (no volume is invented for derivatives' bars)."""
        spec = self._require(instrument)
        bars = self._prices.bars(spec.underlying, interval_s, start, end, now)
        if spec.perpetual is not None:
            tick = spec.instrument.tick_size
            return [_scaled(bar, lambda price, at: mark_price(
                self._seed, instrument, Decimal(repr(price)), at, tick)) for bar in bars]
        rules, close = _future_parts(spec)
        zone = self._calendar.zone(rules)
        return [_scaled(bar, lambda price, at: future_last(
            self._seed, instrument, close, price, at, at.astimezone(zone).date()))
            for bar in bars]

    def market_clock(self, market: str, at: datetime) -> MarketClock:
        clock = self._prices.market_clock(self._aliases.get(market, market), at)
        return MarketClock(market, clock.now, clock.is_open, clock.next_open, clock.next_close)

    # --- internals ------------------------------------------------------------------------

    def _require(self, key: str) -> DerivativeSpec:
        spec = self.spec(key)
        if spec is None:
            raise UnknownInstrumentError(f"the sandbox prices no instrument {key!r}")
        return spec

    def _venue_at(self, rules: ContractRules, wall: datetime) -> datetime:
        return wall + self._offsets[rules.spot_market]

    def _future_spec(self, rules: ContractRules, expiry: date) -> DerivativeSpec:
        key = rules.future_instrument(expiry)
        with self._lock:
            found = self._specs.get(key)
        if found is not None:
            return found
        spot = self._catalog[rules.spot]
        instrument = Instrument(future_symbol(rules, expiry), rules.exchange, _DERIVATIVE,
                                MARKETS[rules.exchange].currency, TICK, Decimal(rules.lot_size),
                                spot.calendar)
        spec = DerivativeSpec(instrument, rules.spot, rules.margin_rate, rules, expiry,
                              self._calendar.close_of(rules, expiry))
        with self._lock:
            self._specs[key] = spec
        return spec


def perpetual_instrument(key: str, catalog: Mapping[str, Instrument]) -> Instrument | None:
    """The spec of the perpetual `key` the sandbox lists while it prices its index in
    `catalog`; None when it lists no such perpetual (no venue needed: config checks)."""
    perpetual = PERPETUALS.get(key)
    index = None if perpetual is None else catalog.get(perpetual.index)
    if perpetual is None or index is None:
        return None
    return _perpetual_spec(perpetual, index).instrument


def _perpetual_spec(perpetual: Perpetual, index: Instrument) -> DerivativeSpec:
    market, _, symbol = perpetual.instrument.partition(":")
    settle = symbol.rpartition(":")[2]  # BASE/QUOTE:SETTLE: margined and paid in SETTLE
    instrument = Instrument(symbol, market, _DERIVATIVE, settle, index.tick_size,
                            index.lot_size, index.calendar)
    if instrument.key != perpetual.instrument:
        raise ValueError(f"perpetual key {perpetual.instrument!r} is not MARKET:SYMBOL")
    return DerivativeSpec(instrument, perpetual.index, perpetual.margin_rate,
                          perpetual=perpetual)


def _scaled(bar: Bar, price_at: Callable[[float, datetime], Decimal]) -> Bar:
    """`bar` with each price as the derivative's at the bar's start, and no volume."""
    return Bar(bar.ts, float(price_at(bar.open, bar.ts)), float(price_at(bar.high, bar.ts)),
               float(price_at(bar.low, bar.ts)), float(price_at(bar.close, bar.ts)), 0.0)


def _future_parts(spec: DerivativeSpec) -> tuple[ContractRules, datetime]:
    if spec.rules is None or spec.expiry_close is None:
        raise ValueError(f"{spec.key} is no future")
    return spec.rules, spec.expiry_close

