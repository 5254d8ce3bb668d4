"""The market-data collectors as monitoring sees them: whose trading day each one keeps,
and their Prometheus metrics, read from the market-data database at scrape time.

    fleet_collector_rows_today{collector}               rows written today
    fleet_collector_missed_minutes_today{collector}     minutes recorded missed today
    fleet_collector_rejects_today{collector,reason}     bad quotes or ticks refused today
    fleet_collector_write_latency_ms{collector,stat}    avg and max write time today
    fleet_collector_last_write_age_seconds{collector}   since the newest write committed
    fleet_collector_metrics_up                          0 when the market-data database
                                                        could not be read this scrape

Their heartbeats are fleet_component_heartbeat_age_seconds{component="collector:..."}
(monitor/metrics.py). "Today" is the trading day in the collector's market's time zone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy.exc import SQLAlchemyError

from fleetkit.config.market_data import MarketDataSettings
from fleetkit.core.errors import FleetError
from fleetkit.core.instruments import MARKETS
from fleetkit.store.collector_status import CollectorHealth, CollectorStatus


def collector_zones(settings: MarketDataSettings) -> Callable[[str], ZoneInfo]:
    """The time zone of each collector's market (option_collector.market,
    straddle_tracker.market by their names); a collector the config does not name (renamed,
    or another host's) keeps the options collector's market."""
    markets = {settings.straddle_tracker.name: settings.straddle_tracker.market,
               settings.option_collector.name: settings.option_collector.market}
    default = settings.option_collector.market

    def zone_of(name: str) -> ZoneInfo:
        return ZoneInfo(MARKETS[markets.get(name, default)].timezone)

    return zone_of


class MarketDataCollector(Collector):
    def __init__(self, status: CollectorStatus, zone_of: Callable[[str], ZoneInfo],
                 now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._status = status
        self._zone_of = zone_of
        self._now = now

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("fleet_collector_metrics_up", "1 when the collectors' "
                               "figures were read from the market-data database")
        try:
            found = self._status.collectors(self._zone_of, self._now())
        except (FleetError, SQLAlchemyError):
            # The market-data database may be down (or not migrated) while the fleet's
            # is fine: the scrape still carries the fleet's metrics, and this gauge says
            # what is missing.
            up.add_metric([], 0.0)
            yield up
            return
        up.add_metric([], 1.0)
        yield up
        yield from collector_gauges(found)


def collector_gauges(found: list[CollectorHealth]) -> Iterator[Metric]:
    rows = GaugeMetricFamily("fleet_collector_rows_today",
                             "Rows a market-data collector wrote today", labels=["collector"])
    missed = GaugeMetricFamily("fleet_collector_missed_minutes_today",
                               "Minutes a collector recorded missed today",
                               labels=["collector"])
    rejects = GaugeMetricFamily("fleet_collector_rejects_today",
                                "Quotes or ticks a collector refused today, by reason",
                                labels=["collector", "reason"])
    latency = GaugeMetricFamily("fleet_collector_write_latency_ms",
                                "A collector's write time today (avg, max)",
                                labels=["collector", "stat"])
    age = GaugeMetricFamily("fleet_collector_last_write_age_seconds",
                            "Seconds since a collector's newest write committed",
                            labels=["collector"])
    for c in found:
        rows.add_metric([c.name], float(c.rows_today))
        missed.add_metric([c.name], float(c.minutes_missed))
        for reason, count in sorted(c.rejects.items()):
            rejects.add_metric([c.name, reason], float(count))
        for stat, value in (("avg", c.write_ms_avg), ("max", c.write_ms_max)):
            if value is not None:
                latency.add_metric([c.name, stat], value)
        if c.last_write_age_s is not None:
            age.add_metric([c.name], c.last_write_age_s)
    yield from (rows, missed, rejects, latency, age)
