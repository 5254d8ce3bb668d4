"""Calendar adapters: where trading sessions come from (pandas_market_calendars, 24/7)."""

from fleetkit.calendars.market_calendars import (
    SUPPORTED_CALENDARS,
    CalendarOverrides,
    MarketCalendars,
)

__all__ = ["SUPPORTED_CALENDARS", "CalendarOverrides", "MarketCalendars"]
