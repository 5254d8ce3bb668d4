"""P&L curves as the pages and charts draw them: points, the fleet's sum, drawdowns.

Pure functions over what the queries return; no database, no Streamlit.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class CurvePoint:
    at: datetime  # the start of the bucket the value closes
    net: float  # net P&L in the bot's own currency (the fleet's is in USD)
    net_usd: float


@dataclass(frozen=True, slots=True)
class Curve:
    points: tuple[CurvePoint, ...]

    @property
    def last_usd(self) -> float:
        return self.points[-1].net_usd if self.points else 0.0

    def change_usd(self) -> float:
        """The curve's move over its range: last minus first."""
        if not self.points:
            return 0.0
        return self.points[-1].net_usd - self.points[0].net_usd

    def drawdowns_usd(self) -> list[float]:
        """At each point, how far below its running peak (<= 0)."""
        return drawdowns([p.net_usd for p in self.points])

    def max_drawdown_usd(self) -> float:
        found = self.drawdowns_usd()
        return min(found) if found else 0.0


def drawdowns(values: list[float]) -> list[float]:
    peak = float("-inf")
    result = []
    for value in values:
        peak = max(peak, value)
        result.append(value - peak)
    return result


def fleet_curve(curves: Mapping[str, Curve]) -> Curve:
    """The fleet's net P&L in USD at every bucket any bot has: each bot contributes its
    latest value at or before the bucket (a bot that has not started yet contributes 0)."""
    moments = sorted({p.at for curve in curves.values() for p in curve.points})
    latest: dict[str, float] = {}
    cursors = dict.fromkeys(curves, 0)
    points = []
    for moment in moments:
        for name, curve in curves.items():
            index = cursors[name]
            while index < len(curve.points) and curve.points[index].at <= moment:
                latest[name] = curve.points[index].net_usd
                index += 1
            cursors[name] = index
        total = sum(latest.values())
        points.append(CurvePoint(moment, total, total))
    return Curve(tuple(points))
