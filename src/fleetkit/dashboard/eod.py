"""The end-of-day P&L chart: one PNG for the fleet (USD) and one per bot (its currency) for a
UTC day, drawn with matplotlib under `<data dir>/charts/<day>/`, and the fleet's picture put
in the outbox for the trading concern (once per day, whoever runs it)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

from fleetkit.core.alerts import Concern, Severity
from fleetkit.dashboard.queries import DashboardQueries
from fleetkit.dashboard.series import Curve, drawdowns
from fleetkit.store.outbox import Outbox

FLEET_FILE = "fleet.png"


@dataclass(frozen=True, slots=True)
class DayCharts:
    day: date
    folder: Path
    fleet: Path | None
    bots: dict[str, Path]
    fleet_change_usd: float
    bot_changes: dict[str, float]  # each bot's move over the day, its own currency

    def summary(self) -> str:
        lines = [f"P&L on {self.day.isoformat()} (UTC): fleet {_signed(self.fleet_change_usd)}"
                 " USD"]
        ranked = sorted(self.bot_changes.items(), key=lambda kv: kv[1])
        if ranked:
            worst, best = ranked[0], ranked[-1]
            lines.append(f"best {best[0]} {_signed(best[1])}, worst {worst[0]} "
                         f"{_signed(worst[1])} ({len(ranked)} bots)")
        return "\n".join(lines)


def charts_folder(home: Path, day: date) -> Path:
    return home / "charts" / day.isoformat()


def write_day_charts(queries: DashboardQueries, day: date, home: Path,
                     currencies: dict[str, str]) -> DayCharts:
    """Draw the day's charts (an existing day's files are replaced: a rerun redraws with
    whatever came in late). A bot with no marks that day gets no chart."""
    start = datetime.combine(day, time(), UTC)
    # Five-minute points of each bot's P&L since the day began (its snapshots' `daily`).
    curves = queries.pnl_curves(start, start + timedelta(days=1), points=288, daily=True)
    folder = charts_folder(home, day)
    folder.mkdir(parents=True, exist_ok=True)
    fleet = curves.pop("", None)
    bots: dict[str, Path] = {}
    changes: dict[str, float] = {}
    for name, curve in sorted(curves.items()):
        currency = currencies.get(name, "")
        path = folder / f"{name}.png"
        draw(curve, f"{name}: P&L on {day.isoformat()} ({currency})", path, usd=False)
        bots[name] = path
        changes[name] = _day_move(curve, usd=False)
    fleet_path = None
    if fleet is not None:
        fleet_path = folder / FLEET_FILE
        draw(fleet, f"Fleet P&L on {day.isoformat()} (USD, {len(bots)} bots)", fleet_path,
             usd=True)
    return DayCharts(day, folder, fleet_path,
                     bots, 0.0 if fleet is None else _day_move(fleet, usd=True), changes)


def draw(curve: Curve, title: str, path: Path, *, usd: bool) -> None:
    """The day's P&L, with its drawdown beneath, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")  # no display: a server, a container, a scheduled job
    import matplotlib.pyplot as plt

    values = _values(curve, usd)
    moments = [p.at for p in curve.points]
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(9, 5), sharex=True,
                                         gridspec_kw={"height_ratios": [3, 1]})
    try:
        colour = "#1a7f37" if (values[-1] if values else 0) >= 0 else "#cf222e"
        top.plot(moments, values, color=colour, linewidth=1.6)
        top.axhline(0, color="#888888", linewidth=0.8)
        top.fill_between(moments, values, 0, color=colour, alpha=0.12)
        top.set_title(title)
        top.set_ylabel("P&L")
        top.grid(alpha=0.3)
        bottom.fill_between(moments, drawdowns(values), 0, color="#cf222e", alpha=0.35)
        bottom.set_ylabel("Drawdown")
        bottom.set_xlabel("UTC")
        bottom.grid(alpha=0.3)
        figure.autofmt_xdate()
        figure.tight_layout()
        tmp = path.with_suffix(".png.tmp")
        figure.savefig(tmp, format="png", dpi=110)
        tmp.replace(path)  # never a half-written chart under the real name
    finally:
        plt.close(figure)


def enqueue_fleet_chart(outbox: Outbox, charts: DayCharts, now: datetime) -> bool:
    """The fleet's chart for the trading concern, once per day (True if this call added
    it). Bots' charts stay on disk: one picture a day is news, 35 are noise."""
    if charts.fleet is None:
        return False
    return outbox.enqueue(kind="pnl.day_chart", concern=Concern.TRADING.value,
                          severity=Severity.INFO, text=charts.summary(), now=now,
                          dedup_key=f"pnl.day_chart:{charts.day.isoformat()}",
                          attachment=str(charts.fleet))


def _values(curve: Curve, usd: bool) -> list[float]:
    return [p.net_usd if usd else p.net for p in curve.points]


def _day_move(curve: Curve, usd: bool) -> float:
    values = _values(curve, usd)
    return values[-1] if values else 0.0


def _signed(value: float) -> str:
    return f"{value:+,.2f}"
