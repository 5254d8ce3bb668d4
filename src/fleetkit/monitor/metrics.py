"""Prometheus metrics read from the fleet database at scrape time.

One endpoint for the whole fleet, however many bot processes run on however many hosts:
every figure is already in the database (heartbeats, P&L, orders, events), so the exporter
is a read-only view, never a per-process counter that dies with its process. Scrapes are
cheap (a handful of grouped queries); point Prometheus at `fleet metrics serve`.

    fleet_bot_state{bot,market,mode,strategy,state}   1 for the bot's current state
    fleet_bot_heartbeat_age_seconds{bot}              since the bot's last heartbeat
    fleet_bot_cycles{bot}                             cycles run by the bot's current process
    fleet_bot_cycle_lag_seconds{bot}                  last cycle's start behind its bar close
    fleet_bot_pnl_today{bot,currency} / _usd{bot}     today's net P&L
    fleet_bot_orders_today{bot}, fleet_bot_fills_today{bot}, fleet_bot_open_orders{bot}
    fleet_risk_denials_total{bot,rule}                orders the rails refused, by rule
    fleet_halts_total{bot,source}                     halts, by who or what halted
    fleet_process_restarts_total{process}             supervisor restarts after an exit
    fleet_component_heartbeat_age_seconds{component}  broker, scheduler, supervisor ...
    fleet_state{state}                                the fleet-wide switch

The market-data collectors' rows, misses, rejects and write latency come from their own
database: monitor/collectors.py.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from fleetkit.sqlutil.engine import read_transaction
from fleetkit.store.schema import bots, events
from fleetkit.store.status import FleetView, fleet_view

STATES = ("ACTIVE", "STARTING", "HALTED", "REDUCING", "STALE", "STOPPED")


class FleetCollector(Collector):
    def __init__(self, engine: Engine, stale_after_s: float,
                 now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._engine = engine
        self._stale_after_s = stale_after_s
        self._now = now

    def collect(self) -> Iterator[Metric]:
        view = fleet_view(self._engine, self._now(), self._stale_after_s)
        yield from _bot_gauges(view)
        yield from _event_counters(self._engine)
        components = GaugeMetricFamily("fleet_component_heartbeat_age_seconds",
                                       "Seconds since a fleet component's last heartbeat",
                                       labels=["component"])
        for name, component in sorted(view.components.items()):
            components.add_metric([name], float(component["age_s"]))
        yield components
        fleet = GaugeMetricFamily("fleet_state", "The fleet-wide kill switch (1 = current)",
                                  labels=["state"])
        for state in ("active", "halted", "reducing"):
            fleet.add_metric([state], 1.0 if view.fleet_state == state else 0.0)
        yield fleet


def _bot_gauges(view: FleetView) -> Iterator[Metric]:
    state = GaugeMetricFamily("fleet_bot_state", "1 for the bot's current state",
                              labels=["bot", "market", "mode", "strategy", "state"])
    gauges = {
        "heartbeat": GaugeMetricFamily("fleet_bot_heartbeat_age_seconds",
                                       "Seconds since the bot's last heartbeat", labels=["bot"]),
        "cycles": GaugeMetricFamily("fleet_bot_cycles",
                                    "Cycles run by the bot's current process", labels=["bot"]),
        "lag": GaugeMetricFamily("fleet_bot_cycle_lag_seconds",
                                 "How late the last cycle started after its bar closed",
                                 labels=["bot"]),
        "pnl": GaugeMetricFamily("fleet_bot_pnl_today", "Today's net P&L, quote currency",
                                 labels=["bot", "currency"]),
        "pnl_usd": GaugeMetricFamily("fleet_bot_pnl_today_usd", "Today's net P&L in USD",
                                     labels=["bot"]),
        "orders": GaugeMetricFamily("fleet_bot_orders_today", "Orders written today",
                                    labels=["bot"]),
        "fills": GaugeMetricFamily("fleet_bot_fills_today", "Fills today", labels=["bot"]),
        "open": GaugeMetricFamily("fleet_bot_open_orders", "Orders that could still fill",
                                  labels=["bot"]),
    }
    for bot in view.bots:
        for name in STATES:
            state.add_metric([bot.name, bot.market, bot.mode, bot.strategy, name],
                             1.0 if bot.state == name else 0.0)
        if bot.heartbeat_age_s is not None:
            gauges["heartbeat"].add_metric([bot.name], bot.heartbeat_age_s)
        gauges["cycles"].add_metric([bot.name], float(bot.cycles))
        if bot.cycle_lag_s is not None:
            gauges["lag"].add_metric([bot.name], bot.cycle_lag_s)
        gauges["pnl"].add_metric([bot.name, bot.currency], float(bot.daily_pnl))
        gauges["pnl_usd"].add_metric([bot.name], float(bot.daily_pnl_usd))
        gauges["orders"].add_metric([bot.name], float(bot.orders_today))
        gauges["fills"].add_metric([bot.name], float(bot.fills_today))
        gauges["open"].add_metric([bot.name], float(bot.open_orders))
    yield state
    yield from gauges.values()


def _event_counters(engine: Engine) -> Iterator[Metric]:
    denials = CounterMetricFamily("fleet_risk_denials", "Orders refused by the risk rails",
                                  labels=["bot", "rule"])
    halts = CounterMetricFamily("fleet_halts", "Trading halts, by source",
                                labels=["bot", "source"])
    restarts = CounterMetricFamily("fleet_process_restarts",
                                   "Processes the supervisor restarted after they exited",
                                   labels=["process"])
    grouped, exits = _event_counts(engine)
    for bot, kind, code, count in grouped:
        if kind == "risk.denied":
            denials.add_metric([bot, code or "unknown"], count)
        else:
            halts.add_metric([bot or "fleet", code or "unknown"], count)
    for process, count in sorted(exits.items()):
        restarts.add_metric([process], count)
    yield denials
    yield halts
    yield restarts


def _event_counts(engine: Engine) -> tuple[list[tuple[str, str, str | None, int]],
                                           dict[str, int]]:
    """Denials and halts grouped by (bot, kind, code); process exits by process name (it
    lives in the event's data, so those rows are counted here — exits are rare)."""
    grouped_query = (
        select(bots.c.name, events.c.kind, events.c.code, func.count())
        .select_from(events.outerjoin(bots, events.c.bot_id == bots.c.id))
        .where(events.c.kind.in_(("risk.denied", "control.halted")))
        .group_by(bots.c.name, events.c.kind, events.c.code))
    exits_query = select(events.c.data).where(events.c.kind == "process.exited")
    with read_transaction(engine) as conn:
        grouped: list[Any] = list(conn.execute(grouped_query))
        exits: dict[str, int] = {}
        for (data,) in conn.execute(exits_query):
            process = str((data or {}).get("process") or "unknown")
            exits[process] = exits.get(process, 0) + 1
    return [(r[0] or "", r[1], r[2], int(r[3])) for r in grouped], exits
