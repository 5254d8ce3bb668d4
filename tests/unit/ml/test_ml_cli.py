"""`fleet ml train` and `fleet ml features` through the real CLI (cli.app.main) on a small
fleet: a 24/7 coin bot on hourly bars and an NSE bot on 15m+1h bars (sessions from the
calendars), both on the sandbox's invented history, computed in-process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fleetkit.cli.app import main
from fleetkit.features import parse_feature_set
from fleetkit.features.spec import from_base
from fleetkit.ml.model_dir import verify_model_dir

COIN_SET = {"timeframes": {"1h": ["returns", "rsi"]}, "calendar": []}
NSE_SET = {"timeframes": {"15m": ["returns"], "1h": ["returns", "rsi"]},
           "calendar": ["session_position"]}
CONFIG = f"""
bots:
  - name: rl-btc
    market: CRYPTO
    symbols: [BTC/USDT]
    strategy: rl_policy
    params: {{features: {json.dumps(COIN_SET)}}}
    bar_interval: 1h
    allow_short: true
    ml:
      features: {json.dumps(COIN_SET)}
      history_bars: 300
      steps: 256
      n_envs: 1
      window: 8
      episode_bars: 64
  - name: rl-nifty
    market: NSE
    symbols: [RELIANCE]
    strategy: sma_cross
    ml:
      signal: "NSE:NIFTY 50"
      timeframes: [15m, 1h]
      features: {json.dumps(NSE_SET)}
      history_bars: 200
      steps: 128
      n_envs: 1
      window: 4
      episode_bars: 32
  - name: plain
    market: CRYPTO
    symbols: [ETH/USDT]
    strategy: sma_cross
"""


@pytest.fixture
def fleet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.setenv("FLEET_HOME", str(tmp_path / "var"))
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.delenv("FLEET_DB_URL", raising=False)
    monkeypatch.delenv("FLEET_MARKET_DATA_DB_URL", raising=False)
    config = tmp_path / "fleet.yaml"
    config.write_text(CONFIG, encoding="utf-8")
    return {"config": ["--config", str(config)], "models": tmp_path / "var" / "models",
            "path": config}


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_train_writes_one_verified_model_per_timeframe(
        fleet: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "ml", "train", "rl-nifty", "--json", *fleet["config"])
    assert code == 0, err
    report = json.loads(out)
    assert [m["timeframe"] for m in report["models"]] == ["15m", "1h"]
    declared = parse_feature_set(NSE_SET)
    for model in report["models"]:
        directory = fleet["models"] / "rl-nifty" / model["timeframe"]
        assert model["path"] == str(directory)
        expected = from_base(declared, model["timeframe"])
        manifest = verify_model_dir(directory, feature_set_hash=expected.hash())
        assert manifest.timeframe == model["timeframe"]
        assert manifest.feature_set == expected.to_mapping()
        assert manifest.training_window.instrument == "NSE:RELIANCE"
        assert model["bars_from"] == "sandbox"
        assert model["steps"] == 128
    # The 1h model reads 1h only (its higher timeframes); the 15m one reads both.
    assert [c.split(".")[0] for c in verify_model_dir(
        fleet["models"] / "rl-nifty" / "1h").feature_columns] == ["1h", "1h", "calendar"]
    assert "trades NSE:RELIANCE at NSE:NIFTY 50's prices" in err


def test_a_second_train_replaces_the_model_whole_and_a_killed_one_keeps_the_old(
        fleet: dict[str, Any], capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    directory = fleet["models"] / "rl-btc" / "1h"
    code, out, err = run(capsys, "ml", "train", "rl-btc", "--no-progress", *fleet["config"])
    assert code == 0, err
    assert out.startswith(f"{directory}: mlp, 256 steps in ")
    assert verify_model_dir(directory).seed == 0

    code, out, err = run(capsys, "ml", "train", "rl-btc", "--seed", "5", "--steps", "300",
                         "--json", *fleet["config"])
    assert code == 0, err
    assert json.loads(out)["models"][0]["seed"] == 5
    manifest = verify_model_dir(directory)
    assert (manifest.seed, manifest.steps) == (5, 300)
    assert sorted(p.name for p in directory.parent.iterdir()) == ["1h"]

    import fleetkit.ml.bot_training as bot_training

    real = bot_training.train

    def killed(*args: Any, out_dir: Path, **kwargs: Any) -> Any:
        real(*args, out_dir=out_dir, **kwargs)  # a complete model, then the kill
        assert out_dir.parent == directory.parent and out_dir != directory
        raise KeyboardInterrupt

    monkeypatch.setattr(bot_training, "train", killed)
    assert main(["ml", "train", "rl-btc", "--seed", "9", *fleet["config"]]) == 130
    assert verify_model_dir(directory).seed == 5  # the previous model, untouched
    assert sorted(p.name for p in directory.parent.iterdir()) == ["1h"]


def test_install_swaps_directories_whole(tmp_path: Path) -> None:
    from fleetkit.ml.bot_training import install

    final, new = tmp_path / "1h", tmp_path / ".1h.training-1"
    new.mkdir()
    (new / "a").write_text("first")
    install(new, final)
    assert (final / "a").read_text() == "first" and not new.exists()
    new.mkdir()
    (new / "b").write_text("second")
    install(new, final)
    assert sorted(p.name for p in final.iterdir()) == ["b"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["1h"]


@pytest.mark.parametrize(("args", "message"), [
    (["ml", "train", "nobody"], "no bot named 'nobody'"),
    (["ml", "train", "plain"], "bot plain has no ml: section"),
    (["ml", "train", "rl-btc", "--policy", "gru"], "unknown policy 'gru'; choose one of"),
    (["ml", "train", "rl-btc", "--device", "cuda"], "--device cuda: torch"),
    (["ml", "train", "rl-btc", "--timeframe", "4h"], "--timeframe 4h: bot rl-btc trains 1h"),
    (["ml", "features", "rl-nifty", "--timeframe", "1d"], "--timeframe 1d: bot rl-nifty"),
    (["ml", "train", "rl-btc", "--source", "store"],
     "needs 657 bars of 1h for CRYPTO:BTC/USDT (warm-up 357 + history 300), found 0: "
     "backfill with `fleet data backfill 'CRYPTO:BTC/USDT' --days 30` or lower ml.history_bars"),
    (["ml", "features", "rl-btc", "--at", "yesterday"], "--at 'yesterday' is not an ISO time"),
    (["ml", "train", "rl-btc", "--source", "csv"], "--source 'csv': use one of"),
])
def test_bad_input_is_one_line_and_exit_2(fleet: dict[str, Any],
                                          capsys: pytest.CaptureFixture[str],
                                          args: list[str], message: str) -> None:
    if "cuda" in args:
        import torch

        if torch.cuda.is_available():
            pytest.skip("this machine has a GPU")
    code, _, err = run(capsys, *args, *fleet["config"])
    assert code == 2
    assert err.count("\n") == 1 and "Traceback" not in err
    assert message in err, err


def test_a_missing_ml_extra_is_one_line(fleet: dict[str, Any]) -> None:
    probe = ("import sys; sys.modules['stable_baselines3'] = None; "
             "from fleetkit.cli.app import main; "
             f"sys.exit(main(['ml', 'train', 'rl-btc', '--config', {str(fleet['path'])!r}]))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          env=os.environ.copy(), check=False, timeout=120)
    assert done.returncode == 2
    assert done.stderr == ("error: the ml extra is not installed (stable_baselines3 is "
                           "missing): pip install -e '.[ml]' -c constraints/torch-cpu.txt\n")


def test_a_too_short_history_names_the_fix(fleet: dict[str, Any],
                                           capsys: pytest.CaptureFixture[str]) -> None:
    text = fleet["path"].read_text().replace("history_bars: 300", "history_bars: 2")
    fleet["path"].write_text(text)
    code, _, err = run(capsys, "ml", "train", "rl-btc", *fleet["config"])
    assert code == 2
    assert "leave no step for a window of 8" in err


def nse_row(at: datetime) -> tuple[tuple[str, ...], np.ndarray[Any, Any], int]:
    """The 15m model's row at `at`, computed here from the sandbox's minutes directly."""
    from fleetkit.brokers.sandbox.catalog import load_catalog
    from fleetkit.brokers.sandbox.prices import InventedPrices
    from fleetkit.calendars.market_calendars import MarketCalendars
    from fleetkit.features.batch import compute_features
    from fleetkit.features.columns import BarColumns

    calendars = MarketCalendars()
    sessions = [s for s in calendars.sessions("XNSE", (at - timedelta(days=150)).date(),
                                              at.date()) if s.open < at]
    minutes = InventedPrices(7, load_catalog(), calendars).minute_arrays(
        "NSE:NIFTY 50", sessions[0].open, 60 * 375 * len(sessions))
    keep = minutes.ts_s + 60 <= at.timestamp()
    bars = BarColumns("1m", minutes.ts_s[keep], minutes.open[keep], minutes.high[keep],
                      minutes.low[keep], minutes.close[keep], minutes.volume[keep])
    feature_set = from_base(parse_feature_set(NSE_SET), "15m")
    matrix = compute_features(feature_set, bars, sessions)
    row = int(np.flatnonzero(matrix.close_s <= at.timestamp())[-1])
    return matrix.columns, matrix.values[row], int(matrix.close_s[row])


def test_features_are_the_batch_row_of_the_last_complete_bar(
        fleet: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    at = datetime(2024, 3, 1, 9, 50, tzinfo=UTC)  # mid-bar: the 09:30 bar is the last one
    code, out, err = run(capsys, "ml", "features", "rl-nifty", "--at", at.isoformat(),
                         "--json", *fleet["config"])
    assert code == 0, err
    shown = json.loads(out)
    columns, values, close_s = nse_row(at)
    assert shown["bar_close"] == datetime.fromtimestamp(close_s, UTC).isoformat() \
        == "2024-03-01T09:45:00+00:00"
    assert shown["ready"] is True
    assert [f["column"] for f in shown["features"]] == list(columns) == [
        "15m.ret_1", "1h.ret_1", "1h.rsi_14", "calendar.session_pos"]
    assert [f["raw"] for f in shown["features"]] == pytest.approx(list(values), rel=1e-9)
    assert all(f["normalised"] is None for f in shown["features"])
    assert "no trained model" in shown["model_note"]

    code, out, err = run(capsys, "ml", "features", "rl-nifty", "--at", at.isoformat(),
                         "--timeframe", "1h", *fleet["config"])
    assert code == 0, err
    assert "rl-nifty 1h features of NSE:NIFTY 50" in out and "15m.ret_1" not in out
    assert "1h.rsi_14" in out and "normalised" not in out


def test_features_are_normalised_with_the_trained_models_normalisation(
        fleet: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    from fleetkit.features.normalise import load_normalisation

    assert main(["ml", "train", "rl-btc", "--no-progress", *fleet["config"]]) == 0
    capsys.readouterr()
    code, out, err = run(capsys, "ml", "features", "rl-btc", "--json", *fleet["config"])
    assert code == 0, err
    shown = json.loads(out)
    scale = load_normalisation(fleet["models"] / "rl-btc" / "1h" / "normalisation.json",
                               parse_feature_set(COIN_SET))
    raw = np.array([f["raw"] for f in shown["features"]])
    assert [f["normalised"] for f in shown["features"]] == pytest.approx(
        list(scale.apply(raw)))
    assert shown["model_note"] is None
