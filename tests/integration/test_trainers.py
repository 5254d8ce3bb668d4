"""The Trainer port on real components: the same contract for the LocalTrainer and the
SshTrainer (a real OpenSSH server on a loopback port, tests/integration/sshd.py), then what
only SSH can do wrong (a refused key, a closed port), and a real `fleet ml train` run
remotely through the SSH trainer with its files hashed there and verified here."""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from fleetkit.config.pipeline import SshTrainerSettings
from fleetkit.core.errors import ConfigError
from fleetkit.pipeline.local_trainer import LocalTrainer
from fleetkit.pipeline.ssh_trainer import _RUN, SshTrainer, remote_word
from fleetkit.pipeline.trainers import (
    Backoff,
    Trainer,
    TrainerAuthRefused,
    TrainerCommandFailed,
    TrainerOutOfDisk,
    TrainerTimeout,
    TrainerUnreachable,
    ml_train_argv,
    require_free_bytes,
    with_retries,
)
from tests.integration.sshd import ALIAS, WRONG_KEY_ALIAS, Sshd, free_port, sshd

__all__ = ["sshd"]  # the fixture, imported to be found

KINDS = ("local", "ssh")


def ssh_trainer(server: Sshd, workdir: Path, *, host: str = ALIAS, port: int | None = None,
                name: str = "gpu-box") -> SshTrainer:
    settings = SshTrainerSettings(kind="ssh", host=host, port=port, workdir=str(workdir),
                                  python=sys.executable, device="cpu",
                                  ssh_config=str(server.client_config), connect_timeout_s=5,
                                  operation_timeout_s=60)
    return SshTrainer(name, settings)


@pytest.fixture(autouse=True)
def _no_agent(monkeypatch: pytest.MonkeyPatch) -> None:
    # The user's agent must not offer keys the tests did not choose.
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)


@pytest.fixture(params=KINDS)
def trainer(request: pytest.FixtureRequest, tmp_path: Path) -> Trainer:
    if request.param == "local":
        return LocalTrainer("here", tmp_path / "trainer", device="cpu")
    server: Sshd = request.getfixturevalue("sshd")
    return ssh_trainer(server, tmp_path / "trainer")


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def gone(trainer: Trainer, pid: int, server: Sshd | None) -> bool:
    """Whether pid no longer runs (a zombie waiting for its reaper counts as gone): seen
    through a second ssh connection for the SSH trainer, as an operator would look."""
    if server is not None:
        seen = server.ssh(f"ps -o stat= -p {pid}")
        return seen.returncode != 0 or seen.stdout.strip().startswith("Z")
    try:
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return stat == "Z"


def wait_for(condition: Callable[[], bool], timeout_s: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return condition()


# --- the contract, for every trainer ---------------------------------------------------

WORK = """
import os, pathlib, sys
data = pathlib.Path(sys.argv[1]).read_bytes()
print("read", len(data), "bytes", flush=True)
print("progress 50%", end="\\r", file=sys.stderr, flush=True)
out = pathlib.Path("out/model.bin")
out.parent.mkdir(exist_ok=True)
out.write_bytes(data[::-1] + os.environ["TAG"].encode())
print("wrote", out, flush=True)
"""


def test_upload_run_hash_on_the_trainer_and_download(trainer: Trainer,
                                                     tmp_path: Path) -> None:
    first = trainer.prepare("run-1")
    assert trainer.prepare("run-1") == first  # idempotent
    assert first.startswith("/") and first.endswith("/run-1")
    source = tmp_path / "export.bin"
    source.write_bytes(os.urandom(300_000) + b"\n\x00 spaces and 'quotes' $HOME")
    trainer.upload(source, "run-1/in/export one.bin")
    trainer.upload(source, "run-1/in/export one.bin")  # again: replaced whole
    assert trainer.sha256(["run-1/in/export one.bin"]) == {
        "run-1/in/export one.bin": sha256_of(source)}

    lines: list[tuple[str, str]] = []
    result = trainer.run([trainer.python, "-c", WORK, "in/export one.bin"], timeout_s=60,
                         cwd="run-1", env={"TAG": "it's $TAG; `x`"},
                         on_line=lambda stream, line: lines.append((stream, line)))
    assert result.exit_code == 0, result.stderr_tail
    assert ("stdout", f"read {source.stat().st_size} bytes") in lines
    assert ("stderr", "progress 50%") in lines
    assert "wrote out/model.bin" in result.stdout_tail

    assert trainer.list_files("run-1") == ["run-1/in/export one.bin", "run-1/out/model.bin"]
    remote = trainer.sha256(["run-1/out/model.bin"])
    back = tmp_path / "back" / "model.bin"
    trainer.download("run-1/out/model.bin", back)
    assert back.read_bytes() == source.read_bytes()[::-1] + b"it's $TAG; `x`"
    assert remote == {"run-1/out/model.bin": sha256_of(back)}
    assert not list(back.parent.glob("*.partial"))

    assert require_free_bytes(trainer, 1) > 1
    with pytest.raises(TrainerOutOfDisk, match="free some space"):
        require_free_bytes(trainer, 1 << 62)

    trainer.cleanup("run-1")
    trainer.cleanup("run-1")  # nothing left: no error
    with pytest.raises(TrainerCommandFailed):
        trainer.list_files("run-1")


def test_a_failing_command_and_a_missing_file(trainer: Trainer, tmp_path: Path) -> None:
    trainer.prepare("run-2")
    failing = [trainer.python, "-c",
               "import sys; print('working'); print('step 1', file=sys.stderr); "
               "sys.exit('error: the bot rl-btc has no ml: section')"]
    with pytest.raises(TrainerCommandFailed) as caught:
        trainer.run(failing, timeout_s=60, cwd="run-2")
    assert caught.value.result.exit_code == 1
    assert str(caught.value).endswith("exited with code 1: error: the bot rl-btc has no ml: "
                                      "section")
    assert "working" in caught.value.result.stdout_tail
    assert not isinstance(caught.value, TrainerUnreachable)  # never retried

    unchecked = trainer.run(failing, timeout_s=60, check=False)
    assert unchecked.exit_code == 1
    # ssh's own exit code, from the command: not mistaken for a lost connection.
    assert trainer.run([trainer.python, "-c", "import sys; sys.exit(255)"], timeout_s=60,
                       check=False).exit_code == 255

    with pytest.raises(TrainerCommandFailed, match="No such file"):
        trainer.sha256(["run-2/missing.bin"])
    with pytest.raises(TrainerCommandFailed):
        trainer.download("run-2/missing.bin", tmp_path / "x")
    assert not (tmp_path / "x").exists()
    with pytest.raises(TrainerCommandFailed, match=r"not found|No such file|cannot start"):
        trainer.run(["no-such-program-fleetkit"], timeout_s=30)


SLEEPER = """
import os, pathlib, subprocess, sys, time
child = subprocess.Popen(["sleep", "60"])
pathlib.Path("pids").write_text(f"{os.getpid()} {child.pid}")
print("started", flush=True)
time.sleep(60)
"""


def test_a_timeout_kills_the_command_and_its_children_on_the_trainer(
        trainer: Trainer, request: pytest.FixtureRequest) -> None:
    root = Path(trainer.prepare("run-3"))
    started = time.monotonic()
    lines: list[str] = []
    with pytest.raises(TrainerTimeout, match="ran past its limit of 3 s") as caught:
        trainer.run([trainer.python, "-c", SLEEPER], timeout_s=3, cwd="run-3",
                    on_line=lambda _stream, line: lines.append(line))
    assert time.monotonic() - started < 20
    assert lines == ["started"]  # streamed before the kill
    assert caught.value.result.exit_code == -1
    server = request.getfixturevalue("sshd") if isinstance(trainer, SshTrainer) else None
    pids = [int(p) for p in (root / "pids").read_text().split()]  # loopback: same disk
    for pid in pids:
        assert wait_for(lambda pid=pid: gone(trainer, pid, server)), f"{pid} still runs"


def test_names_that_could_escape_the_working_directory_are_refused(trainer: Trainer,
                                                                   tmp_path: Path) -> None:
    source = tmp_path / "f"
    source.write_text("x")
    for name in ("../x", "/etc/passwd", "a/../../x", "-rf", "a//b", ""):
        with pytest.raises(ConfigError, match="remote name"):
            trainer.upload(source, name)
    with pytest.raises(ConfigError, match="run id"):
        trainer.prepare("../up")


# --- SSH only ---------------------------------------------------------------------------


def test_a_refused_key_fails_at_once_without_retries(sshd: Sshd, tmp_path: Path) -> None:
    trainer = ssh_trainer(sshd, tmp_path / "w", host=WRONG_KEY_ALIAS)
    calls: list[int] = []
    waits: list[float] = []

    def prepare() -> str:
        calls.append(1)
        return trainer.prepare("run-1")

    started = time.monotonic()
    with pytest.raises(TrainerAuthRefused) as caught:
        with_retries(prepare, attempts=5, backoff=Backoff(0.01, 0.02, sleep=waits.append))
    assert (len(calls), waits) == (1, [])
    assert time.monotonic() - started < 10
    message = str(caught.value)
    assert message.startswith(f"the trainer gpu-box refused the key for {WRONG_KEY_ALIAS} "
                              "(")
    assert "Permission denied" in message and "ssh-add" in message
    assert caught.value.exit_code == 2  # a user error at the CLI
    assert "\n" not in message


def test_a_closed_port_is_unreachable_after_bounded_retries(sshd: Sshd,
                                                            tmp_path: Path) -> None:
    trainer = ssh_trainer(sshd, tmp_path / "w", host="127.0.0.1", port=free_port())
    calls: list[int] = []
    waits: list[float] = []
    retried: list[int] = []

    def free() -> int:
        calls.append(1)
        return trainer.free_bytes()

    with pytest.raises(TrainerUnreachable) as caught:
        with_retries(free, attempts=3, backoff=Backoff(0.01, 0.04, sleep=waits.append),
                     on_retry=lambda attempt, _error, _delay: retried.append(attempt))
    assert len(calls) == 3 and len(waits) == 2 and retried == [1, 2]
    assert all(0.005 <= w <= 0.04 for w in waits)
    assert "does not answer" in str(caught.value)
    assert "Connection refused" in str(caught.value)
    assert caught.value.exit_code == 2


def test_the_connection_going_away_kills_the_remote_command(sshd: Sshd,
                                                            tmp_path: Path) -> None:
    """The pipeline killed mid-training: its ssh goes with it (parent_guard) and the
    trainer's wrapper kills the training, so no orphan races the next run."""
    trainer = ssh_trainer(sshd, tmp_path / "w")
    root = Path(trainer.prepare("run-9"))
    # The command line exactly as run() sends it, from a client this test can kill.
    line = " ".join(["sh", "-c", shlex.quote(_RUN), "sh", remote_word(str(tmp_path / "w")),
                     "run-9", remote_word(sys.executable), "-c", shlex.quote(SLEEPER)])
    with subprocess.Popen([*trainer.ssh_argv(), line], stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE) as client:
        assert client.stdout is not None
        assert client.stdout.readline().strip() == b"started"
        pids = [int(p) for p in (root / "pids").read_text().split()]
        client.kill()  # as SIGKILL of the pipeline takes its guarded ssh
        client.wait()
    for pid in pids:
        assert wait_for(lambda pid=pid: gone(trainer, pid, sshd)), f"{pid} still runs"


TINY_BOT = {"timeframes": {"1h": ["returns", "rsi"]}, "calendar": []}
TINY_CONFIG = f"""
bots:
  - name: rl-btc
    market: CRYPTO
    symbols: [BTC/USDT]
    strategy: rl_policy
    params: {{features: {json.dumps(TINY_BOT)}}}
    bar_interval: 1h
    allow_short: true
    ml:
      features: {json.dumps(TINY_BOT)}
      history_bars: 300
      steps: 128
      n_envs: 1
      window: 8
      episode_bars: 64
"""


def test_fleet_ml_train_runs_on_the_ssh_trainer_and_its_files_verify_here(
        sshd: Sshd, tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from fleetkit.ml.model_dir import verify_model_dir

    trainer = ssh_trainer(sshd, tmp_path / "trainer")
    workdir = trainer.prepare("rl-btc-2026-12-08")
    config = tmp_path / "fleet.yaml"
    config.write_text(TINY_CONFIG, encoding="utf-8")
    trainer.upload(config, "rl-btc-2026-12-08/fleet.yaml")
    lines: list[str] = []
    result = trainer.run(ml_train_argv(trainer, "rl-btc", config_path=f"{workdir}/fleet.yaml",
                                       extra=["--source", "sandbox"]),
                         timeout_s=240, cwd="rl-btc-2026-12-08",
                         env={"FLEET_HOME": f"{workdir}/home"},
                         on_line=lambda _stream, line: lines.append(line))
    report = json.loads(result.stdout_tail)
    [model] = report["models"]
    assert (model["device"], model["steps"], model["path"]) == (
        "cpu", 128, f"{workdir}/home/models/rl-btc/1h")

    names = trainer.list_files("rl-btc-2026-12-08/home/models/rl-btc/1h")
    assert {n.rsplit("/", 1)[1] for n in names} >= {"manifest.json", "model.zip",
                                                     "normalisation.json"}
    on_trainer = trainer.sha256(names)
    here = tmp_path / "arrived" / "1h"
    for name in names:
        trainer.download(name, here / name.rsplit("/", 1)[1])
        assert sha256_of(here / name.rsplit("/", 1)[1]) == on_trainer[name]
    manifest = verify_model_dir(here)  # the manifest's own checksums agree too
    assert manifest.steps == 128
    trainer.cleanup("rl-btc-2026-12-08")
