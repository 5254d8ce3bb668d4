"""Rich tables for the fleet: what `fleet status` and the live view of `fleet up` print."""

from __future__ import annotations

from decimal import Decimal

from rich.table import Table
from rich.text import Text

from fleetkit.core.durations import short_age
from fleetkit.core.numbers import plain
from fleetkit.store.status import BotView, FleetView

STATE_STYLE = {"ACTIVE": "green", "HALTED": "bold red", "REDUCING": "yellow", "STALE": "yellow",
               "STOPPED": "dim"}
_ORDER = {"HALTED": 0, "STALE": 1, "REDUCING": 2, "STOPPED": 3, "ACTIVE": 4}


def money(value: Decimal, places: int = 2) -> str:
    return f"{value:,.{places}f}"


def _pnl(value: Decimal) -> Text:
    style = "green" if value > 0 else "red" if value < 0 else ""
    return Text(money(value), style=style)


def _positions(bot: BotView) -> str:
    if not bot.positions:
        return "flat"
    return ", ".join(f"{p.instrument.split(':', 1)[1]} {p.quantity.normalize():f}"
                     for p in bot.positions)


# Real money must stand out in a table of paper bots.
MODE_STYLE = {"live": "bold red", "paper": "yellow", "sandbox": "dim"}


def fleet_table(view: FleetView, title: str | None = None) -> Table:
    counts = " ".join(f"{state.lower()}={n}" for state, n in sorted(view.counts().items()))
    fleet = "" if view.fleet_state == "active" else f"  FLEET {view.fleet_state.upper()}: " \
        f"{view.fleet_reason}"
    caption = (f"{len(view.bots)} bots ({counts})  today's P&L ${money(view.daily_pnl_usd)}"
               f"{fleet}  {view.at:%Y-%m-%d %H:%M:%S} UTC")
    table = Table(title=title, caption=caption, expand=False, pad_edge=False)
    for column, justify in (("bot", "left"), ("market", "left"), ("mode", "left"),
                            ("strategy", "left"),
                            ("state", "left"), ("positions", "left"), ("P&L today", "right"),
                            ("ccy", "left"), ("orders", "right"), ("beat", "right"),
                            ("detail", "left")):
        table.add_column(column, justify=justify, no_wrap=column != "detail")  # type: ignore[arg-type]
    for bot in sorted(view.bots, key=lambda b: (_ORDER.get(b.state, 9), b.name)):
        detail = bot.reason if bot.state in ("HALTED", "REDUCING", "STALE") else bot.detail
        table.add_row(bot.name, bot.market, Text(bot.mode, style=MODE_STYLE.get(bot.mode, "")),
                      bot.strategy,
                      Text(bot.state, style=STATE_STYLE.get(bot.state, "")), _positions(bot),
                      _pnl(bot.daily_pnl), bot.currency,
                      f"{bot.orders_today}" + (f" ({bot.open_orders} open)" if bot.open_orders
                                              else ""),
                      short_age(bot.heartbeat_age_s), detail[:60])
    return table


def components_table(view: FleetView) -> Table:
    """Every process that heartbeats and is not a bot (scheduler, notifier, the
    market-data collectors ...): its kind, status, heartbeat age and what it last said."""
    table = Table(title="components", expand=False, pad_edge=False)
    for column in ("component", "kind", "status", "beat", "detail"):
        table.add_column(column, justify="right" if column == "beat" else "left",
                         no_wrap=column != "detail")
    for name, beat in sorted(view.components.items()):
        table.add_row(name, str(beat.get("kind", "")), str(beat["status"]),
                      short_age(float(beat["age_s"])), str(beat["detail"])[:80])
    return table


def component_lines(view: FleetView) -> list[str]:
    """The components as lines, for output that is not a terminal."""
    return [f"{name} ({beat.get('kind', '')}): {beat['status']}, beat "
            f"{short_age(float(beat['age_s']))} ago"
            + (f": {' '.join(str(beat['detail']).split())}" if beat["detail"] else "")
            for name, beat in sorted(view.components.items())]


TSV_COLUMNS = ("bot", "market", "mode", "strategy", "state", "positions", "pnl_today",
               "currency", "orders_today", "open_orders", "heartbeat_age_s", "detail")


def fleet_tsv(view: FleetView) -> str:
    """`fleet status` for scripts: a header row, then one row per bot sorted by name, tabs
    between fields, nothing cut short; numbers without thousands separators."""
    rows = ["\t".join(TSV_COLUMNS)]
    for bot in sorted(view.bots, key=lambda b: b.name):
        detail = bot.reason if bot.state in ("HALTED", "REDUCING", "STALE") else bot.detail
        age = "" if bot.heartbeat_age_s is None else f"{bot.heartbeat_age_s:.1f}"
        fields = (bot.name, bot.market, bot.mode, bot.strategy, bot.state, _positions(bot),
                  plain(bot.daily_pnl), bot.currency, str(bot.orders_today),
                  str(bot.open_orders), age, detail)
        rows.append("\t".join(" ".join(field.split()) for field in fields))
    return "\n".join(rows) + "\n"


def summary_line(view: FleetView) -> str:
    counts = ", ".join(f"{n} {state.lower()}" for state, n in sorted(view.counts().items()))
    orders = sum(b.orders_today for b in view.bots)
    fills = sum(b.fills_today for b in view.bots)
    return (f"{view.at:%H:%M:%S} fleet: {len(view.bots)} bots ({counts}); orders today {orders}, "
            f"fills {fills}; P&L today ${money(view.daily_pnl_usd)}")
