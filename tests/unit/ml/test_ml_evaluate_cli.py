"""`fleet ml evaluate` through the real CLI (cli.app.main): a tiny model of the 24/7 coin bot
of test_ml_cli trained on the sandbox's invented history (the clock pinned, so the bars are
the same every run), then judged on its held-out bars or by walk-forward."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import tempfile
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from fleetkit.ml.model_dir import (
    MANIFEST,
    MODEL_FILE,
    ModelManifest,
    sha256_of,
    verify_model_dir,
    write_manifest,
)
from tests.unit.ml.test_ml_cli import CONFIG, run

NOW = datetime(2024, 6, 3, 12, 30, tzinfo=UTC)
HOLD = 3  # the action index of hold among the seven levels
STRATEGIES = ["policy", "buy_and_hold", "flat"]


class _Pinned(datetime):
    @classmethod
    def now(cls, tz: Any = None) -> _Pinned:  # type: ignore[override]
        return cls.fromtimestamp(NOW.timestamp(), tz)


@pytest.fixture
def fleet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    import fleetkit.ml.bot_data as bot_data

    monkeypatch.setattr(bot_data, "datetime", _Pinned)
    monkeypatch.setenv("FLEET_HOME", str(tmp_path / "var"))
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.delenv("FLEET_DB_URL", raising=False)
    monkeypatch.delenv("FLEET_MARKET_DATA_DB_URL", raising=False)
    config = tmp_path / "fleet.yaml"
    config.write_text(CONFIG, encoding="utf-8")
    models = tmp_path / "var" / "models"
    return {"config": ["--config", str(config)], "models": models, "path": config,
            "model": models / "rl-btc" / "1h"}


def trained(fleet: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> Path:
    code, _, err = run(capsys, "ml", "train", "rl-btc", "--no-progress", *fleet["config"])
    assert code == 0, err
    return Path(fleet["model"])


def hashes(directory: Path) -> dict[str, str]:
    return {p.name: sha256_of(p) for p in sorted(directory.iterdir())}


def png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR"
    width, height = struct.unpack(">II", head[16:24])
    return width, height


def collapse_to_hold(directory: Path) -> None:
    """Rewrite the trained model so that it always chooses hold (its action layer's weights
    zeroed, hold's bias high) and sign the new file in the manifest, as training would."""
    from stable_baselines3 import PPO

    model = PPO.load(directory / MODEL_FILE, device="cpu")
    layer = model.policy.action_net
    layer.weight.data.zero_()
    layer.bias.data.fill_(-10.0)
    layer.bias.data[HOLD] = 10.0
    model.save(directory / MODEL_FILE)
    manifest = ModelManifest.from_json((directory / MANIFEST).read_text(encoding="utf-8"))
    write_manifest(directory, replace(
        manifest, files={**manifest.files, MODEL_FILE: sha256_of(directory / MODEL_FILE)}))
    verify_model_dir(directory)


def test_evaluate_prints_the_table_and_verdicts_and_writes_the_chart_and_json(
        fleet: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    directory = trained(fleet, capsys)
    before = hashes(directory)
    code, out, err = run(capsys, "ml", "evaluate", "rl-btc", *fleet["config"])
    assert code == 0, err
    chart = directory / "evaluation.png"
    lines = out.splitlines()
    assert lines[0].startswith(f"rl-btc 1h: model {directory} (mlp, 256 steps, trained on ")
    assert "held-out bars from sandbox" in lines[0]
    assert any(line.split()[:3] == ["strategy", "return", "Sharpe"] for line in lines)
    for name in STRATEGIES:
        assert any(line.startswith(f"{name} ") for line in lines), name
    assert "policy's actions: strong_sell" in out
    verdicts = [line for line in lines if line.startswith("beats buy-and-hold: ")]
    assert len(verdicts) == 1 and "; beats flat: " in verdicts[0]
    assert "Sharpe annualised with 8,760 bars a year (24/7" in out
    assert lines[-1] == f"chart: {chart} (report: {chart.with_suffix('.json')})"
    assert png_size(chart) == (1200, 900)
    saved = json.loads(chart.with_suffix(".json").read_text(encoding="utf-8"))
    assert sorted(saved["curves"]) == sorted(STRATEGIES)
    # The chart and its report lie beside the model, unlisted: the model still verifies
    # and its own files are unchanged.
    verify_model_dir(directory)
    assert {k: v for k, v in hashes(directory).items() if k in before} == before

    code, out, err = run(capsys, "ml", "evaluate", "rl-btc", "--json", *fleet["config"])
    assert code == 0, err
    shown = json.loads(out)  # nothing else on stdout
    assert shown["bot"] == "rl-btc" and shown["failures"] == []
    [evaluation] = shown["evaluations"]
    assert evaluation["timeframe"] == "1h"
    assert evaluation["model"] == str(directory) and evaluation["chart"] == str(chart)
    report = evaluation["report"]
    assert list(report["metrics"]) == STRATEGIES
    for metrics in report["metrics"].values():
        assert {"total_return", "sharpe", "max_drawdown", "turnover", "trades",
                "exposure"} <= set(metrics)
        assert metrics["steps"] == report["steps"] > 0
    assert report["metrics"]["flat"]["total_return"] == 0.0
    assert report["beats_flat"] == (report["metrics"]["policy"]["total_return"] > 0)
    assert report["bars_per_year"] == 8760.0
    # The held-out bars: after the model's training window.
    window = verify_model_dir(directory).training_window
    assert report["start"] > window.end
    assert report["folds"][0]["train"]["last_bar"] == window.end
    assert "curves" not in report

    elsewhere = fleet["path"].parent / "charts" / "btc.png"
    code, out, err = run(capsys, "ml", "evaluate", "rl-btc", "--chart", str(elsewhere),
                         *fleet["config"])
    assert code == 0, err
    assert png_size(elsewhere) == (1200, 900) and elsewhere.with_suffix(".json").is_file()
    assert out.splitlines()[-1].startswith(f"chart: {elsewhere} ")


def test_walk_forward_trains_each_fold_apart_and_leaves_the_model_alone(
        fleet: dict[str, Any], capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    import fleetkit.ml.training as training

    directory = trained(fleet, capsys)
    before = hashes(directory)
    real = training.train
    folders: list[Path] = []

    def recording(*args: Any, out_dir: Path, **kwargs: Any) -> Any:
        folders.append(out_dir)
        assert Path(tempfile.gettempdir()) in out_dir.parents
        return real(*args, out_dir=out_dir, **kwargs)

    monkeypatch.setattr(training, "train", recording)
    code, out, err = run(capsys, "ml", "evaluate", "rl-btc", "--walk-forward", "2",
                         "--steps", "128", "--no-progress", "--json", *fleet["config"])
    assert code == 0, err
    [evaluation] = json.loads(out)["evaluations"]
    report = evaluation["report"]
    assert evaluation["model"] is None
    assert len(report["folds"]) == 2 and len(folders) == 2
    first, second = report["folds"]
    assert first["test"]["end"] <= second["test"]["start"]
    assert first["train"]["first_bar"] < second["train"]["first_bar"]
    assert not any(folder.exists() for folder in folders)  # deleted after each fold
    chart = Path(evaluation["chart"])
    assert chart == fleet["models"] / "rl-btc" / "evaluations" / "1h-walk-forward.png"
    assert png_size(chart) == (1200, 900)
    assert hashes(directory) == before  # the trained model: not a byte changed, no file added

    code, out, err = run(capsys, "ml", "evaluate", "rl-btc", "--walk-forward", "2",
                         "--steps", "64", "--no-progress", *fleet["config"])
    assert code == 0, err
    assert out.startswith("rl-btc 1h: walk-forward, 2 folds of ")
    assert "fold  test from" in out


def test_fail_on_exits_1_when_a_named_verdict_fails(
        fleet: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    directory = trained(fleet, capsys)
    code, out, err = run(capsys, "ml", "evaluate", "rl-btc", "--json", *fleet["config"])
    assert code == 0, err
    report = json.loads(out)["evaluations"][0]["report"]
    assert report["collapsed"] is False  # this model spreads its actions (the clock pinned)
    code, _, err = run(capsys, "ml", "evaluate", "rl-btc", "--fail-on", "collapsed",
                       *fleet["config"])
    assert code == 0, err
    expected = 0 if report["beats_buy_and_hold"] else 1
    code, _, err = run(capsys, "ml", "evaluate", "rl-btc", "--fail-on", "buy-and-hold",
                       *fleet["config"])
    assert code == expected, err

    collapse_to_hold(directory)
    code, out, err = run(capsys, "ml", "evaluate", "rl-btc", *fleet["config"])
    assert code == 0, err  # evaluated: whatever the verdict
    assert ("!!! COLLAPSED POLICY: it chose hold at 100.0% of its decisions (more than "
            "95%): it does not act on what it observes !!!") in out
    assert "beats buy-and-hold: " in out and "beats flat: no" in out

    code, out, err = run(capsys, "ml", "evaluate", "rl-btc", "--fail-on", "collapsed",
                         *fleet["config"])
    assert code == 1
    assert err == ("--fail-on: rl-btc 1h: the policy collapsed to hold (100.0% of its "
                   "decisions)\n")
    assert "chart: " in out  # the report is still printed and saved

    code, out, err = run(capsys, "ml", "evaluate", "rl-btc", "--fail-on", "flat,collapsed",
                         "--json", *fleet["config"])
    assert code == 1 and err.count("\n") == 1
    shown = json.loads(out)
    assert shown["failures"] == ["rl-btc 1h: the policy collapsed to hold (100.0% of its "
                                 "decisions)",
                                 "rl-btc 1h: does not beat flat (return +0.00%)"]
    assert shown["evaluations"][0]["report"]["collapsed_action"] == "hold"


def test_a_changed_model_is_refused_before_anything_is_unpickled(
        fleet: dict[str, Any], capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    from sb3_contrib import RecurrentPPO
    from stable_baselines3 import PPO

    directory = trained(fleet, capsys)
    model = directory / MODEL_FILE
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0x01
    model.write_bytes(bytes(data))

    def never(*args: Any, **kwargs: Any) -> Any:
        pytest.fail("a changed model was unpickled")

    monkeypatch.setattr(PPO, "load", never)
    monkeypatch.setattr(RecurrentPPO, "load", never)
    code, _, err = run(capsys, "ml", "evaluate", "rl-btc", *fleet["config"])
    assert code == 2
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"{model} has sha256 " in err and "refusing to load it" in err
    # Walk-forward does not read the trained model: it trains its own folds.
    code, _, err = run(capsys, "ml", "evaluate", "rl-btc", "--walk-forward", "2", "--steps",
                       "64", "--no-progress", *fleet["config"])
    assert code == 0, err
    assert not (directory / "evaluation.png").exists()


def test_an_empty_holdout_is_refused(fleet: dict[str, Any],
                                     capsys: pytest.CaptureFixture[str]) -> None:
    text = fleet["path"].read_text().replace("history_bars: 300",
                                             "history_bars: 300\n      holdout_fraction: 0")
    fleet["path"].write_text(text)
    trained(fleet, capsys)
    code, _, err = run(capsys, "ml", "evaluate", "rl-btc", *fleet["config"])
    assert code == 2 and err.count("\n") == 1
    assert "rl-btc 1h: no bars after the model's training window" in err
    assert "ml.holdout_fraction above 0" in err
    code, _, err = run(capsys, "ml", "evaluate", "rl-btc", "--walk-forward", "2",
                       *fleet["config"])
    assert code == 2 and "splits the 0 held-out bars" in err


@pytest.mark.parametrize(("args", "message"), [
    (["nobody"], "no bot named 'nobody'"),
    (["plain"], "bot plain has no ml: section"),
    (["rl-btc", "--timeframe", "4h"], "--timeframe 4h: bot rl-btc trains 1h"),
    (["rl-btc"], "no trained model for rl-btc 1h at {models}/rl-btc/1h: run `fleet ml "
                 "train rl-btc -t 1h` first"),
    (["rl-btc", "--walk-forward", "2", "--source", "store"],
     "needs 657 bars of 1h for CRYPTO:BTC/USDT (warm-up 357 + history 300), found 0"),
    (["rl-btc", "--source", "csv"], "--source 'csv': use one of"),
    (["rl-nifty", "--chart", "x.png"], "--chart names one file: add --timeframe (bot "
                                       "rl-nifty has 15m, 1h)"),
    (["rl-btc", "--fail-on", "sharpe"], "--fail-on 'sharpe': name any of collapsed, flat, "
                                        "buy-and-hold"),
    (["rl-btc", "--steps", "5"], "--policy, --steps and --seed train the folds of "
                                 "--walk-forward"),
    (["rl-btc", "--walk-forward", "2", "--policy", "gru"], "unknown policy 'gru'"),
    (["rl-btc", "--walk-forward", "100"], "rl-btc 1h: --walk-forward 100 splits the 60 "
                                          "held-out bars"),
])
def test_bad_input_is_one_line_and_exit_2(fleet: dict[str, Any],
                                          capsys: pytest.CaptureFixture[str],
                                          args: list[str], message: str) -> None:
    code, out, err = run(capsys, "ml", "evaluate", *args, *fleet["config"])
    assert code == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert message.format(models=fleet["models"]) in err, err
    assert out == ""


def test_a_missing_ml_extra_is_one_line(fleet: dict[str, Any]) -> None:
    probe = ("import sys; sys.modules['stable_baselines3'] = None; "
             "from fleetkit.cli.app import main; "
             f"sys.exit(main(['ml', 'evaluate', 'rl-btc', '--config', {str(fleet['path'])!r}]))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          env=os.environ.copy(), check=False, timeout=120)
    assert done.returncode == 2
    assert done.stderr == ("error: the ml extra is not installed (stable_baselines3 is "
                           "missing): pip install -e '.[ml]' -c constraints/torch-cpu.txt\n")
