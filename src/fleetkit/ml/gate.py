"""The training pipeline's evaluation: a candidate model and the active one judged on the
same held-out bars, beside buy-and-hold and flat (docs/pipeline.md, "The evaluation gate").

Run as a subprocess by the pipeline (`python -m fleetkit.ml.gate ...`), which never imports
the learning stack itself; it prints one JSON object. The held-out bars are the candidate's:
those of the exported file after its training window. The active model (trained on an
earlier window) is evaluated from the same first row, so both are out of sample there and
the numbers compare. The decision (thresholds) is the pipeline's: this only measures.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from fleetkit.ml.bot_data import BotTrainingData
from fleetkit.ml.evaluation import BarsPerYear
from fleetkit.ml.evaluation_report import BUY_AND_HOLD, FLAT, EvaluationReport

FORMAT = "fleetkit.ml.gate/1"


def compare(config: Path, bot: str, timeframe: str, bars_file: Path, candidate: Path,
            active: Path | None, device: str = "cpu") -> dict[str, Any]:
    """The candidate's and the active model's reports on the candidate's held-out bars."""
    from fleetkit.config.loader import load_config
    from fleetkit.ml.bar_file import read_bar_file
    from fleetkit.ml.bot_data import bot_settings, load_bot_training_data
    from fleetkit.ml.evaluation import evaluate_model_dir, first_row_after
    from fleetkit.ml.model_dir import verify_model_dir

    loaded = load_config(config)
    settings = bot_settings(loaded, bot)
    bars, end = read_bar_file(bars_file)
    data = load_bot_training_data(loaded, settings, timeframe, end=end, bars=bars)
    manifest = verify_model_dir(candidate, feature_set_hash=data.matrix.feature_set_hash)
    end_s = int(datetime.fromisoformat(manifest.training_window.end).timestamp())
    start = first_row_after(data.tape, data.matrix, manifest.window, end_s)
    if start is None:
        raise SystemExit("no bars after the candidate's training window: nothing is held "
                         "out; train with ml.holdout_fraction above 0")
    per_year = _bars_per_year(data)
    judged = evaluate_model_dir(candidate, data.tape, data.matrix, data.recipe, data.venue,
                                start_row=start, device=device, bars_per_year=per_year)
    before = None
    if active is not None:
        before = evaluate_model_dir(active, data.tape, data.matrix, data.recipe, data.venue,
                                    start_row=start, device=device, bars_per_year=per_year)
    return {"format": FORMAT, "bot": bot, "timeframe": timeframe,
            "held_out_bars": len(data.tape) - 1 - start,
            "candidate": summary(judged), "active": None if before is None else summary(before)}


def summary(report: EvaluationReport) -> dict[str, Any]:
    policy = report.policy
    return {"total_return": policy.total_return, "sharpe": policy.sharpe,
            "max_drawdown": policy.max_drawdown, "trades": policy.trades,
            "buy_and_hold_return": report.metrics[BUY_AND_HOLD].total_return,
            "buy_and_hold_sharpe": report.metrics[BUY_AND_HOLD].sharpe,
            "flat_return": report.metrics[FLAT].total_return,
            "beats_buy_and_hold": report.beats_buy_and_hold, "beats_flat": report.beats_flat,
            "collapsed": report.collapsed}


def _bars_per_year(data: BotTrainingData) -> BarsPerYear:
    """As `fleet ml evaluate` counts them: from the sessions, or 365 days of bars (24/7)."""
    from fleetkit.ml.evaluation_metrics import ALWAYS_OPEN, session_annualisation

    if data.tape.instrument.calendar == ALWAYS_OPEN or not data.sessions:
        return None
    return session_annualisation(data.sessions, data.tape.interval_s)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fleetkit.ml.gate")
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--bot", required=True)
    parser.add_argument("--timeframe", required=True)
    parser.add_argument("--bars", type=Path, required=True)
    parser.add_argument("--candidate", type=Path, required=True)
    parser.add_argument("--active", type=Path)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    result = compare(args.config, args.bot, args.timeframe, args.bars, args.candidate,
                     args.active, args.device)
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
