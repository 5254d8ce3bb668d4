"""The dashboard's read-only window on the market-data database, for the Market data page:
the collectors' health (what `fleet data status` shows), today's ATM straddle premium per
underlying, and rows written per minute. The queries are the store's (CollectorStatus,
StraddleSeries), shared with the CLI and the metrics exporter.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import Engine

from fleetkit.config.market_data import MarketDataSettings
from fleetkit.monitor.collectors import collector_zones
from fleetkit.store.collector_status import CollectorHealth, CollectorStatus, QuoteDays
from fleetkit.store.straddle_series import PremiumSeries, StraddleSeries


@dataclass(frozen=True, slots=True)
class MarketDataView:
    at: datetime
    trading_day: date  # today in the options collector's market
    collectors: tuple[CollectorHealth, ...]
    quote_days: QuoteDays
    keep_days: int
    straddles: dict[str, PremiumSeries]  # today's, per underlying
    rows_per_minute: tuple[tuple[str, datetime, int], ...]  # (collector, minute, rows)

    @property
    def empty(self) -> bool:
        return not (self.collectors or self.quote_days.days or self.straddles)


class MarketDataQueries:
    def __init__(self, market_data: Engine, fleet: Engine, settings: MarketDataSettings,
                 now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._status = CollectorStatus(market_data, fleet)
        self._series = StraddleSeries(market_data)
        self._settings = settings
        self._zone_of: Callable[[str], ZoneInfo] = collector_zones(settings)
        self._now = now

    def view(self) -> MarketDataView:
        now = self._now()
        day = now.astimezone(self._zone_of(self._settings.option_collector.name)).date()
        return MarketDataView(
            at=now, trading_day=day,
            collectors=tuple(self._status.collectors(self._zone_of, now)),
            quote_days=self._status.quote_days(day),
            keep_days=self._settings.option_collector.hot_days,
            straddles=self._series.premiums(day),
            rows_per_minute=tuple(self._status.rows_per_minute(day)))
