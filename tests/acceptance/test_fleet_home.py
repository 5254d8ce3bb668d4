"""One fleet per FLEET_HOME, and homes or paths that cannot be used: a second `fleet up` on
a running fleet's home is refused naming the holder; a home that is a file or cannot be
written, and `fleet init` into a missing directory, are one line with the fix and exit 2."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from fleetkit.runtime.home_lock import LOCK_FILE, LockHolder, hold_fleet_home
from fleetkit.store.database import open_database
from fleetkit.store.schema import events
from fleetkit.testing.loopback import free_port
from tests.acceptance.cli_support import assert_user_error, fleet
from tests.support import eventually


def config(path: Path) -> Path:
    path.write_text(f"""sandbox: {{port: {free_port()}}}
runtime: {{heartbeat_interval_s: 1}}
bots:
  - {{name: a, market: CRYPTO, symbols: ["BTC/USDT"], strategy: buy_and_hold}}
""", encoding="utf-8")
    return path


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    env = {**os.environ, "FLEET_HOME": str(tmp_path / "var"), "FLEET_LOG_FORMAT": "json"}
    env.pop("FLEET_DB_URL", None)
    env.pop("FLEET_CONFIG", None)
    return env


def up(cfg: Path, env: dict[str, str], *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "fleetkit", "up", "--config", str(cfg),
                             "--no-live", *extra], env=env, cwd=cfg.parent,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def holder(home: Path) -> LockHolder | None:
    try:
        return LockHolder.from_text((home / LOCK_FILE).read_text(encoding="utf-8"))
    except OSError:
        return None


def fleet_events(home: Path) -> list[str]:
    """The kinds of the fleet's own events (fleet.started, fleet.stopped), oldest first."""
    database = open_database(f"sqlite:///{home / 'fleet.db'}")
    try:
        with database.engine.connect() as conn:
            rows = conn.execute(events.select().where(events.c.kind.startswith("fleet."))
                                .order_by(events.c.id))
            return [row.kind for row in rows]
    finally:
        database.dispose()


@pytest.fixture
def reaper() -> Iterator[list[psutil.Process]]:
    """Processes a test leaves behind on purpose (a killed fleet's children)."""
    left: list[psutil.Process] = []
    yield left
    for process in left:
        try:
            process.terminate()
        except psutil.NoSuchProcess:
            continue
    _, alive = psutil.wait_procs(left, timeout=15)
    for process in alive:
        process.kill()


@pytest.mark.slow
def test_a_second_fleet_on_the_same_home_is_refused_and_names_the_first(
        tmp_path: Path, env: dict[str, str]) -> None:
    home = tmp_path / "var"
    first = up(config(tmp_path / "first.yaml"), env)
    try:
        eventually(lambda: "fleet.started" in fleet_events(home) if (home / "fleet.db").exists()
                   else False, 90, "the first fleet")
        second = subprocess.run(
            [sys.executable, "-m", "fleetkit", "up", "--config",
             str(config(tmp_path / "second.yaml")), "--no-live", "--for", "5"],
            env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False)
        assert_user_error(second, "another fleet is running", f"pid {first.pid}",
                          socket.gethostname(), "running since", "first.yaml")
        assert len(second.stderr.strip().splitlines()) == 1
        assert fleet_events(home) == ["fleet.started"]  # the second wrote nothing
        children = psutil.Process(first.pid).children(recursive=True)
        assert children
        for child in children:  # only the supervisor holds the lock
            assert not [f for f in child.open_files() if f.path.endswith(LOCK_FILE)]
    finally:
        first.send_signal(signal.SIGTERM)
        output, _ = first.communicate(timeout=60)
    assert first.returncode == 0, output
    assert fleet_events(home) == ["fleet.started", "fleet.stopped"]
    assert holder(home) is None  # nothing stale left for the next reader

    again = fleet("up", "--config", str(tmp_path / "second.yaml"), "--no-live", "--for", "2",
                  cwd=tmp_path)
    assert again.returncode == 0, again.stderr


@pytest.mark.slow
def test_the_kernel_releases_the_home_when_the_fleet_is_killed(
        tmp_path: Path, env: dict[str, str], reaper: list[psutil.Process]) -> None:
    home = tmp_path / "var"
    first = up(config(tmp_path / "fleet.yaml"), env)
    eventually(lambda: (h := holder(home)) is not None and h.pid == first.pid, 60, "the lock")
    eventually(lambda: any("bot" in p.cmdline() for p in
                           psutil.Process(first.pid).children(recursive=True)), 60, "a bot")
    reaper.extend(psutil.Process(first.pid).children(recursive=True))
    first.kill()
    first.communicate(timeout=30)
    # Its bot and broker run on as orphans for the moment; the home is free all the same.
    with hold_fleet_home(home, "test") as taken:
        assert taken.pid == os.getpid()


def test_a_fleet_home_that_is_a_file_is_refused_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "home").write_text("", encoding="utf-8")
    result = fleet("up", "--for", "2", "--no-live", cwd=tmp_path,
                   env={"FLEET_HOME": str(tmp_path / "home")})
    assert_user_error(result, "FLEET_HOME", "is not a directory", "point FLEET_HOME at")
    assert "internal error" not in result.stderr


def test_a_fleet_home_this_user_cannot_write_is_refused_in_one_line(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        home = Path("/sys")  # root writes anywhere except a file system that refuses it
    else:
        home = tmp_path / "read-only"
        home.mkdir()
        home.chmod(0o555)
    result = fleet("up", "--for", "2", "--no-live", cwd=tmp_path, env={"FLEET_HOME": str(home)})
    assert_user_error(result, f"FLEET_HOME {home}", "point FLEET_HOME at a directory")
    assert "internal error" not in result.stderr


def test_init_into_a_missing_directory_says_how_to_create_it(tmp_path: Path) -> None:
    result = fleet("init", "sub/dir/fleet.yaml", cwd=tmp_path)
    assert_user_error(result, "directory sub/dir does not exist", "mkdir -p sub/dir")
    assert not (tmp_path / "sub").exists()
    assert fleet("init", "fleet.yaml", cwd=tmp_path).returncode == 0
    assert_user_error(fleet("init", "fleet.yaml/x.yaml", cwd=tmp_path), "is a file")
