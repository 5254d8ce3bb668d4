"""`fleet train run | status` end to end on real components: the local trainer running the
real `fleet ml train` (a tiny 24/7 coin bot on the sandbox's invented bars), the registry on
SQLite and PostgreSQL, the default file:// artifact store. Kills are injected at each step
boundary (an exception the runner does not catch, as SIGKILL records nothing)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

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
      steps: 64
      n_envs: 1
      window: 8
      episode_bars: 64
training:
  retries: {{attempts: 1, initial_s: 0, maximum_s: 0}}
  defaults:
    timeout_s: 300
    gate: {{min_sharpe_vs_active: null, must_beat: [], reject_collapsed: false}}
"""


class Killed(BaseException):
    """What a SIGKILL between two steps looks like to the run: nothing more is recorded."""


@pytest.fixture
def fleet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
          database_url: str) -> Iterator[dict[str, Any]]:
    monkeypatch.setenv("FLEET_HOME", str(tmp_path / "var"))
    monkeypatch.delenv("FLEET_DB_URL", raising=False)
    config = tmp_path / "fleet.yaml"
    config.write_text(CONFIG, encoding="utf-8")
    common = ["--config", str(config), "--db", database_url]
    assert main(["db", "upgrade", *common]) == 0
    opened: list[Any] = []
    yield {"common": common, "config": config, "home": tmp_path / "var", "db": database_url,
           "opened": opened}
    for database in opened:
        database.dispose()


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def context(fleet: dict[str, Any], clock: Any = None) -> Any:
    """What `fleet train run` builds, for injecting kills and a clock."""
    from fleetkit.cli.train_cmds import _context
    from fleetkit.config.loader import load_config
    from fleetkit.store.database import open_database

    loaded = load_config(fleet["config"])
    database = open_database(fleet["db"], require_schema=False, home=loaded.home)
    fleet["opened"].append(database)
    ctx = _context(loaded, database, "rl-btc", "1h", None, fleet["db"], None, quiet=True)
    if clock is not None:
        ctx.clock = clock
    return ctx


def test_a_run_goes_through_every_step_then_skips_then_forces(
        fleet: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    c = fleet["common"]
    code, out, err = cli(capsys, "train", "run", "rl-btc", "--json", *c)
    assert code == 0, err
    run = json.loads(out)["runs"][0]
    assert run["state"] == "succeeded" and run["outcome"] == "succeeded"
    assert [s["step"] for s in run["steps"]] == ["export", "ship", "train", "hash", "fetch",
                                                 "evaluate", "archive", "activate", "publish"]
    assert [s["state"] for s in run["steps"]] == ["done"] * 8 + ["skipped"]
    versions = json.loads(cli(capsys, "model", "list", "rl-btc", "--json", *c)[1])["versions"]
    assert [(v["id"], v["state"]) for v in versions] == [(run["version_id"], "active")]
    models = fleet["home"] / "models" / "rl-btc"
    assert (models / "1h" / "manifest.json").is_file()
    assert (models / "versions" / "1h" / str(run["version_id"]) / "manifest.json").is_file()

    code, out, err = cli(capsys, "train", "run", "rl-btc", *c)
    assert code == 0, err
    assert "already succeeded (attempt 1); skipped" in out

    code, out, err = cli(capsys, "train", "run", "rl-btc", "--force", "--json", *c)
    assert code == 0, err
    again = json.loads(out)["runs"][0]
    assert (again["attempt"], again["state"]) == (2, "succeeded")
    versions = json.loads(cli(capsys, "model", "list", "rl-btc", "--json", *c)[1])["versions"]
    assert [v["state"] for v in versions] == ["active", "archived"]

    code, out, _ = cli(capsys, "train", "status", *c)
    assert code == 0 and "attempt 2 on local: succeeded" in out and "evaluate" in out
    events = _events(fleet["db"])
    assert [k for k in events if k.startswith("training.")] == ["training.succeeded"] * 2


@pytest.mark.parametrize("boundary", ["export", "ship", "train", "hash", "fetch", "evaluate",
                                      "archive", "activate"])
def test_a_run_killed_after_each_step_resumes_once_its_lease_ends(
        fleet: dict[str, Any], boundary: str) -> None:
    from fleetkit.pipeline.runs import run_training

    now = [datetime.now(UTC)]
    ctx = context(fleet, clock=lambda: now[0])

    def kill(step: str) -> None:
        if step == boundary:
            raise Killed(step)

    ctx.between_steps = kill
    with pytest.raises(Killed):
        run_training(ctx)
    # A second process while the claim is live: left alone.
    other = context(fleet, clock=lambda: now[0])
    other.owner = "elsewhere:1"
    assert run_training(other).state == "held"
    # After the lease: taken over, resumed from the step after `boundary`.
    now[0] += timedelta(hours=3)
    done = run_training(other)
    assert done.state == "succeeded", done.run
    assert done.run is not None and done.run.attempt == 1
    versions = other.registry.versions("rl-btc", "1h")
    assert len(versions) == 1 and versions[0].state.value == "active"
    assert done.run.version_id == versions[0].id


def test_a_file_changed_in_transit_rejects_the_model_and_keeps_the_active_one(
        fleet: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    from fleetkit.pipeline.runs import run_training

    c = fleet["common"]
    assert cli(capsys, "train", "run", "rl-btc", *c)[0] == 0
    active = context(fleet).registry.active("rl-btc", "1h")
    assert active is not None

    ctx = context(fleet)

    def corrupt(step: str) -> None:
        if step == "hash":  # after the trainer hashed its files, before the download
            model = ctx.trainer.root / ctx.runs.runs(limit=1)[0].run_id / "models" / "1h"
            target = model / "manifest.json"
            data = bytearray(target.read_bytes())
            data[10] ^= 0x01
            target.write_bytes(bytes(data))

    ctx.between_steps = corrupt
    result = run_training(ctx, force=True)
    assert result.state == "rejected"
    assert result.run is not None and result.run.failed_step == "fetch"
    assert "changed in transit" in result.run.error
    after = ctx.registry.active("rl-btc", "1h")
    assert after is not None and after.id == active.id
    assert len(ctx.registry.versions("rl-btc", "1h")) == 1
    assert "training.rejected" in _events(fleet["db"])
    code, out, _ = cli(capsys, "train", "status", *c)
    assert code == 0
    assert "rejected" in out and "changed in transit" in out


def test_bad_input_is_one_line_exit_2(fleet: dict[str, Any],
                                      capsys: pytest.CaptureFixture[str]) -> None:
    c = fleet["common"]
    code, _, err = cli(capsys, "train", "run", "nobody", *c)
    assert code == 2 and "no bot named 'nobody'" in err
    code, _, err = cli(capsys, "train", "run", "rl-btc", "-t", "4h", *c)
    assert code == 2 and "4h" in err
    code, _, err = cli(capsys, "train", "run", "rl-btc", "--trainer", "gpu", *c)
    assert code == 2 and "no trainer named 'gpu'" in err


def _events(url: str) -> list[str]:
    from fleetkit.sqlutil.engine import make_engine
    from fleetkit.store.schema import events

    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(select(events.c.kind).order_by(events.c.id)).scalars())
    finally:
        engine.dispose()
