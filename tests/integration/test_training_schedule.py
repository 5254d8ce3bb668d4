"""The training pipeline's scheduled jobs (docs/pipeline.md, "Schedules") through the real
scheduler on a manual clock: each job runs `python -m fleetkit train run BOT` as a
subprocess, which trains the period the job fired for (FLEET_JOB_PERIOD): a market-relative
job 45 minutes after NSE's close trains that day (a holiday has no run), an interval job
every 2 hours that slot, a catch-up of a missed close trains the missed day, and a second
tick — or the same period run again — trains nothing."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from fleetkit.cli.app import main
from fleetkit.config.loader import load_config
from fleetkit.runtime.clock import ManualClock
from fleetkit.runtime.fleet import child_environment
from fleetkit.runtime.scheduler import Scheduler, SubprocessRunner
from fleetkit.runtime.scheduler_service import _calendars
from fleetkit.store.database import open_database
from fleetkit.store.jobs import JobStore, RunOwner
from fleetkit.store.schema import job_runs

pytest.importorskip("stable_baselines3", reason="the ml extra trains the model")

FEATURES = {"timeframes": {"1h": ["returns", "rsi"]}, "calendar": []}
ML = (f"{{features: {json.dumps(FEATURES)}, history_bars: 300, steps: 64, n_envs: 1, "
      "window: 8, episode_bars: 64}")
GATE = "{min_sharpe_vs_active: null, must_beat: [], reject_collapsed: false}"
CONFIG = f"""
bots:
  - {{name: rl-btc, market: CRYPTO, symbols: [BTC/USDT], strategy: rl_policy,
     params: {{features: {json.dumps(FEATURES)}}}, bar_interval: 1h, ml: {ML}}}
  - {{name: rl-daily, market: CRYPTO, symbols: [ETH/USDT], strategy: rl_policy,
     params: {{features: {json.dumps(FEATURES)}}}, bar_interval: 1h, ml: {ML}}}
training:
  retries: {{attempts: 1, initial_s: 0, maximum_s: 0}}
  defaults: {{timeout_s: 300, gate: {GATE}}}
  bots:
    rl-btc: {{timeout_s: 300, period_hours: 2, gate: {GATE}}}
jobs:
  - {{name: train-daily, command: "train run rl-daily",
     when: {{market: NSE, at: close, offset_minutes: 45}}, timeout_s: 600}}
  - {{name: train-btc, command: "train run rl-btc", cron: "0 */2 * * *", timeout_s: 600}}
"""


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


def test_scheduled_jobs_train_the_period_they_fired_for_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, database_url: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("FLEET_HOME", str(tmp_path / "var"))
    monkeypatch.delenv("FLEET_DB_URL", raising=False)
    monkeypatch.delenv("FLEET_JOB_PERIOD", raising=False)
    config = tmp_path / "fleet.yaml"
    config.write_text(CONFIG, encoding="utf-8")
    assert main(["db", "upgrade", "--config", str(config), "--db", database_url]) == 0
    loaded = load_config(config)
    database = open_database(database_url, require_schema=False, home=loaded.home)
    try:
        jobs = loaded.config.jobs
        runner = SubprocessRunner(child_environment(loaded, database_url))
        clock = ManualClock(utc(2026, 3, 2, 10, 44))
        scheduler = Scheduler(jobs, JobStore(database.engine), runner, clock=clock,
                              owner=RunOwner("host-a", 1), sessions=_calendars(jobs),
                              first_seen=utc(2026, 3, 2, 10, 44))

        # Monday 2 March 2026: NSE closes 15:30 IST = 10:00 UTC; the job fires at 10:45.
        ran = scheduler.tick(utc(2026, 3, 2, 10, 45, 20))
        assert [(r.job, r.period) for r in ran] == [("train-daily", utc(2026, 3, 2, 10, 45))]
        assert scheduler.tick(utc(2026, 3, 2, 11, 30)) == []  # same period: nothing
        # The 2-hour job's 12:00 slot.
        ran = scheduler.tick(utc(2026, 3, 2, 12, 0, 20))
        assert [(r.job, r.period) for r in ran] == [("train-btc", utc(2026, 3, 2, 12))]
        assert scheduler.tick(utc(2026, 3, 2, 13, 59)) == []
        # Tuesday 3 March is an NSE holiday (Holi): the market-relative job has no fire.
        daily = next(j for j in jobs if j.name == "train-daily")
        assert scheduler.next_fire(daily, utc(2026, 3, 2, 11)) == utc(2026, 3, 4, 10, 45)
        # Down from then until Thursday 09:00 UTC, before its close: Wednesday's missed
        # close is caught up (catch_up: latest) and trains Wednesday, not Thursday; the
        # BTC job catches up its latest slot, 08:00.
        ran = scheduler.tick(utc(2026, 3, 5, 9, 0))
        assert sorted((r.job, r.period) for r in ran) == [
            ("train-btc", utc(2026, 3, 5, 8)), ("train-daily", utc(2026, 3, 4, 10, 45))]
        assert scheduler.tick(utc(2026, 3, 5, 9, 30)) == []

        statuses = _job_rows(database)
        assert [s for _, _, s in statuses if s != "skipped"] == ["succeeded"] * 4, statuses
        assert _training_periods(database) == [
            ("rl-btc", "2026-03-02T12:00Z", 1, "succeeded"),
            ("rl-btc", "2026-03-05T08:00Z", 1, "succeeded"),
            ("rl-daily", "2026-03-02", 1, "succeeded"),
            ("rl-daily", "2026-03-04", 1, "succeeded")]

        # The same period run again (a second scheduler, a hand-run job): the pipeline
        # skips it — nothing trained, nothing registered.
        again = runner.run(daily, utc(2026, 3, 4, 10, 45))
        assert again.ok and "period 2026-03-04 already succeeded" in again.detail
        assert len(_training_periods(database)) == 4
    finally:
        database.dispose()


def test_a_period_not_yet_begun_or_malformed_is_refused_in_one_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("FLEET_HOME", str(tmp_path / "var"))
    config = tmp_path / "fleet.yaml"
    config.write_text(CONFIG, encoding="utf-8")
    db = f"sqlite:///{tmp_path / 'none.db'}"
    for period, expected in (("2999-01-01", "is in the future"),
                             ("yesterday", "give a UTC date")):
        assert main(["train", "run", "rl-btc", "--period", period, "--config", str(config),
                     "--db", db]) == 2
        err = capsys.readouterr().err
        assert expected in err and err.count("\n") == 1
    assert not (tmp_path / "none.db").exists()


def _job_rows(database: Any) -> list[tuple[str, str, str]]:
    with database.engine.connect() as conn:
        found = conn.execute(select(job_runs.c.job, job_runs.c.period_key, job_runs.c.status)
                             .order_by(job_runs.c.job, job_runs.c.period_key)).all()
    return [(r[0], r[1], r[2]) for r in found]


def _training_periods(database: Any) -> list[tuple[str, str, int, str]]:
    from fleetkit.store.training_runs import TrainingRunStore

    runs = TrainingRunStore(database.engine).runs(None, 50)
    return sorted((r.bot, r.period, r.attempt, r.state.value) for r in runs)
