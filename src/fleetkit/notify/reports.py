"""The texts of the fleet's P&L updates and daily summary: one message for the whole fleet.

Pure functions of per-bot lines the caller reads from the database. Amounts are shown with
a sign always, thousands separators and two decimals; totals are summed from the exact
values, not from the rounded ones shown. Telegram shows plain text in a proportional font,
so the column padding lines columns up only roughly there (exactly in a log or terminal).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal
from itertools import groupby
from zoneinfo import ZoneInfo

from fleetkit.core.controls import TradingState

REPORT_CURRENCY = "USD"
_CENT = Decimal("0.01")
_RANKED = 3  # bots named as best and as worst in the daily summary


@dataclass(frozen=True, slots=True)
class BotLine:
    """One bot's day so far. Amounts in the bot's own `currency`, except `net_usd`; `open`:
    whether the bot's market is open now."""

    name: str
    market: str
    mode: str  # sandbox / paper / live
    state: TradingState
    currency: str
    realized: Decimal
    unrealized: Decimal
    net: Decimal
    net_usd: Decimal
    positions: int
    fills_today: int
    open: bool


@dataclass(frozen=True, slots=True)
class FleetTotals:
    bots: int
    halted: int
    reducing: int
    net_usd: Decimal

    @classmethod
    def of(cls, lines: Iterable[BotLine]) -> FleetTotals:
        lines = list(lines)
        return cls(bots=len(lines),
                   halted=sum(line.state is TradingState.HALTED for line in lines),
                   reducing=sum(line.state is TradingState.REDUCING for line in lines),
                   net_usd=sum((line.net_usd for line in lines), Decimal(0)))

    def counts(self) -> str:
        """"35 bots, 3 halted": halted and reducing bots only when there are some."""
        counts = [_bots(self.bots)]
        counts += [f"{n} {what}" for n, what in ((self.halted, "halted"),
                                                 (self.reducing, "reducing")) if n]
        return ", ".join(counts)

    def describe(self) -> str:
        """"+1,234.56 USD (35 bots, 3 halted)"."""
        return f"{signed(self.net_usd)} {REPORT_CURRENCY} ({self.counts()})"


def signed(amount: Decimal) -> str:
    """"+1,234.56", "-0.50", "+0.00": sign always, thousands separators, cents."""
    cents = amount.quantize(_CENT, rounding=ROUND_HALF_EVEN)
    if cents == 0:
        cents = abs(cents)  # never "-0.00"
    return format(cents, "+,.2f")


# --- the P&L update -------------------------------------------------------------------------


def pnl_update(lines: Sequence[BotLine], at: datetime, tz_name: str = "UTC") -> str | None:
    """The periodic P&L message: the fleet total in the header, then the bots of every open
    market, grouped by market, best first. None when no bot's market is open.

        P&L 14:15 UTC — fleet +1,234.56 USD today (35 bots, 3 halted)

        crypto — +130.10 USD (2 bots, 1 halted)
        alpha  +123.40 USD                (r +100.00 u +23.40)  2 pos  5 fills  HALTED
        beta   +1,000.00 JPY = +6.70 USD  (r +1,000.00 u +0.00) 0 pos
    """
    shown = [line for line in lines if line.open]
    if not shown:
        return None
    fleet = FleetTotals.of(lines)
    header = (f"P&L {_local(at, tz_name):%H:%M %Z} — fleet {signed(fleet.net_usd)} "
              f"{REPORT_CURRENCY} today ({fleet.counts()})")
    rows: list[list[str] | str] = []
    for market, group in _by_market(shown):
        totals = FleetTotals.of(group)
        rows += ["", f"{market} — {signed(totals.net_usd)} {REPORT_CURRENCY} "
                     f"({totals.counts()})"]
        rows += [_pnl_cells(line) for line in group]
    closed = _closed_markets(lines)
    if closed:
        rows += ["", f"not shown, market closed: {closed}"]
    return "\n".join([header, *_aligned(rows, right={1, 2, 4, 5})])


def _pnl_cells(line: BotLine) -> list[str]:
    usd = "" if line.currency == REPORT_CURRENCY else f"= {signed(line.net_usd)} USD"
    return [line.name, f"{signed(line.net)} {line.currency}", usd,
            f"(r {signed(line.realized)} u {signed(line.unrealized)})",
            f"{line.positions} pos", f"{line.fills_today} fills" if line.fills_today else "",
            _flags(line)]


# A label, not behaviour: real money is worth a second look in a report.
_MODE_FLAGS = {"live": "LIVE"}


def _flags(line: BotLine) -> str:
    state = "" if line.state is TradingState.ACTIVE else line.state.value.upper()
    return " ".join(flag for flag in (state, _MODE_FLAGS.get(line.mode, "")) if flag)


def _by_market(lines: Iterable[BotLine]) -> list[tuple[str, list[BotLine]]]:
    ordered = sorted(lines, key=lambda line: (line.market.casefold(), line.market,
                                              -line.net_usd, line.name))
    return [(market, list(group)) for market, group in groupby(ordered, lambda x: x.market)]


def _closed_markets(lines: Iterable[BotLine]) -> str:
    groups = _by_market(line for line in lines if not line.open)
    return ", ".join(f"{market} ({_bots(len(group))})" for market, group in groups)


def _aligned(rows: Sequence[list[str] | str], right: set[int]) -> list[str]:
    """Table rows padded to common column widths (`right`: right-aligned columns); plain
    strings pass through. Columns empty in every row take no room."""
    tables = [row for row in rows if isinstance(row, list)]
    widths = [max((len(row[i]) for row in tables if i < len(row)), default=0)
              for i in range(max((len(row) for row in tables), default=0))]
    out: list[str] = []
    for row in rows:
        if isinstance(row, str):
            out.append(row)
            continue
        cells = [cell.rjust(widths[i]) if i in right else cell.ljust(widths[i])
                 for i, cell in enumerate(row) if widths[i]]
        out.append("  ".join(cells).rstrip())
    return out


# --- the daily summary ----------------------------------------------------------------------


def daily_summary(lines: Sequence[BotLine], at: datetime, *, trades: int, halts: Sequence[str],
                  denials: Mapping[str, int], findings: Sequence[str],
                  tz_name: str = "UTC") -> str:
    """The end-of-day message: fleet P&L, best and worst bots, trades, halts with reasons,
    risk denials by reason, monitor findings ("none" for each empty section)."""
    totals = FleetTotals.of(lines)
    parts = [f"Daily summary {_local(at, tz_name):%Y-%m-%d %H:%M %Z}",
             f"Fleet P&L: {totals.describe()}"]
    best, worst = _best_and_worst(lines)
    parts += _section("Best", _aligned([_ranked_cells(line) for line in best], right={1, 2}))
    parts += _section("Worst", _aligned([_ranked_cells(line) for line in worst], right={1, 2}))
    parts.append(f"Trades: {trades:,}")
    parts += _section("Halts", list(halts))
    ordered = sorted(denials.items(), key=lambda item: (-item[1], item[0]))
    denied = sum(denials.values())
    parts += _section(f"Risk denials ({denied:,})" if denied else "Risk denials",
                      _aligned([[f"{count:,}", reason] for reason, count in ordered], right={0}))
    parts += _section("Monitor findings", list(findings))
    return "\n".join(parts)


def _best_and_worst(lines: Sequence[BotLine]) -> tuple[list[BotLine], list[BotLine]]:
    """Up to three best bots, and up to three worst among the rest (a small fleet is not
    listed twice)."""
    ranked = sorted(lines, key=lambda line: (-line.net_usd, line.name))
    best = ranked[:_RANKED]
    rest = ranked[len(best):]
    return best, rest[::-1][:_RANKED]


def _ranked_cells(line: BotLine) -> list[str]:
    own = "" if line.currency == REPORT_CURRENCY else f"({signed(line.net)} {line.currency})"
    return [line.name, f"{signed(line.net_usd)} USD", own]


def _section(title: str, items: list[str]) -> list[str]:
    if not items:
        return [f"{title}: none"]
    return [f"{title}:", *(f"  {item}" for item in items)]


def _bots(count: int) -> str:
    return f"{count} bot" if count == 1 else f"{count} bots"


def _local(at: datetime, tz_name: str) -> datetime:
    if at.tzinfo is None:
        raise ValueError("at must be timezone-aware")
    return at.astimezone(ZoneInfo(tz_name))
