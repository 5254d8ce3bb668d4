"""The evaluation gate's decision: thresholds from `training.bots.<bot>.gate` applied to the
measurements `python -m fleetkit.ml.gate` prints (the candidate and the active version on
the same held-out bars, with buy-and-hold and flat beside them)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fleetkit.config.pipeline import GateSettings


def gate_failures(settings: GateSettings, measured: Mapping[str, Any]) -> list[str]:
    """One line per threshold the candidate misses; [] when it may be activated."""
    candidate = measured["candidate"]
    active = measured.get("active")
    failures: list[str] = []
    if settings.reject_collapsed and candidate["collapsed"]:
        failures.append("the policy collapsed to one action")
    if "flat" in settings.must_beat and not candidate["beats_flat"]:
        failures.append(f"does not beat flat (return {candidate['total_return']:+.4%} against "
                        f"{candidate['flat_return']:+.4%})")
    if "buy_and_hold" in settings.must_beat and not candidate["beats_buy_and_hold"]:
        failures.append(f"does not beat buy-and-hold (return {candidate['total_return']:+.4%} "
                        f"against {candidate['buy_and_hold_return']:+.4%})")
    if settings.min_sharpe_vs_active is not None and active is not None:
        edge = float(candidate["sharpe"]) - float(active["sharpe"])
        if edge < settings.min_sharpe_vs_active:
            failures.append(f"Sharpe {candidate['sharpe']:.3f} against the active version's "
                            f"{active['sharpe']:.3f} (needs at least "
                            f"{settings.min_sharpe_vs_active:+.3f})")
    return failures
