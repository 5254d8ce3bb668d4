"""`fleet model ...` end to end through the real CLI (cli.app.main), on SQLite and
PostgreSQL, with a model directory `fleet ml train` really wrote (a tiny coin bot) and the
default file:// artifact store under the fleet home."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fleetkit.cli.app import main

pytest.importorskip("stable_baselines3", reason="the ml extra trains the model")

FEATURES = {"timeframes": {"1h": ["returns", "rsi"]}, "calendar": []}
CONFIG = f"""
bots:
  - name: rl-btc
    market: CRYPTO
    symbols: [BTC/USDT]
    strategy: rl_policy
    params: {{features: {json.dumps(FEATURES)}}}
    bar_interval: 1h
    ml:
      features: {json.dumps(FEATURES)}
      history_bars: 300
      steps: 128
      n_envs: 1
      window: 8
      episode_bars: 64
  - name: plain
    market: CRYPTO
    symbols: [ETH/USDT]
    strategy: sma_cross
"""


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """rl-btc's 1h model, trained once for the module."""
    folder = tmp_path_factory.mktemp("trained")
    config = folder / "fleet.yaml"
    config.write_text(CONFIG, encoding="utf-8")
    saved = {k: os.environ.get(k) for k in ("FLEET_HOME", "FLEET_DB_URL")}
    os.environ["FLEET_HOME"] = str(folder / "var")
    os.environ.pop("FLEET_DB_URL", None)
    try:
        assert main(["ml", "train", "rl-btc", "--config", str(config), "--no-progress",
                     "--source", "sandbox", "--json"]) == 0
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return folder / "var" / "models" / "rl-btc" / "1h"


@pytest.fixture
def fleet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, database_url: str,
          trained: Path) -> Iterator[dict[str, Any]]:
    monkeypatch.setenv("FLEET_HOME", str(tmp_path / "var"))
    monkeypatch.delenv("FLEET_DB_URL", raising=False)
    config = tmp_path / "fleet.yaml"
    config.write_text(CONFIG, encoding="utf-8")
    model = tmp_path / "model"
    shutil.copytree(trained, model)
    common = ["--config", str(config), "--db", database_url]
    assert main(["db", "upgrade", *common]) == 0
    yield {"common": common, "model": model, "store": tmp_path / "var" / "model-store",
           "config": config}


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def register(capsys: pytest.CaptureFixture[str], fleet: dict[str, Any],
             *extra: str) -> dict[str, Any]:
    code, out, err = run(capsys, "model", "register", "rl-btc", str(fleet["model"]),
                         "--timeframe", "1h", "--json", *fleet["common"], *extra)
    assert code == 0, err
    return dict(json.loads(out))


def test_register_activate_rollback_verify(fleet: dict[str, Any],
                                           capsys: pytest.CaptureFixture[str]) -> None:
    c = fleet["common"]
    (fleet["model"] / "evaluation.json").write_text(json.dumps({
        "metrics": {"policy": {"total_return": 0.031, "sharpe": 1.2, "max_drawdown": 0.05,
                               "actions": {"flat": 1.0}},
                    "buy_and_hold": {"total_return": 0.02}},
        "beats_buy_and_hold": True, "beats_flat": True, "collapsed": False}))
    code, out, err = run(capsys, "model", "register", "rl-btc", str(fleet["model"]),
                         "--timeframe", "1h", *c)
    assert code == 0, err
    assert out.startswith("registered rl-btc 1h as model version 1 (candidate): 3 files, ")
    assert f"at file://{fleet['store']}/rl-btc/1h/" in out
    first = json.loads(run(capsys, "model", "show", "1", "--json", *c)[1])
    assert first["state"] == "candidate" and first["policy"] == "mlp"
    assert first["metrics"]["sharpe"] == 1.2 and first["metrics"]["buy_and_hold_return"] == 0.02
    manifest = json.loads((fleet["model"] / "manifest.json").read_text())
    files = {f["name"]: f["sha256"] for f in first["files"]}
    assert {k: files[k] for k in manifest["files"]} == manifest["files"]
    assert first["history"][0]["action"] == "registered"
    second = register(capsys, fleet)
    assert second["id"] == 2 and second["store_key"] != first["store_key"]

    code, out, _ = run(capsys, "model", "activate", "1", "--reason", "first model", *c)
    assert (code, out.strip()) == (0, "rl-btc 1h: activated model version 1; running bots "
                                      "switch at their next bar")
    code, out, _ = run(capsys, "model", "activate", "2", "--reason", "daily retrain", *c)
    assert "activated model version 2 (version 1 archived)" in out
    code, out, _ = run(capsys, "model", "list", "rl-btc", *c)
    lines = out.splitlines()
    assert lines[0].split() == ["id", "tf", "state", "policy", "created", "(UTC)", "metrics",
                                "stored", "at"]
    assert lines[1].split()[:4] == ["2", "1h", "active", "mlp"]
    assert lines[2].split()[:4] == ["1", "1h", "archived", "mlp"]
    assert "total_return=0.031 sharpe=1.2 max_drawdown=0.05" in lines[1]

    code, out, _ = run(capsys, "model", "rollback", "rl-btc", "--reason", "v2 trades badly",
                       *c)
    assert (code, out.strip()) == (0, "rl-btc 1h: rolled back to model version 1 (version 2 "
                                      "archived); running bots switch at their next bar")
    code, out, _ = run(capsys, "model", "show", "1", *c)
    assert "rolled_back archived -> active (over version 2)  by cli:" in out
    assert "v2 trades badly" in out

    code, out, _ = run(capsys, "model", "verify", *c)
    assert code == 0 and out.splitlines()[-1] == ("2 versions, 6 files: every file matches "
                                                  "the registry")
    # A byte of version 2's model flips in the store: verify names it, exit 1, and neither
    # a rollback nor an activation will use it.
    stored = fleet["store"] / second["store_key"] / "model.zip"
    data = bytearray(stored.read_bytes())
    data[len(data) // 2] ^= 0x01
    stored.write_bytes(bytes(data))
    code, out, _ = run(capsys, "model", "verify", "rl-btc", *c)
    assert code == 1
    assert f"{second['store_key']}/model.zip has sha256 " in out
    assert out.splitlines()[-1].endswith("1 version(s) disagree with the registry: 2")
    report = json.loads(run(capsys, "model", "verify", "--json", *c)[1])
    assert report["ok"] is False
    assert [v["id"] for v in report["versions"] if v["problems"]] == [2]
    code, _, err = run(capsys, "model", "rollback", "rl-btc", "--to", "2", "--reason", "x",
                       *c)
    assert code == 2 and "stored files disagree" in err and "model.zip" in err
    code, _, err = run(capsys, "model", "activate", "2", "--reason", "x", *c)
    assert code == 2 and "not activated" in err
    active = json.loads(run(capsys, "model", "list", "rl-btc", "--json", *c)[1])
    assert [(v["id"], v["state"]) for v in active["versions"]] == [(2, "archived"),
                                                                    (1, "active")]


def test_bad_input_is_one_line_and_exit_2(fleet: dict[str, Any],
                                          capsys: pytest.CaptureFixture[str]) -> None:
    c = fleet["common"]
    register(capsys, fleet)
    cases: list[tuple[list[str], str]] = [
        (["register", "nobody", str(fleet["model"]), "--timeframe", "1h"],
         "no bot named 'nobody'"),
        (["register", "rl-btc", str(fleet["model"]), "--timeframe", "4h"],
         "rl-btc has no 4h model: its ml.timeframes are 1h"),
        (["register", "rl-btc", str(fleet["model"]), "--timeframe", "1h", "--store",
          "ftp://host/models"], "the scheme 'ftp' is not supported"),
        (["rollback", "rl-btc", "--to", "99", "--reason", "x"], "there is no model version 99"),
        (["rollback", "plain", "--reason", "x"], "plain has no model versions"),
        (["rollback", "rl-btc", "--reason", "x"], "no active model version to roll back"),
        (["activate", "1", "--reason", " "], "--reason must say why"),
        (["show", "42"], "there is no model version 42"),
    ]
    for args, expected in cases:
        code, out, err = run(capsys, "model", *args, *c)
        assert code == 2, (args, out, err)
        assert expected in err and len(err.strip().splitlines()) == 1, (args, err)
    # A version of another bot cannot be rolled back to.
    code, out, err = run(capsys, "model", "activate", "1", "--reason", "go", *c)
    assert code == 0
    with (fleet["config"]).open("a") as f:
        f.write(CONFIG.split("bots:\n", 1)[1].replace("rl-btc", "rl-eth").replace(
            "BTC/USDT", "ETH/USDT").split("  - name: plain")[0])
    code, _, err = run(capsys, "model", "register", "rl-eth", str(fleet["model"]),
                       "--timeframe", "1h", *c)
    assert code == 0, err
    code, _, err = run(capsys, "model", "rollback", "rl-btc", "--to", "2", "--reason", "x", *c)
    assert code == 2 and "model version 2 is rl-eth 1h's, not rl-btc 1h's" in err
    # A model file changed since training is refused before anything is stored.
    before = sorted(p.name for p in (fleet["store"] / "rl-btc" / "1h").iterdir())
    with (fleet["model"] / "normalisation.json").open("a") as f:
        f.write(" ")
    code, _, err = run(capsys, "model", "register", "rl-btc", str(fleet["model"]),
                       "--timeframe", "1h", *c)
    assert code == 2 and "normalisation.json has sha256" in err and "changed since" in err
    assert sorted(p.name for p in (fleet["store"] / "rl-btc" / "1h").iterdir()) == before


def test_prune_keeps_the_newest_archived_and_deletes_the_rest(
        fleet: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    c = fleet["common"]
    keys = []
    for _ in range(4):
        version = register(capsys, fleet)
        keys.append(version["store_key"])
        assert run(capsys, "model", "activate", str(version["id"]), "--reason", "daily",
                   *c)[0] == 0
    code, out, _ = run(capsys, "model", "prune", "rl-btc", "--keep", "1", *c)
    assert (code, out.strip()) == (0, "rl-btc: retired 2 version(s) (2, 1), keeping the "
                                      "newest 1 archived per timeframe")
    remaining = sorted(p.name for p in (fleet["store"] / "rl-btc" / "1h").iterdir())
    assert remaining == sorted(k.rsplit("/", 1)[1] for k in keys[2:])
    code, out, _ = run(capsys, "model", "verify", *c)
    assert code == 0 and "2 versions" in out.splitlines()[-1]  # retired ones are not checked
