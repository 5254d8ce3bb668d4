"""The scheduler against a real database, on SQLite and PostgreSQL: each period runs once
however many schedulers tick, missed periods are caught up by policy exactly once, a dead
runner's claim is taken over once, failures are recorded with an event. Simulated clocks:
nothing here waits for a cron time."""

from __future__ import annotations

import json
import os
import stat
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from fleetkit.cli.app import main
from fleetkit.config.loader import LoadedConfig, parse_config
from fleetkit.config.models import JobSettings
from fleetkit.runtime.clock import ManualClock
from fleetkit.runtime.scheduler import (
    CallableRunner,
    JobCall,
    Scheduler,
    SubprocessRunner,
)
from fleetkit.runtime.scheduler_service import ServiceOptions, run_scheduler
from fleetkit.store.audit import recent_events
from fleetkit.store.fleet import FleetStore
from fleetkit.store.jobs import JobStore, RunOwner, RunStatus
from fleetkit.store.schema import job_runs

T0 = datetime(2026, 3, 2, 0, 30, tzinfo=UTC)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0,
        second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def make_job(name: str, **fields: Any) -> JobSettings:
    return JobSettings.model_validate({"name": name, "command": "record", "cron": "0 * * * *",
                                       **fields})


class Calls:
    """In-process job kinds that record what ran: `record`, `fail`, and `stop`."""

    def __init__(self) -> None:
        self.done: list[tuple[str, datetime]] = []
        self.lock = threading.Lock()

    def record(self, call: JobCall) -> str:
        with self.lock:
            self.done.append((call.job, call.period))
        return f"recorded {call.job}"

    def fail(self, call: JobCall) -> str:
        raise RuntimeError(f"boom in {call.job}")

    def runner(self) -> CallableRunner:
        return CallableRunner({"record": self.record, "fail": self.fail})


def scheduler(db: Any, jobs: list[JobSettings], calls: Calls, clock: ManualClock,
              owner: str = "host-a") -> Scheduler:
    return Scheduler(jobs, JobStore(db.engine), calls.runner(), clock=clock,
                     owner=RunOwner(owner, 1))


def rows(db: Any, job: str) -> list[tuple[str, str, int, str]]:
    with db.engine.connect() as conn:
        found = conn.execute(select(job_runs.c.period_key, job_runs.c.status,
                                    job_runs.c.attempt, job_runs.c.host)
                             .where(job_runs.c.job == job).order_by(job_runs.c.period_key)).all()
    return [(r[0], r[1], r[2], r[3]) for r in found]


# --- the store -----------------------------------------------------------------------------

def test_a_period_can_be_claimed_once(fleet_db: Any) -> None:
    store = JobStore(fleet_db.engine)
    period = utc(2026, 3, 2, 2)
    assert store.claim("nightly", period, RunOwner("a", 1), T0)
    assert not store.claim("nightly", period, RunOwner("b", 2), T0)
    assert store.claim("nightly", period + timedelta(days=1), RunOwner("b", 2), T0)
    assert not store.skip("nightly", period, "late", RunOwner("b", 2), T0)


def test_only_the_attempt_that_owns_a_run_can_finish_it(fleet_db: Any) -> None:
    store = JobStore(fleet_db.engine)
    period = utc(2026, 3, 2, 2)
    store.claim("nightly", period, RunOwner("a", 1), T0)
    (stale,) = store.runs("nightly")
    assert store.take_over(stale, RunOwner("b", 2), T0 + timedelta(hours=2))
    assert not store.take_over(stale, RunOwner("c", 3), T0 + timedelta(hours=2))
    # The first runner wakes up late: its result no longer counts.
    assert not store.finish("nightly", period, attempt=1, status=RunStatus.SUCCEEDED,
                            detail="late", now=T0 + timedelta(hours=3))
    assert store.finish("nightly", period, attempt=2, status=RunStatus.SUCCEEDED, detail="ok",
                        now=T0 + timedelta(hours=3))
    (run,) = store.runs("nightly")
    assert (run.status, run.attempt, run.host, run.detail) == (RunStatus.SUCCEEDED, 2, "b", "ok")
    (taken,) = recent_events(fleet_db.engine, kind="job.taken_over")
    assert taken.severity == "warning" and taken.data["previous_host"] == "a"
    # A takeover is allowed once: a second-attempt claim is never taken over again.
    assert not store.take_over(store.runs("nightly")[0], RunOwner("c", 3), T0)


# --- the scheduler -------------------------------------------------------------------------

def test_two_schedulers_ticking_the_same_period_run_it_once(fleet_db: Any) -> None:
    calls = Calls()
    clock = ManualClock(T0)
    jobs = [make_job("hourly")]
    pair = [scheduler(fleet_db, jobs, calls, clock, "host-a"),
            scheduler(fleet_db, jobs, calls, clock, "host-b")]
    for each in pair:
        assert each.tick(T0) == []  # first sight: a new job waits for its next fire time
    fire = utc(2026, 3, 2, 1, 0, 2)
    barrier = threading.Barrier(2)
    claimed: list[Any] = []

    def tick(each: Scheduler) -> None:
        barrier.wait()
        claimed.extend(each.tick(fire))

    threads = [threading.Thread(target=tick, args=(each,)) for each in pair]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert calls.done == [("hourly", utc(2026, 3, 2, 1))]
    assert len(claimed) == 1
    assert [r[:3] for r in rows(fleet_db, "hourly")] == [
        ("2026-03-02T01:00:00Z", "succeeded", 1)]
    for each in pair:  # and ticking again changes nothing
        assert each.tick(fire + timedelta(seconds=30)) == []
    assert len(calls.done) == 1


def test_a_restart_after_downtime_catches_up_by_policy_exactly_once(fleet_db: Any) -> None:
    calls = Calls()
    clock = ManualClock(T0)
    jobs = [make_job("none", catch_up="none"), make_job("latest", catch_up="latest"),
            make_job("all", catch_up="all", max_catch_up=2)]
    first = scheduler(fleet_db, jobs, calls, clock)
    first.tick(T0)
    first.tick(utc(2026, 3, 2, 1, 0, 1))
    assert sorted(calls.done) == sorted((j.name, utc(2026, 3, 2, 1)) for j in jobs)
    calls.done.clear()
    # Down from 01:00 until 05:30: 02:00, 03:00, 04:00 and 05:00 were missed.
    back = utc(2026, 3, 2, 5, 30)
    for restarted in (scheduler(fleet_db, jobs, calls, clock, "host-a"),
                      scheduler(fleet_db, jobs, calls, clock, "host-b")):
        restarted.tick(back)
        restarted.tick(back + timedelta(seconds=20))
    assert sorted(calls.done) == [("all", utc(2026, 3, 2, 4)), ("all", utc(2026, 3, 2, 5)),
                                  ("latest", utc(2026, 3, 2, 5))]
    assert [r[:2] for r in rows(fleet_db, "none")] == [
        ("2026-03-02T01:00:00Z", "succeeded"), ("2026-03-02T05:00:00Z", "skipped")]
    assert [r[:2] for r in rows(fleet_db, "latest")] == [
        ("2026-03-02T01:00:00Z", "succeeded"), ("2026-03-02T04:00:00Z", "skipped"),
        ("2026-03-02T05:00:00Z", "succeeded")]
    assert [r[:2] for r in rows(fleet_db, "all")] == [
        ("2026-03-02T01:00:00Z", "succeeded"), ("2026-03-02T03:00:00Z", "skipped"),
        ("2026-03-02T04:00:00Z", "succeeded"), ("2026-03-02T05:00:00Z", "succeeded")]
    (skipped,) = [r for r in JobStore(fleet_db.engine).runs("all") if r.status == "skipped"]
    assert "2 missed period(s), 2026-03-02 02:00 UTC to 2026-03-02 03:00 UTC" in skipped.detail


def test_a_crashed_runs_claim_is_taken_over_once_after_its_timeout(fleet_db: Any) -> None:
    calls = Calls()
    store = JobStore(fleet_db.engine)
    period = utc(2026, 3, 2, 2)
    jobs = [make_job("nightly", cron="0 2 * * *", timeout_s=600)]
    # A scheduler claimed 02:00 and was killed mid-run: the row stays `running`.
    assert store.claim("nightly", period, RunOwner("dead-host", 999), period)
    clock = ManualClock(period)
    pair = [scheduler(fleet_db, jobs, calls, clock, "host-a"),
            scheduler(fleet_db, jobs, calls, clock, "host-b")]
    for each in pair:
        assert each.tick(period + timedelta(minutes=5)) == []  # within its timeout: alive
    later = period + timedelta(seconds=600 + 61)
    claimed = [run for each in pair for run in each.tick(later)]
    assert [(r.job, r.period, r.attempt) for r in claimed] == [("nightly", period, 2)]
    assert calls.done == [("nightly", period)]
    assert rows(fleet_db, "nightly") == [("2026-03-02T02:00:00Z", "succeeded", 2, "host-a")]
    (event,) = recent_events(fleet_db.engine, kind="job.taken_over")
    assert "taken over from dead-host:999" in event.message


def test_a_run_whose_takeover_also_died_is_failed_not_retried(fleet_db: Any) -> None:
    calls = Calls()
    store = JobStore(fleet_db.engine)
    period = utc(2026, 3, 2, 2)
    jobs = [make_job("nightly", cron="0 2 * * *", timeout_s=600)]
    store.claim("nightly", period, RunOwner("dead-1", 1), period)
    store.take_over(store.runs("nightly")[0], RunOwner("dead-2", 2), period + timedelta(hours=1))
    clock = ManualClock(period)
    assert scheduler(fleet_db, jobs, calls, clock).tick(period + timedelta(hours=3)) == []
    assert calls.done == []
    (run,) = store.runs("nightly")
    assert (run.status, run.attempt) == (RunStatus.FAILED, 2)
    assert "already a takeover" in run.detail
    (event,) = recent_events(fleet_db.engine, kind="job.failed")
    assert event.data["job"] == "nightly"


def test_a_failed_run_is_recorded_with_a_warning_event(fleet_db: Any) -> None:
    calls = Calls()
    clock = ManualClock(T0)
    each = scheduler(fleet_db, [make_job("flaky", command="fail")], calls, clock)
    each.tick(T0)
    clock.set(utc(2026, 3, 2, 1, 0, 3))
    each.tick(utc(2026, 3, 2, 1, 0, 1))
    (run,) = JobStore(fleet_db.engine).runs("flaky")
    assert run.status is RunStatus.FAILED
    assert run.detail == "RuntimeError: boom in flaky"
    assert run.finished_at == utc(2026, 3, 2, 1, 0, 3)
    (event,) = recent_events(fleet_db.engine, kind="job.failed")
    assert event.severity == "warning"
    assert event.message.startswith("job flaky failed (period 2026-03-02T01:00:00Z")
    assert event.data["detail"] == "RuntimeError: boom in flaky"
    assert [r.job for r in JobStore(fleet_db.engine).failures(T0)] == ["flaky"]


def test_the_service_catches_up_at_start_heartbeats_and_stops(fleet_db: Any,
                                                              tmp_path: Path) -> None:
    now = datetime.now(UTC)
    store = JobStore(fleet_db.engine)
    last = (now - timedelta(minutes=10)).replace(second=0, microsecond=0)
    store.claim("minutely", last, RunOwner("old", 1), last)
    store.finish("minutely", last, attempt=1, status=RunStatus.SUCCEEDED, detail="ok", now=last)
    stop = threading.Event()
    calls = Calls()

    def record_and_stop(call: JobCall) -> str:
        calls.record(call)
        stop.set()
        return "ran"

    config = parse_config('jobs: [{name: minutely, command: "work", cron: "* * * * *"}]',
                          "fleet.yaml")
    loaded = LoadedConfig(config, "fleet.yaml", tmp_path)
    run_scheduler(loaded, fleet_db, "unused://", stop, ServiceOptions(
        heartbeat_interval_s=0.2, runner=CallableRunner({"work": record_and_stop})))
    assert len(calls.done) == 1  # catch_up latest: the newest missed minute, once
    (newest,) = [r for r in store.runs("minutely") if r.status == "succeeded" and r.period > last]
    assert newest.detail == "ran"
    (beat,) = [b for b in FleetStore(fleet_db.engine).heartbeats() if b.component == "scheduler"]
    assert beat.status == "stopped" and beat.cycles >= 1


# --- running commands ----------------------------------------------------------------------

def fake_python(tmp_path: Path, body: str) -> str:
    script = tmp_path / "fake-python"
    script.write_text(f"#!/bin/sh\n{body}\n", encoding="utf-8")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return str(script)


def test_a_command_runs_as_python_m_fleetkit_with_the_job_in_its_environment(
        tmp_path: Path) -> None:
    python = fake_python(tmp_path, 'echo "$@ job=$FLEET_JOB period=$FLEET_JOB_PERIOD db=$DB"')
    runner = SubprocessRunner({"DB": "sqlite:///x.db"}, python=python)
    outcome = runner.run(make_job("recon", command="reconcile --all"), utc(2026, 3, 2, 2))
    assert outcome.ok
    assert outcome.detail == ("-m fleetkit reconcile --all job=recon "
                              "period=2026-03-02T02:00:00Z db=sqlite:///x.db")


def test_a_failing_command_fails_the_run_with_its_output(tmp_path: Path) -> None:
    runner = SubprocessRunner({}, python=fake_python(tmp_path, "echo nope >&2; exit 3"))
    outcome = runner.run(make_job("recon"), utc(2026, 3, 2, 2))
    assert not outcome.ok and outcome.detail == "exit code 3: nope"


def test_a_command_past_its_timeout_is_killed(tmp_path: Path) -> None:
    runner = SubprocessRunner({}, python=fake_python(tmp_path, "echo started; exec sleep 30"))
    outcome = runner.run(make_job("slow", timeout_s=0.3), utc(2026, 3, 2, 2))
    assert not outcome.ok
    assert outcome.detail == "timed out after 0.3s and was killed: started"


# --- the CLI ------------------------------------------------------------------------------

JOBS_YAML = """
jobs:
  - {name: hourly, command: "reconcile --all", cron: "0 * * * *", catch_up: all}
  - {name: nightly, command: "events --limit 5", cron: "0 2 * * *", timezone: Asia/Kolkata}
"""


def test_fleet_jobs_json_shows_schedule_last_run_next_run_and_failures(
        fleet_db: Any, database_url: str, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    config_file = tmp_path / "fleet.yaml"
    config_file.write_text(JOBS_YAML, encoding="utf-8")
    store = JobStore(fleet_db.engine)
    recent = (datetime.now(UTC) - timedelta(hours=1)).replace(minute=0, second=0,
                                                              microsecond=0)
    store.claim("hourly", recent, RunOwner("a", 1), recent)
    store.finish("hourly", recent, attempt=1, status=RunStatus.FAILED, detail="exit code 1: x",
                 now=recent + timedelta(seconds=5))
    assert main(["jobs", "--json", "--config", str(config_file), "--db", database_url]) == 0
    hourly, nightly = json.loads(capsys.readouterr().out)
    assert (hourly["name"], hourly["cron"], hourly["timezone"]) == ("hourly", "0 * * * *", "UTC")
    assert hourly["last_run"]["status"] == "failed"
    assert hourly["last_run"]["period"] == recent.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert [f["detail"] for f in hourly["recent_failures"]] == ["exit code 1: x"]
    assert nightly["timezone"] == "Asia/Kolkata" and nightly["last_run"] is None
    next_run = datetime.fromisoformat(nightly["next_run"])
    assert (next_run.hour, next_run.minute) == (20, 30)  # 02:00 in Kolkata


@pytest.mark.parametrize(("job", "expected"), [
    ('{name: bad, command: "reconcile --all", cron: "61 * * * *"}', "jobs[0] (bad): cron"),
    ('{name: bad, command: "reconcile --all", cron: "0 2 * * *", timezone: Mars/Olympus}',
     "unknown time zone 'Mars/Olympus'"),
    ('{name: bad, command: "reconcil --all", cron: "0 2 * * *"}',
     "job bad: 'reconcil' is not a fleet command"),
    ('{name: bad, command: "up", cron: "0 2 * * *"}', "job bad: `fleet up` runs until stopped"),
])
def test_a_bad_job_stops_the_cli_with_one_line_and_exit_2(
        job: str, expected: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config_file = tmp_path / "fleet.yaml"
    config_file.write_text(f"jobs: [{job}]\n", encoding="utf-8")
    for argv in (["jobs"], ["scheduler", "run"]):
        assert main([*argv, "--config", str(config_file),
                     "--db", f"sqlite:///{tmp_path / 'none.db'}"]) == 2
        err = capsys.readouterr().err
        assert expected in err and err.count("\n") == 1
    assert not os.path.exists(tmp_path / "none.db")


def test_scheduler_tick_runs_the_period_due_now_once(database_url: str, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """What a systemd timer runs: the period that just fired, claimed like the scheduler
    claims it — a second tick (or a scheduler) finds it taken; a failing run exits 1."""
    config = tmp_path / "fleet.yaml"
    config.write_text("""
bots: [{name: b1, market: CRYPTO, symbols: ["BTC/USDT"], strategy: buy_and_hold}]
jobs:
  - {name: every-minute, command: "db current", cron: "* * * * *"}
  - {name: broken, command: "calendar NOWHERE", cron: "* * * * *"}
  - {name: paused, command: "db current", cron: "* * * * *", enabled: false}
""", encoding="utf-8")
    monkeypatch.setenv("FLEET_HOME", str(tmp_path / "var"))
    assert main(["db", "upgrade", "--config", str(config), "--db", database_url]) == 0
    args = ["--config", str(config), "--db", database_url]
    capsys.readouterr()
    if datetime.now(UTC).second > 45:  # both ticks inside one minute: one period due
        time.sleep(61 - datetime.now(UTC).second)
    assert main(["scheduler", "tick", "every-minute", *args]) == 0
    assert "ran 1 period(s)" in capsys.readouterr().out
    assert main(["scheduler", "tick", "every-minute", *args]) == 0
    assert "nothing due" in capsys.readouterr().out
    assert main(["scheduler", "tick", "broken", *args]) == 1
    assert "failed: broken" in capsys.readouterr().out
    assert main(["scheduler", "tick", "nope", *args]) == 2
    assert "no job named 'nope'" in capsys.readouterr().err
    assert main(["scheduler", "tick", "paused", *args]) == 2
    assert "disabled" in capsys.readouterr().err
