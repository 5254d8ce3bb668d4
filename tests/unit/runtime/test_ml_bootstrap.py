"""runtime.ml_bootstrap without training anything: which models a bot lacks, a training
that runs out of time or is stopped, a training child that dies with its bot, and learning
bots without the ml extra (`fleet up` leaves them out and says how to enable them; `fleet
bot run` refuses one in a line)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import fleetkit.runtime.fleet as fleet
import fleetkit.runtime.ml_bootstrap as bootstrap
from fleetkit.cli.app import main
from fleetkit.config.loader import LoadedConfig, load_config
from fleetkit.engine.ports import Event
from fleetkit.runtime.logs import get_logger

SET = {"timeframes": {"1h": ["returns"], "4h": ["returns"]}, "calendar": []}
CONFIG = f"""
bots:
  - name: rl-btc
    market: CRYPTO
    symbols: [BTC/USDT]
    strategy: rl_policy
    bar_interval: 1h
    ml: {{features: {json.dumps(SET)}, timeframes: [1h, 4h], train_if_missing: true,
         train_timeout_s: 0.5}}
  - name: rl-eth
    market: CRYPTO
    symbols: [ETH/USDT]
    strategy: rl_policy
    bar_interval: 1h
    ml: {{features: {json.dumps(SET)}}}
  - name: plain
    market: CRYPTO
    symbols: [SOL/USDT]
    strategy: sma_cross
    bar_interval: 1h
    ml: {{features: {json.dumps(SET)}, train_if_missing: true}}
"""
FIX = "pip install -e '.[ml]' -c constraints/torch-cpu.txt"


@pytest.fixture
def loaded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> LoadedConfig:
    monkeypatch.setenv("FLEET_HOME", str(tmp_path / "var"))
    for name in ("FLEET_DB_URL", "FLEET_MARKET_DATA_DB_URL", "FLEET_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    path = tmp_path / "fleet.yaml"
    path.write_text(CONFIG, encoding="utf-8")
    return load_config(path)


def without_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    real = bootstrap.find_spec
    monkeypatch.setattr(bootstrap, "find_spec",
                        lambda name: None if name == "torch" else real(name))


def test_only_an_rl_policy_bot_with_train_if_missing_trains_and_only_what_it_lacks(
        loaded: LoadedConfig) -> None:
    bots = {b.name: b for b in loaded.config.bots}
    assert bootstrap.missing_timeframes(loaded, bots["rl-btc"]) == ["1h", "4h"]
    assert bootstrap.missing_timeframes(loaded, bots["rl-eth"]) == []  # not asked to
    assert bootstrap.missing_timeframes(loaded, bots["plain"]) == []  # not rl_policy
    models = loaded.home / "models" / "rl-btc"
    (models / "1h").mkdir(parents=True)
    (models / "1h" / "manifest.json").write_text("{}", encoding="utf-8")
    (models / "4h").mkdir()  # a training that never finished: no manifest
    assert bootstrap.missing_timeframes(loaded, bots["rl-btc"]) == ["4h"]
    elsewhere = bots["rl-btc"].model_copy(update={"params": {"model": str(models / "x")}})
    assert bootstrap.missing_timeframes(loaded, elsewhere) == []  # it would not read them


def first_models(loaded: LoadedConfig, stop: threading.Event
                 ) -> tuple[bootstrap.FirstModels, list[tuple[str, str]], list[Event]]:
    beats: list[tuple[str, str]] = []
    recorded: list[Event] = []
    trainer = bootstrap.FirstModels(
        loaded, loaded.config.bot("rl-btc"), f"sqlite:///{loaded.home / 'fleet.db'}",
        beat=lambda status, detail: beats.append((status, detail)), record=recorded.append,
        stop=stop, log=get_logger("test"))
    return trainer, beats, recorded


def test_a_training_past_its_timeout_is_stopped_and_recorded_as_failed(
        loaded: LoadedConfig) -> None:
    trainer, beats, recorded = first_models(loaded, threading.Event())
    started = time.monotonic()
    outcome = trainer.ensure()
    assert time.monotonic() - started < 15
    assert outcome is not None and not outcome.ok and not outcome.stopped
    assert beats[0] == ("training", "training its first models (timeframes 1h, 4h)")
    (event,) = recorded
    assert (event.kind, event.severity) == ("ml.train_failed", "error")
    assert "timed out after 0.5 s (ml.train_timeout_s)" in event.message
    assert event.data["timeframes"] == ["1h", "4h"]


def test_a_bot_asked_to_stop_stops_its_training_without_a_failure(
        loaded: LoadedConfig) -> None:
    stop = threading.Event()
    stop.set()
    trainer, _, recorded = first_models(loaded, stop)
    outcome = trainer.ensure()
    assert outcome is not None and outcome.stopped
    assert recorded == []


def test_the_training_line_is_its_json_error_else_its_last_error_line() -> None:
    error = json.dumps({"error": {"message": "needs 657 bars\n of 1h", "exit_code": 2}})
    assert bootstrap._one_line(error, "error: ignored", 2) == "needs 657 bars of 1h"
    assert bootstrap._one_line("", "note: x\nerror: no such bot\n", 2) == "no such bot"
    assert bootstrap._one_line("", "Traceback ...\nValueError: bad\n", 1) == "ValueError: bad"
    assert bootstrap._one_line("", "", 9) == "`fleet ml train` exited with code 9"


@pytest.mark.skipif(sys.platform != "linux", reason="PR_SET_PDEATHSIG is Linux's")
def test_a_training_child_dies_with_its_bot_even_by_sigkill(tmp_path: Path) -> None:
    script = textwrap.dedent("""
        import sys, time
        from fleetkit.runtime.ml_bootstrap import spawn_guarded
        child = spawn_guarded([sys.executable, "-c", "import time; time.sleep(60)"], {},
                              sys.stderr.buffer, sys.stderr.buffer)
        print(child.pid, flush=True)
        time.sleep(60)
    """)
    with subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                          text=True) as bot:
        assert bot.stdout is not None
        child = int(bot.stdout.readline())
        time.sleep(0.5)  # the guard has exec'd the command
        os.kill(bot.pid, signal.SIGKILL)
        bot.wait()
    deadline = time.monotonic() + 10
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(child)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (reaped by init soon) is dead for this purpose
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_fleet_up_leaves_out_learning_bots_without_the_ml_extra(
        loaded: LoadedConfig, monkeypatch: pytest.MonkeyPatch) -> None:
    names = [s.name for s in fleet.child_specs(loaded, "sqlite://")]
    assert {"rl-btc", "rl-eth", "plain"} <= set(names)
    without_torch(monkeypatch)
    names = [s.name for s in fleet.child_specs(loaded, "sqlite://")]
    assert "plain" in names and "rl-btc" not in names and "rl-eth" not in names
    left_out, missing = bootstrap.bots_needing_ml_extra(loaded.config)
    assert bootstrap.not_started_line(left_out, missing) == (
        "2 learning bots not started (rl-btc, rl-eth): they need the ml extra (torch is "
        f"missing) — {FIX}")


def test_fleet_up_says_so_on_the_console_and_runs_the_rest(
        loaded: LoadedConfig, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    without_torch(monkeypatch)
    ran: list[Any] = []
    monkeypatch.setattr(fleet, "check_port_free", lambda host, port: None)
    monkeypatch.setattr(fleet, "run_fleet", lambda *args: ran.append(args) or 0)
    code = main(["up", "--config", loaded.source, "--no-live", "--for", "1"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert len(ran) == 1
    assert "fleetkit: starting 1 bots from" in err
    assert (f"fleetkit: 2 learning bots not started (rl-btc, rl-eth): they need the ml extra "
            f"(torch is missing) — {FIX}") in err


def test_fleet_bot_run_refuses_a_learning_bot_without_the_ml_extra(
        loaded: LoadedConfig, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    without_torch(monkeypatch)
    code = main(["bot", "run", "rl-eth", "--config", loaded.source])
    err = capsys.readouterr().err
    assert code == 2
    assert err.strip() == (f"error: bot rl-eth runs rl_policy, which needs the ml extra "
                           f"(torch is missing) — {FIX}")


def test_fleet_up_does_not_import_the_learning_stack(loaded: LoadedConfig) -> None:
    probe = textwrap.dedent(f"""
        import sys
        from fleetkit.config.loader import load_config
        from fleetkit.runtime.fleet import child_specs
        from fleetkit.runtime.ml_bootstrap import bots_needing_ml_extra
        import fleetkit.cli.fleet_cmds
        loaded = load_config({loaded.source!r})
        child_specs(loaded, "sqlite://")
        bots_needing_ml_extra(loaded.config)
        print(",".join(m for m in ("numpy", "torch", "talib", "gymnasium",
                                   "stable_baselines3", "fleetkit.ml") if m in sys.modules))
    """)
    found = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                           check=True).stdout.strip()
    assert found == ""
