"""Everything the venue takes orders on at a moment: its catalog, and the derivatives listed
then (listing.py), with where each one's prices come from.

The catalog never changes; derivatives come and go as futures expire. The venue looks a key
up in the catalog first (one dict lookup, the spot order path) and asks this only when the
catalog does not know it.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from datetime import datetime, timedelta
from types import MappingProxyType

from fleetkit.core.instruments import Instrument

from .errors import UnknownInstrumentError
from .listing import DerivativeListing, DerivativeSpec
from .pricing import MarketPrices, PriceSource

Priced = tuple[Instrument, MarketPrices]


class Tradables:
    """`catalog`, priced by `prices`; the derivatives of `listing` (None: none)."""

    def __init__(self, prices: PriceSource, catalog: Mapping[str, Instrument],
                 listing: DerivativeListing | None) -> None:
        self._prices = prices
        self._catalog = catalog
        self._listing = listing
        self._lock = threading.Lock()
        self._all: tuple[tuple[str, ...], Mapping[str, Instrument]] = ((), catalog)

    @property
    def listing(self) -> DerivativeListing | None:
        return self._listing

    def offsets(self, spot: Mapping[str, timedelta]) -> dict[str, timedelta]:
        """The venue's offsets per market (`spot`: the catalog's markets'), with each
        derivative market given its spot market's (NFO keeps NSE's venue time)."""
        found = dict(spot)
        if self._listing is not None:
            found.update({market: spot[of] for market, of
                          in self._listing.market_aliases.items() if of in spot})
        return found

    def at(self, wall: datetime) -> Mapping[str, Instrument]:
        """The catalog and the derivatives listed at wall time `wall`."""
        if self._listing is None:
            return self._catalog
        listed = self._listing.listed(wall)
        keys = tuple(listed)
        with self._lock:
            cached_keys, cached = self._all
        if keys == cached_keys:
            return cached
        found = MappingProxyType({**self._catalog,
                                  **{key: spec.instrument for key, spec in listed.items()}})
        with self._lock:
            self._all = (keys, found)
        return found

    def priced(self, key: str, wall: datetime) -> Priced | None:
        """The instrument `key` names at wall time `wall` (catalog, or a derivative listed
        then) and its prices; None if neither."""
        found = self._catalog.get(key)
        if found is not None:
            return found, self._prices
        spec = self.listed(key, wall)
        if spec is None or self._listing is None:
            return None
        return spec.instrument, self._listing

    def require(self, key: str, wall: datetime) -> Priced:
        found = self.priced(key, wall)
        if found is None:
            raise UnknownInstrumentError(f"the sandbox prices no instrument {key!r}")
        return found

    def listed(self, key: str, wall: datetime) -> DerivativeSpec | None:
        """The derivative `key` names if it is listed at wall time `wall`."""
        return None if self._listing is None else self._listing.listed_spec(key, wall)

    def spec_of(self, key: str) -> DerivativeSpec | None:
        """The derivative `key` names, listed now or not (what may still be held)."""
        return None if self._listing is None else self._listing.spec(key)

    def require_spec(self, key: str) -> DerivativeSpec:
        spec = self.spec_of(key)
        if spec is None:
            raise UnknownInstrumentError(f"the sandbox prices no instrument {key!r}")
        return spec

    def unlisted_reason(self, key: str) -> str | None:
        """Why `key` takes no order if it names a future not listed now; else None."""
        return None if self._listing is None else self._listing.unlisted_reason(key)

    def market_prices(self, market: str) -> MarketPrices:
        """Whom to ask about `market`'s clock: a derivative market follows its spot's."""
        if self._listing is not None and market in self._listing.market_aliases:
            return self._listing
        return self._prices
