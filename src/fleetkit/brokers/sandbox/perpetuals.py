"""Invented perpetual swaps: a mark price around the spot index and funding every 8 hours.

The premium of the perpetual over its index is a pure function of (seed, instrument,
time): one draw per funding period, joined by straight lines, so the mark moves smoothly
and a restarted service agrees with itself. Funding settles at 00:00, 08:00 and 16:00 UTC
by the common exchange rule: the period's average premium plus the interest rate's
difference from it clamped to +-0.05%, the whole clamped to +-0.75%.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import TYPE_CHECKING

from fleetkit.core.futures import FundingPayment, PerpetualQuote
from fleetkit.core.numbers import require_utc

from .chains import uniform_draw
from .errors import UnknownInstrumentError

if TYPE_CHECKING:  # the venue trades perpetuals (listing.py): no import cycle at run time
    from .venue import SandboxVenue

FUNDING_INTERVAL_S = 8 * 3600
INTEREST_PER_PERIOD = 0.0001  # 0.01% per 8 hours, as Binance and Bybit
_INTEREST_CLAMP = 0.0005
_FUNDING_CLAMP = 0.0075
_PREMIUM_BIAS = 0.0002  # perpetuals usually trade a little over the index
_PREMIUM_SPREAD = 0.0015  # premium draws lie within bias +- this: often enough past the
# interest clamp that funding moves off its 0.01% resting rate
_RATE_PLACES = Decimal("0.00000001")
MAX_FUNDING_PAGE = 1000


@dataclass(frozen=True, slots=True)
class Perpetual:
    """`margin_rate`: the initial margin of a position, as a share of its value."""

    instrument: str
    index: str  # a catalog key the venue prices
    margin_rate: Decimal = Decimal("0.10")


PERPETUALS: Mapping[str, Perpetual] = {
    p.instrument: p for p in (Perpetual("CRYPTO:BTC/USDT:USDT", "CRYPTO:BTC/USDT"),)
}


def premium_at(seed: int, instrument: str, at: datetime) -> float:
    """The perpetual's premium over its index (a fraction) at `at`."""
    seconds = at.timestamp()
    period = int(seconds // FUNDING_INTERVAL_S)
    weight = (seconds - period * FUNDING_INTERVAL_S) / FUNDING_INTERVAL_S
    start, end = _premium_draw(seed, instrument, period), _premium_draw(seed, instrument,
                                                                         period + 1)
    return start + (end - start) * weight


def mark_price(seed: int, instrument: str, index_price: Decimal, at: datetime,
               tick: Decimal) -> Decimal:
    """The perpetual's mark at `at`: the index price with the premium, on the tick grid."""
    return (index_price * Decimal(repr(1 + premium_at(seed, instrument, at)))).quantize(tick)


def funding_rate(seed: int, instrument: str, period: int) -> Decimal:
    """The rate settled at the end of funding period `period` (Unix time // 8 h)."""
    average = (_premium_draw(seed, instrument, period)
               + _premium_draw(seed, instrument, period + 1)) / 2
    interest = min(max(INTEREST_PER_PERIOD - average, -_INTEREST_CLAMP), _INTEREST_CLAMP)
    rate = min(max(average + interest, -_FUNDING_CLAMP), _FUNDING_CLAMP)
    return Decimal(repr(rate)).quantize(_RATE_PLACES, rounding=ROUND_HALF_EVEN)


def _premium_draw(seed: int, instrument: str, period: int) -> float:
    return _PREMIUM_BIAS + (uniform_draw(seed, instrument, "premium", period) - 0.5) * 2 * \
        _PREMIUM_SPREAD


def settlement(period: int) -> datetime:
    return datetime.fromtimestamp((period + 1) * FUNDING_INTERVAL_S, UTC)


def last_settled_period(at: datetime) -> int:
    """The newest period whose settlement lies at or before `at`."""
    return int(at.timestamp() // FUNDING_INTERVAL_S) - 1


class SandboxPerpetuals:
    """Perpetual quotes and funding history over `venue`'s spot prices."""

    def __init__(self, venue: SandboxVenue) -> None:
        self._venue = venue

    def quote(self, instrument: str) -> PerpetualQuote:
        perpetual = self._perpetual(instrument)
        index = self._venue.quote(perpetual.index)
        now = self._venue.wall_now()
        tick = self._venue.instruments()[perpetual.index].tick_size
        seed = self._venue.config.seed
        mark = mark_price(seed, instrument, index.price, now, tick)
        period = int(now.timestamp() // FUNDING_INTERVAL_S)
        return PerpetualQuote(
            instrument, perpetual.index, index.price, mark, mark - tick, mark + tick,
            FundingPayment(settlement(period - 1), funding_rate(seed, instrument, period - 1)),
            funding_rate(seed, instrument, period), settlement(period), FUNDING_INTERVAL_S, now)

    def funding_history(self, instrument: str, start: datetime, end: datetime
                        ) -> list[FundingPayment]:
        """Settlements in [start, end), oldest first, none after now."""
        self._perpetual(instrument)
        start, end = require_utc(start, what="start"), require_utc(end, what="end")
        end = min(end, self._venue.wall_now() + timedelta(microseconds=1))
        first = -(-int(start.timestamp()) // FUNDING_INTERVAL_S) - 1  # settles at/after start
        payments: list[FundingPayment] = []
        period = first
        while settlement(period) < end and len(payments) < MAX_FUNDING_PAGE:
            if settlement(period) >= start:
                payments.append(FundingPayment(settlement(period),
                                               funding_rate(self._venue.config.seed,
                                                            instrument, period)))
            period += 1
        return payments

    def _perpetual(self, instrument: str) -> Perpetual:
        found = PERPETUALS.get(instrument)
        if found is None:
            raise UnknownInstrumentError(f"the sandbox lists no perpetual {instrument!r}; it "
                                         f"lists {', '.join(sorted(PERPETUALS))}")
        return found
