"""SandboxBroker: one account of an in-process SandboxVenue, as the engine's Broker and MarketData.

Every call first runs the venue's matching pass, so what a bot sees depends only on the
clock, never on whether a background thread happened to run (backtests stay reproducible).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TypeVar

from fleetkit.core.errors import DatabaseUnavailableError, OrderRejectedError, TransientBrokerError
from fleetkit.core.market_data import Bar, MarketClock, Quote
from fleetkit.core.orders import OrderStatus
from fleetkit.engine.ports import (
    FillPage,
    FundingPage,
    OrderReport,
    OrderRequest,
    PositionReport,
)

from .venue import SandboxVenue

T = TypeVar("T")
_REJECTED = OrderStatus.REJECTED  # a constant: an enum member looked up costs, per order


class SandboxBroker:
    """Broker + MarketData for `account` at `venue`. A rejected order raises
    OrderRejectedError; a venue whose database is down raises TransientBrokerError."""

    def __init__(self, venue: SandboxVenue, account: str, *, match_on_call: bool = True) -> None:
        """`match_on_call=False` leaves matching passes to the caller (a backtest runs one
        only while orders are open, instead of before every call)."""
        self._venue = venue
        self._account = account
        self._match_on_call = match_on_call

    @property
    def account(self) -> str:
        return self._account

    def submit(self, request: OrderRequest) -> OrderReport:
        report = self._call(self._venue.submit, self._account, request)
        if report.status is _REJECTED:
            raise OrderRejectedError(report.reason)
        return report

    def cancel(self, client_order_id: str) -> OrderReport:
        return self._call(lambda: self._venue.cancel(self._account, client_order_id))

    def lookup(self, client_order_id: str) -> OrderReport | None:
        return self._call(lambda: self._venue.lookup(self._account, client_order_id))

    def open_orders(self) -> list[OrderReport]:
        return self._call(lambda: self._venue.open_orders(self._account))

    def fills_since(self, cursor: str | None, limit: int = 500) -> FillPage:
        return self._call(lambda: self._venue.fills_since(self._account, cursor, limit))

    def funding_since(self, cursor: str | None, limit: int = 500) -> FundingPage:
        return self._call(lambda: self._venue.funding_since(self._account, cursor, limit))

    def positions(self) -> list[PositionReport]:
        return self._call(lambda: self._venue.positions(self._account))

    def balances(self) -> dict[str, Decimal]:
        return self._call(lambda: self._venue.balances(self._account))

    def cash(self) -> dict[str, Decimal]:
        """The sandbox gives every bot an account of its own: its cash is the bot's."""
        return self.balances()

    def market_offset(self, market: str) -> timedelta:
        """Venue time minus wall-clock time for `market` (zero unless in demo time mode)."""
        return self._venue.offset(market)

    def market_clock(self, market: str) -> MarketClock:
        return self._call(lambda: self._venue.market_clock(market))

    def bars(self, instrument: str, interval_s: int, start: datetime, end: datetime) -> list[Bar]:
        return self._call(lambda: self._venue.bars(instrument, interval_s, start, end))

    def quote(self, instrument: str) -> Quote:
        return self._call(self._venue.quote, instrument)

    def _call(self, operation: Callable[..., T], *args: object) -> T:
        # A plain try rather than a context manager: this wraps every call of a backtest.
        try:
            if self._match_on_call:
                self._venue.match()
            return operation(*args)
        except DatabaseUnavailableError as exc:
            raise TransientBrokerError(f"sandbox venue unavailable: {exc}") from exc
