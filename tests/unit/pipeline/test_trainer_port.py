"""The Trainer port's pure parts: ssh's failures typed from its stderr, bounded retries of
transient errors only, the config's refusals, the remote command line's quoting. The real
trainers are tested in tests/integration/test_trainers.py."""

from __future__ import annotations

import random
import shlex
import subprocess

import pytest

from fleetkit.config.pipeline import (
    LocalTrainerSettings,
    SshTrainerSettings,
    parse_training_settings,
)
from fleetkit.core.errors import ConfigError, UserError
from fleetkit.pipeline.ssh_trainer import SshTrainer, _classify, remote_word
from fleetkit.pipeline.trainer_factory import build_trainer, trainer_named
from fleetkit.pipeline.trainers import (
    Backoff,
    RunResult,
    TrainerAuthRefused,
    TrainerCommandFailed,
    TrainerConnectionLost,
    TrainerTimeout,
    TrainerUnreachable,
    with_retries,
)


@pytest.mark.parametrize(("stderr", "kind"), [
    ("root@127.0.0.1: Permission denied (publickey).\r\n", TrainerAuthRefused),
    ("Host key verification failed.\r\n", TrainerAuthRefused),
    ("ssh: connect to host 10.8.0.2 port 22: Connection refused\r\n", TrainerUnreachable),
    ("ssh: connect to host gpu-box port 22: Connection timed out\r\n", TrainerUnreachable),
    ("ssh: Could not resolve hostname gpu-box: Name or service not known\r\n",
     TrainerUnreachable),
    ("ssh: connect to host 10.8.0.2 port 22: No route to host\r\n", TrainerUnreachable),
    ("kex_exchange_identification: read: Connection reset by peer\r\n", TrainerUnreachable),
    ("client_loop: send disconnect: Broken pipe\r\n", TrainerConnectionLost),
    ("Timeout, server gpu-box not responding.\r\n", TrainerConnectionLost),
    ("Connection to 10.8.0.2 closed by remote host.\r\n", TrainerConnectionLost),
])
def test_ssh_failures_are_typed_from_stderr(stderr: str, kind: type[Exception]) -> None:
    error = _classify("gpu-box", "gpu-box", stderr, "upload x")
    assert type(error) is kind
    assert "\n" not in str(error) and str(error).startswith("the trainer gpu-box")
    assert isinstance(error, UserError)  # one line, exit 2 once retries are spent


def test_a_255_without_an_ssh_message_is_the_commands_own() -> None:
    assert _classify("gpu-box", "gpu-box", "Traceback ...\nValueError: bad\n", "run") is None


def test_only_unreachable_trainers_are_retried() -> None:
    waits: list[float] = []
    backoff = Backoff(1.0, 4.0, rng=random.Random(1), sleep=waits.append)
    calls: list[int] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise TrainerConnectionLost("gpu-box", "reset")
        return "done"

    assert with_retries(flaky, attempts=3, backoff=backoff) == "done"
    assert len(waits) == 2 and 0.5 <= waits[0] <= 1.0 and 1.0 <= waits[1] <= 2.0

    result = RunResult(1, "", "error: boom", 0.1)
    for error in (TrainerAuthRefused("g", "refused"),
                  TrainerCommandFailed("g", "failed", result),
                  TrainerTimeout("g", "too long", result)):
        calls.clear()

        def fails(error: Exception = error) -> None:
            calls.append(1)
            raise error

        with pytest.raises(type(error)):
            with_retries(fails, attempts=5, backoff=backoff)
        assert len(calls) == 1


def test_the_config_refuses_what_would_reach_ssh_as_an_option() -> None:
    with pytest.raises(ConfigError, match="an ssh host name"):
        parse_training_settings({"trainers": {"gpu": {
            "kind": "ssh", "host": "-oProxyCommand=touch /tmp/x", "python": "python3"}}})
    with pytest.raises(ConfigError, match="Key=value"):
        parse_training_settings({"trainers": {"gpu": {
            "kind": "ssh", "host": "gpu-box", "python": "python3",
            "ssh_options": ["-oProxyCommand=x"]}}})
    with pytest.raises(ConfigError, match=r"training\.trainers\.gpu\.ssh\.python"):
        parse_training_settings({"trainers": {"gpu": {"kind": "ssh", "host": "gpu-box"}}})
    with pytest.raises(ConfigError, match="trainer name"):
        parse_training_settings({"trainers": {"GPU Box": {"kind": "local"}}})
    with pytest.raises(ConfigError, match="kind"):
        parse_training_settings({"trainers": {"gpu": {"kind": "slurm"}}})


def test_the_config_builds_each_kind(tmp_path: object) -> None:
    from pathlib import Path

    home = Path(str(tmp_path))
    training = parse_training_settings({
        "trainers": {"here": {"kind": "local"},
                     "gpu-box": {"kind": "ssh", "host": "gpu-box", "device": "cuda",
                                 "python": "~/fleet/.venv/bin/python",
                                 "ssh_options": ["ProxyJump=bastion"]}},
        "retries": {"attempts": 4, "initial_s": 1, "maximum_s": 8}})
    here = trainer_named(training, "here", home=home)
    assert here.describe() == f"local {home / 'trainer'}"
    gpu = trainer_named(training, "gpu-box", home=home)
    assert (gpu.device, gpu.python) == ("cuda", "~/fleet/.venv/bin/python")
    with pytest.raises(ConfigError, match=r"no trainer named 'nope'.*gpu-box, here"):
        trainer_named(training, "nope", home=home)
    assert parse_training_settings(None).trainers == {
        "local": LocalTrainerSettings(kind="local")}
    local = build_trainer("x", LocalTrainerSettings(kind="local", workdir="/srv/t"),
                          home=home)
    assert local.describe() == "local /srv/t"


def test_ssh_argv_keeps_batch_mode_first_and_user_options_before_defaults() -> None:
    trainer = SshTrainer("gpu-box", SshTrainerSettings(
        kind="ssh", host="me@gpu-box", port=2222, python="python3",
        ssh_options=["ConnectTimeout=3"], identity_file="~/.ssh/id_train"))
    argv = trainer.ssh_argv()
    assert argv[:3] == ["ssh", "-o", "BatchMode=yes"]
    assert argv.index("ConnectTimeout=3") < argv.index("ConnectTimeout=10")
    assert argv[-2:] == ["--", "me@gpu-box"] and "2222" in argv
    assert "IdentitiesOnly=yes" in argv


@pytest.mark.parametrize("path", ["~/fleet/.venv/bin/python", "fleet trainer/x", "~",
                                  "/srv/it's here/$HOME/`x`"])
def test_remote_words_quote_everything_but_a_leading_home(path: str) -> None:
    shown = subprocess.run(["sh", "-c", f"printf %s {remote_word(path)}"],
                           capture_output=True, text=True, check=True,
                           env={"HOME": "/home/u", "PATH": "/usr/bin:/bin"}).stdout
    expected = path.replace("~", "/home/u", 1) if path.startswith("~") else path
    assert shown == expected
    assert shlex.split(remote_word("a b")) == ["a b"]
