"""`fleet train run` with the SSH trainer against a real OpenSSH server on a loopback port
(tests/integration/sshd.py): every step, the trainer's Python being this venv's and its
working directory a temporary folder; then a key the server refuses fails the run in one
line, exit 2, with the active model untouched."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from fleetkit.cli.app import main
from tests.integration.sshd import ALIAS, WRONG_KEY_ALIAS, Sshd, sshd

__all__ = ["sshd"]  # the fixture, imported to be found

pytest.importorskip("stable_baselines3", reason="the ml extra trains the model")

FEATURES = {"timeframes": {"1h": ["returns", "rsi"]}, "calendar": []}


def config_text(server: Sshd, workdir: Path) -> str:
    common = (f"workdir: {workdir}, python: {sys.executable}, device: cpu, "
              f"ssh_config: {server.client_config}, connect_timeout_s: 5")
    return f"""
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
      steps: 64
      n_envs: 1
      window: 8
      episode_bars: 64
training:
  trainers:
    gpu-box: {{kind: ssh, host: {ALIAS}, {common}}}
    refused: {{kind: ssh, host: {WRONG_KEY_ALIAS}, {common}}}
  trainer: gpu-box
  retries: {{attempts: 2, initial_s: 0, maximum_s: 0}}
  defaults:
    timeout_s: 300
    gate: {{min_sharpe_vs_active: null, must_beat: [], reject_collapsed: false}}
"""


@pytest.fixture(autouse=True)
def _no_agent(monkeypatch: pytest.MonkeyPatch) -> None:
    # The user's agent must not offer keys the test did not choose.
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    monkeypatch.delenv("FLEET_JOB_PERIOD", raising=False)
    monkeypatch.delenv("FLEET_DB_URL", raising=False)


def test_a_run_on_the_ssh_trainer_goes_through_every_step_and_a_refused_key_fails_it(
        sshd: Sshd, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("FLEET_HOME", str(tmp_path / "var"))
    config = tmp_path / "fleet.yaml"
    workdir = tmp_path / "trainer-root"
    config.write_text(config_text(sshd, workdir), encoding="utf-8")
    common = ["--config", str(config), "--db", f"sqlite:///{tmp_path / 'fleet.db'}"]
    assert main(["db", "upgrade", *common]) == 0
    capsys.readouterr()

    assert main(["train", "run", "rl-btc", "--json", *common]) == 0
    run = json.loads(capsys.readouterr().out)["runs"][0]
    assert (run["state"], run["trainer"]) == ("succeeded", "gpu-box")
    assert [(s["step"], s["state"]) for s in run["steps"]] == [
        *((step, "done") for step in ("export", "ship", "train", "hash", "fetch", "evaluate",
                                      "archive", "activate")), ("publish", "skipped")]
    steps = {s["step"]: s["detail"] for s in run["steps"]}
    assert steps["ship"]["remote"].startswith(f"{workdir}/")  # on the trainer
    assert steps["hash"]["files"] and steps["fetch"]["files"] == len(steps["hash"]["files"])
    models = tmp_path / "var" / "models" / "rl-btc" / "1h"
    manifest = (models / "manifest.json").read_bytes()
    active = _versions(capsys, common)
    assert active == [(run["version_id"], "active")]

    # The same fleet, a key the server refuses: one line naming the fix, exit 2, at once
    # (never retried); nothing changed where the bot reads its model or in the registry.
    assert main(["train", "run", "rl-btc", "--force", "--trainer", "refused", *common]) == 2
    captured = capsys.readouterr()
    errors = [line for line in captured.err.splitlines() if "refused the key" in line]
    assert len(errors) == 1 and "ssh-add" in errors[0], captured.err
    assert "Traceback" not in captured.err
    assert (models / "manifest.json").read_bytes() == manifest
    assert _versions(capsys, common) == active
    assert main(["train", "status", "rl-btc", "--json", *common]) == 0
    newest = json.loads(capsys.readouterr().out)["runs"][0]
    assert (newest["attempt"], newest["state"], newest["failed_step"]) == (2, "failed", "ship")


def _versions(capsys: pytest.CaptureFixture[str], common: list[str]) -> list[tuple[int, str]]:
    assert main(["model", "list", "rl-btc", "--json", *common]) == 0
    found = json.loads(capsys.readouterr().out)["versions"]
    return [(v["id"], v["state"]) for v in found]
