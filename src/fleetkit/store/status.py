"""The fleet at a glance: a read-only query shared by `fleet status`, `fleet up` and the
dashboard. It reads the database only — never a broker — so it works when bots are down."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, func, select

from fleetkit.core.controls import TradingState
from fleetkit.core.numbers import ZERO, plain
from fleetkit.sqlutil.engine import read_transaction
from fleetkit.store.schema import (
    bot_controls,
    bot_pnl,
    bots,
    fills,
    fleet_controls,
    heartbeats,
    orders,
    positions,
)
from fleetkit.store.statements import OPEN_STATUSES

# A learning bot on the registry ends its heartbeat's detail with the versions it trades,
# "...; models 1h:v12 4h:v11" (runtime.model_follow): read back per timeframe.
_MODELS = re.compile(r"(?:^|; )models((?: [0-9a-z]+:v[0-9]+)+)$")


def traded_models(detail: str) -> dict[str, int]:
    """timeframe -> version id a bot's heartbeat detail says it trades ({} for others)."""
    found = _MODELS.search(detail)
    if found is None:
        return {}
    pairs = (item.split(":v") for item in found.group(1).split())
    return {timeframe: int(version) for timeframe, version in pairs}


@dataclass(frozen=True, slots=True)
class PositionView:
    instrument: str
    quantity: Decimal
    average_price: Decimal
    mark_price: Decimal | None
    unrealized: Decimal


@dataclass(frozen=True, slots=True)
class BotView:
    name: str
    market: str
    currency: str
    strategy: str
    mode: str
    state: str  # ACTIVE, HALTED, STALE, STOPPED
    reason: str
    process: str  # heartbeat status: trading, sleeping, paused, halted, stopped, never
    detail: str
    heartbeat_age_s: float | None
    positions: tuple[PositionView, ...]
    realized_today: Decimal
    unrealized: Decimal
    daily_pnl: Decimal
    daily_pnl_usd: Decimal
    orders_today: int
    fills_today: int
    cycles: int
    open_orders: int = 0
    cycle_lag_s: float | None = None
    # A learning bot on the registry: the model version it trades per timeframe.
    models: dict[str, int] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name, "market": self.market, "currency": self.currency,
            "strategy": self.strategy, "mode": self.mode, "state": self.state,
            "reason": self.reason or None, "process": self.process, "detail": self.detail,
            "heartbeat_age_s": None if self.heartbeat_age_s is None
            else round(self.heartbeat_age_s, 1),
            "positions": [{"instrument": p.instrument, "quantity": plain(p.quantity),
                           "average_price": plain(p.average_price),
                           "mark_price": None if p.mark_price is None else plain(p.mark_price),
                           "unrealized_pnl": plain(p.unrealized)} for p in self.positions],
            "pnl_today": {"realized": plain(self.realized_today),
                          "unrealized": plain(self.unrealized), "net": plain(self.daily_pnl),
                          "net_usd": plain(self.daily_pnl_usd.quantize(Decimal("0.01")))},
            "orders_today": self.orders_today, "fills_today": self.fills_today,
            "open_orders": self.open_orders, "cycles": self.cycles,
            "cycle_lag_s": self.cycle_lag_s, "models": self.models or None,
        }


@dataclass(frozen=True, slots=True)
class FleetView:
    at: datetime
    fleet_state: str
    fleet_reason: str
    bots: tuple[BotView, ...]
    components: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def daily_pnl_usd(self) -> Decimal:
        return sum((b.daily_pnl_usd for b in self.bots), ZERO)

    def counts(self) -> dict[str, int]:
        result: dict[str, int] = {}
        for bot in self.bots:
            result[bot.state] = result.get(bot.state, 0) + 1
        return result

    def as_json(self) -> dict[str, Any]:
        return {"at": self.at.isoformat(), "fleet": {"state": self.fleet_state.upper(),
                                                      "reason": self.fleet_reason or None},
                "daily_pnl_usd": plain(self.daily_pnl_usd.quantize(Decimal("0.01"))),
                "counts": self.counts(), "components": self.components,
                "bots": [b.as_json() for b in self.bots]}


def fleet_view(engine: Engine, now: datetime, stale_after_s: float) -> FleetView:
    day = now.astimezone(UTC).date().isoformat()
    day_start = datetime.fromisoformat(day).replace(tzinfo=UTC)
    with read_transaction(engine) as conn:
        fleet_row = conn.execute(select(fleet_controls).where(fleet_controls.c.id == 1)).first()
        bot_rows = conn.execute(select(bots).order_by(bots.c.name)).all()
        controls = {r.bot_id: r for r in conn.execute(select(bot_controls))}
        beats = {r.component: r for r in conn.execute(select(heartbeats))}
        pnl = {r.bot_id: r for r in conn.execute(select(bot_pnl))}
        held: dict[int, list[Any]] = {}
        for row in conn.execute(select(positions).where(positions.c.quantity != ZERO)):
            held.setdefault(row.bot_id, []).append(row)
        order_counts = _count_by_bot(conn.execute(select(orders.c.bot_id, func.count())
                                                  .where(orders.c.created_at >= day_start)
                                                  .group_by(orders.c.bot_id)))
        fill_counts = _count_by_bot(conn.execute(select(fills.c.bot_id, func.count())
                                                 .where(fills.c.ts >= day_start)
                                                 .group_by(fills.c.bot_id)))
        open_counts = _count_by_bot(conn.execute(select(orders.c.bot_id, func.count())
                                                 .where(orders.c.status.in_(OPEN_STATUSES))
                                                 .group_by(orders.c.bot_id)))
    fleet_state = fleet_row.state if fleet_row else TradingState.ACTIVE.value
    views = tuple(
        replace(_bot_view(row, controls.get(row.id), beats.get(f"bot:{row.name}"),
                          pnl.get(row.id), held.get(row.id, []), order_counts.get(row.id, 0),
                          fill_counts.get(row.id, 0), fleet_state, now, day, stale_after_s),
                open_orders=open_counts.get(row.id, 0))
        for row in bot_rows)
    components = {name: {"kind": b.kind, "status": b.status, "detail": b.detail,
                         "age_s": round((now - b.beat_at).total_seconds(), 1)}
                  for name, b in beats.items() if b.kind != "bot"}
    return FleetView(now, fleet_state, fleet_row.reason if fleet_row else "", views, components)


def _count_by_bot(rows: Any) -> dict[int, int]:
    return {int(bot_id): int(count) for bot_id, count in rows}


def _bot_view(row: Any, control: Any, beat: Any, pnl: Any, held: list[Any], orders_today: int,
              fills_today: int, fleet_state: str, now: datetime, day: str,
              stale_after_s: float) -> BotView:
    age = None if beat is None else (now - beat.beat_at).total_seconds()
    process = "never" if beat is None else beat.status
    state, reason = _state(control, beat, age, fleet_state, stale_after_s)
    views = tuple(PositionView(p.instrument, p.quantity, p.average_price, p.mark_price,
                               (p.mark_price - p.average_price) * p.quantity
                               if p.mark_price is not None else ZERO) for p in held)
    today = pnl is not None and pnl.day == day
    return BotView(
        name=row.name, market=row.market, currency=row.currency, strategy=row.strategy,
        mode=row.mode, state=state, reason=reason, process=process,
        detail="" if beat is None else beat.detail, heartbeat_age_s=age, positions=views,
        realized_today=realized_today(pnl, day),
        unrealized=sum((v.unrealized for v in views), ZERO),
        daily_pnl=pnl.daily if today else ZERO, daily_pnl_usd=pnl.daily_usd if today else ZERO,
        orders_today=orders_today, fills_today=fills_today,
        cycles=0 if beat is None else beat.cycles,
        cycle_lag_s=None if beat is None or beat.cycle_lag_ms is None
        else beat.cycle_lag_ms / 1000,
        models={} if beat is None else traded_models(beat.detail),
    )


def realized_today(pnl: Any, day: str) -> Decimal:
    """Realized P&L since the UTC day began: zero before the bot's first mark today, and
    (for a row from before migration 0008) lifetime realized until the next day starts."""
    if pnl is None or pnl.day != day:
        return ZERO
    start: Decimal | None = pnl.day_start_realized
    realized: Decimal = pnl.realized
    return realized if start is None else realized - start


def _state(control: Any, beat: Any, age: float | None, fleet_state: str,
           stale_after_s: float) -> tuple[str, str]:
    if control is not None and control.state != TradingState.ACTIVE.value:
        label = "HALTED" if control.state == TradingState.HALTED.value else "REDUCING"
        return label, f"{control.reason} [{control.source}, by {control.changed_by}]"
    if fleet_state != TradingState.ACTIVE.value:
        return "HALTED", "fleet-wide halt"
    if beat is None:
        return "STOPPED", "never started"
    if beat.status == "stopped":
        return "STOPPED", ""
    if age is not None and age > stale_after_s:
        return "STALE", f"no heartbeat for {age:.0f}s"
    if beat.status in ("starting", "training"):  # training: a learning bot's first models
        return "STARTING", ""
    return "ACTIVE", ""
