"""Market-hours services against a real database (SQLite and PostgreSQL) with real child
processes: started at the open, stopped at the close, off on a holiday, restarted after a
crash, one scheduler at a time, and never left running as an orphan. The calendar clock
is simulated; the processes are not."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import psutil
import pytest
from sqlalchemy import select

from fleetkit.cli.app import main
from fleetkit.config.models import ServiceSettings
from fleetkit.runtime.market_hours import MarketHoursServices
from fleetkit.runtime.supervisor import ChildSpec
from fleetkit.store.fleet import FleetStore
from fleetkit.store.schema import events
from fleetkit.store.services import ServiceLeases
from fleetkit.testing.loopback import free_port
from tests.support import eventually
from tests.unit.runtime.test_market_hours import Weekdays, utc


def monday(hour: int, minute: int = 0, second: int = 0) -> datetime:
    return utc(2, hour, minute) + timedelta(seconds=second)


SLEEPER = [sys.executable, "-c", "import time; time.sleep(120)"]


def collector(**fields: Any) -> ServiceSettings:
    return ServiceSettings.model_validate({"name": "collector", "command": "metrics serve",
                                           "market": "NYSE", "stop_timeout_s": 5, **fields})


def keeper(db: Any, tmp_path: Path, owner: str, argv: list[str] | None = None,
           **options: Any) -> MarketHoursServices:
    def spec(service: ServiceSettings) -> ChildSpec:
        return ChildSpec(service.name, argv or SLEEPER, tmp_path / f"{owner}.log",
                         kind="service", die_with_parent=True)

    return MarketHoursServices([collector()], Weekdays(), ServiceLeases(db.engine, owner),
                               FleetStore(db.engine), spec, host=owner, **options)


def service_events(db: Any) -> list[str]:
    with db.engine.connect() as conn:
        return [row.kind for row in conn.execute(
            select(events.c.kind).where(events.c.kind.like("service.%")).order_by(events.c.id))]


def test_a_service_starts_at_the_open_and_stops_at_the_close(fleet_db: Any,
                                                             tmp_path: Path) -> None:
    services = keeper(fleet_db, tmp_path, "host-a")
    try:
        services.tick(utc(2, 8, 0))  # Monday before the open
        assert services.running() == []
        assert services.next_change() == utc(2, 9, 0)
        services.tick(utc(2, 9, 0))
        assert services.running() == ["collector"]
        pid = services.supervisor.children["collector"].process.pid  # type: ignore[union-attr]
        services.tick(utc(2, 12, 0))  # still open: the same process, not a new one
        assert services.supervisor.children["collector"].process.pid == pid  # type: ignore[union-attr]
        beat = next(b for b in FleetStore(fleet_db.engine).heartbeats()
                    if b.component == "service:collector")
        assert (beat.status, beat.pid) == ("running", pid)
        services.tick(utc(2, 17, 0))  # the close
        assert services.running() == []
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie"
        assert ServiceLeases(fleet_db.engine, "x").holders() == {}  # released at the stop
        assert service_events(fleet_db) == ["service.started", "service.stopped"]
    finally:
        services.stop_all(utc(2, 17, 1))


def test_a_holiday_keeps_it_off(fleet_db: Any, tmp_path: Path) -> None:
    services = MarketHoursServices(
        [collector()], Weekdays(holidays=(utc(3).date(),)), ServiceLeases(fleet_db.engine, "a"),
        FleetStore(fleet_db.engine),
        lambda s: ChildSpec(s.name, SLEEPER, tmp_path / "a.log", kind="service"))
    try:
        for hour in range(0, 24, 2):
            services.tick(utc(3, hour))
            assert services.running() == []
        assert service_events(fleet_db) == []
    finally:
        services.stop_all(utc(4))


def test_a_crash_inside_its_hours_is_restarted(fleet_db: Any, tmp_path: Path) -> None:
    services = keeper(fleet_db, tmp_path, "host-a", backoff_initial_s=0.1)
    try:
        services.tick(utc(2, 10))
        first = services.supervisor.children["collector"].process.pid  # type: ignore[union-attr]
        os.kill(first, signal.SIGKILL)

        def restarted() -> bool:
            services.tick(utc(2, 10, 1))
            child = services.supervisor.children["collector"]
            return child.process is not None and child.process.pid != first

        eventually(restarted, 20, "the crashed service to be restarted")
        assert "service.exited" in service_events(fleet_db)
    finally:
        services.stop_all(utc(2, 11))


def test_two_schedulers_run_it_once_and_the_standby_takes_over(fleet_db: Any,
                                                                tmp_path: Path) -> None:
    first = keeper(fleet_db, tmp_path, "host-a", lease_ttl_s=30)
    second = keeper(fleet_db, tmp_path, "host-b", lease_ttl_s=30)
    try:
        first.tick(monday(10, 0, 0))
        second.tick(monday(10, 0, 0))
        assert (first.running(), second.running()) == (["collector"], [])
        second.tick(monday(10, 0, 20))  # the first still holds a live lease
        assert second.running() == []
        # The first scheduler dies (no more ticks, its child gone with it).
        first.supervisor.stop_one("collector", 5)
        second.tick(monday(10, 0, 29))
        assert second.running() == []
        second.tick(monday(10, 1, 0))  # the lease ran out at 10:00:30
        assert second.running() == ["collector"]
        holder = ServiceLeases(fleet_db.engine, "x").holders()["collector"]
        assert holder.owner == "host-b"
        first.tick(monday(10, 1, 5))  # the first comes back: it may not start a second copy
        assert first.running() == []
    finally:
        first.stop_all(utc(2, 11))
        second.stop_all(utc(2, 11))


def test_a_service_dies_with_its_scheduler_even_on_sigkill(tmp_path: Path) -> None:
    """The scheduler's children are guarded: SIGKILL the parent, the child goes too."""
    parent = subprocess.Popen(
        [sys.executable, "-c",
         "import os, subprocess, sys, time\n"
         "child = subprocess.Popen([sys.executable, '-m', 'fleetkit.runtime.parent_guard',"
         " str(os.getpid()), sys.executable, '-c', 'import time; time.sleep(120)'])\n"
         "print(child.pid, flush=True)\n"
         "time.sleep(120)\n"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        eventually(lambda: "time.sleep(120)" in " ".join(psutil.Process(child).cmdline()), 20,
                   "the guard to become the service")
        parent.kill()
        parent.wait()
        eventually(lambda: not psutil.pid_exists(child)
                   or psutil.Process(child).status() == psutil.STATUS_ZOMBIE, 20,
                   "the orphaned service to be terminated")
    finally:
        parent.kill()
        parent.wait()
        if parent.stdout is not None:
            parent.stdout.close()


def test_the_guard_refuses_bad_arguments() -> None:
    result = subprocess.run([sys.executable, "-m", "fleetkit.runtime.parent_guard", "x"],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 2
    assert "usage" in result.stderr


def test_fleet_services_json_and_a_bad_service_command(database_url: str, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "fleet.yaml"
    config.write_text("""
bots: [{name: b1, market: CRYPTO, symbols: ["BTC/USDT"], strategy: buy_and_hold}]
services:
  - {name: crypto-exporter, command: "metrics serve --port 9999", market: CRYPTO}
  - {name: nse-collector, command: "metrics serve --port 9998", market: NSE,
     start_minutes_before_open: 5, enabled: false}
""", encoding="utf-8")
    monkeypatch.setenv("FLEET_HOME", str(tmp_path / "var"))
    assert main(["db", "upgrade", "--config", str(config), "--db", database_url]) == 0
    capsys.readouterr()
    assert main(["services", "--config", str(config), "--db", database_url, "--json"]) == 0
    listed = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert listed["crypto-exporter"]["should_run"] is True
    assert listed["crypto-exporter"]["status"] == "never"
    assert listed["nse-collector"]["status"] == "disabled"
    assert listed["nse-collector"]["hours"] == "NSE open -5m to close"

    config.write_text(config.read_text(encoding="utf-8").replace("metrics serve --port 9999",
                                                                 "up"), encoding="utf-8")
    assert main(["scheduler", "run", "--config", str(config), "--db", database_url]) == 2
    error = capsys.readouterr().err
    assert "service crypto-exporter" in error and "Traceback" not in error


def test_the_scheduler_process_runs_a_24_7_service_and_stops_it_on_sigterm(
        database_url: str, tmp_path: Path) -> None:
    """`fleet scheduler run` as a real process: the service runs, shows in `fleet services`
    and `fleet status`, and is stopped with the scheduler."""
    config = tmp_path / "fleet.yaml"
    port = free_port()
    config.write_text(f"""
runtime: {{heartbeat_interval_s: 1}}
bots: [{{name: b1, market: CRYPTO, symbols: ["BTC/USDT"], strategy: buy_and_hold}}]
services:
  - {{name: exporter, command: "metrics serve --port {port}", market: CRYPTO}}
""", encoding="utf-8")
    env = {**os.environ, "FLEET_HOME": str(tmp_path / "var"), "FLEET_DB_URL": database_url}
    fleet = [sys.executable, "-m", "fleetkit"]
    subprocess.run([*fleet, "db", "upgrade", "--config", str(config)], env=env, check=True,
                   capture_output=True)
    scheduler = subprocess.Popen([*fleet, "scheduler", "run", "--config", str(config)],
                                 env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def listed() -> dict[str, Any]:
            out = subprocess.run([*fleet, "services", "--config", str(config), "--json"],
                                 env=env, capture_output=True, text=True, check=True).stdout
            return dict(json.loads(out)[0])

        eventually(lambda: listed()["status"] == "running", 60, "the service to run")
        row = listed()
        assert row["held_by"]["pid"] == scheduler.pid
        eventually(lambda: _serves(port), 30, "the service's metrics endpoint")
    finally:
        scheduler.send_signal(signal.SIGTERM)
        assert scheduler.wait(30) == 0
    assert listed()["status"] == "stopped"
    assert not _serves(port)


def _serves(port: int) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as reply:
            return bool(reply.status == 200)
    except OSError:
        return False



def test_a_service_on_a_clock_not_yet_readable_is_left_as_it_is(fleet_db: Any,
                                                               tmp_path: Path) -> None:
    offsets: list[timedelta | None] = [None]
    services = keeper(fleet_db, tmp_path, "host-a", offset_for=lambda s: offsets[0])
    try:
        services.tick(utc(2, 12, 0))  # open on the wall clock, but its clock is unknown
        assert services.running() == []
        offsets[0] = timedelta(0)
        services.tick(utc(2, 12, 1))
        assert services.running() == ["collector"]
        offsets[0] = None  # the sandbox went away: a running collector is not stopped for it
        services.tick(utc(2, 12, 2))
        assert services.running() == ["collector"]
        offsets[0] = -timedelta(hours=5)  # readable again: 12:03 wall is 07:03 venue, closed
        services.tick(utc(2, 12, 3))
        assert services.running() == []
    finally:
        services.stop_all(utc(2, 12, 4))
