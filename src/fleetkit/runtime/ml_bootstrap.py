"""Learning bots at start-up: their first models, and what happens without the `ml` extra.

First models (`ml.train_if_missing`): an rl_policy bot whose `<models_dir>/<timeframe>/`
lacks a `manifest.json` for one of its timeframes runs `fleet ml train` for those
timeframes when it boots, before its strategy is built, so it trades a model instead of
halting on "holds no model". The training runs as a subprocess:
  - its memory (torch, the environments, the history) is returned to the system when it
    ends, not kept for the bot's life;
  - the bot heartbeats ("training") while it waits, so the supervisor's hang detection
    (heartbeat age against runtime.hang_timeout_s) never takes a long training for a hang;
  - it is started through `runtime.parent_guard` (Linux): a bot killed with SIGKILL takes
    its training with it. `fleet ml train` trains into a temporary folder and swaps it in
    whole, so no half model is ever left where the strategy reads it.
A training that fails or times out is recorded (`ml.train_failed`, error) and the boot goes
on: the strategy is then built refused and halts the bot with the reason at its first bar,
which alerts — never a silent trade. Only whether the manifest exists is checked here (no
imports); a model that is present but corrupt or for other features is refused by the
strategy's own verification, the same way.

Without the extra: a bot process of an rl_policy bot could only halt, so `fleet up` does
not start one and says how to enable it, and `fleet bot run` refuses it in one line.
Whether the extra is there is asked with `importlib.util.find_spec`, which imports
nothing: a plain bot and `fleet up` never load numpy or torch.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from typing import IO, Any

from fleetkit.config.loader import LoadedConfig
from fleetkit.config.ml import MODELS_FROM_REGISTRY, RL_POLICY, ml_timeframes
from fleetkit.config.models import BotSettings, FleetConfig
from fleetkit.core.errors import DatabaseUnavailableError, FleetError
from fleetkit.engine.ports import Event
from fleetkit.runtime.logs import BoundLogger

# The packages of the `ml` extra a learning bot imports (cli.ml_cmds.ML_EXTRA's).
ML_EXTRA = ("torch", "stable_baselines3", "sb3_contrib", "gymnasium", "talib", "numpy")
INSTALL = "pip install -e '.[ml]' -c constraints/torch-cpu.txt"
MANIFEST = "manifest.json"  # ml.model_dir.MANIFEST: a model directory's last file written
TRAINING = "training"  # the heartbeat status while the first models train
BEAT_EVERY_S = 5.0


# --- without the ml extra -------------------------------------------------------------


def missing_ml_package() -> str | None:
    """The first package of the `ml` extra that cannot be found, None when all can (found,
    not imported)."""
    for name in ML_EXTRA:
        try:
            if find_spec(name) is None:
                return name
        except (ImportError, ValueError):  # a broken install is as good as none
            return name
    return None


def learning_bots(config: FleetConfig) -> list[str]:
    return [bot.name for bot in config.bots if bot.strategy == RL_POLICY]


def bots_needing_ml_extra(config: FleetConfig) -> tuple[list[str], str | None]:
    """The rl_policy bots that cannot run here, and the missing package (([], None) when
    the extra is installed or no bot learns)."""
    names = learning_bots(config)
    if not names:
        return [], None
    missing = missing_ml_package()
    return (names, missing) if missing is not None else ([], None)


def not_started_line(names: Sequence[str], missing: str | None) -> str:
    """What `fleet up` prints (and logs) for the learning bots it leaves out."""
    count = f"{len(names)} learning bot{'s' if len(names) != 1 else ''}"
    they = "they need" if len(names) != 1 else "it needs"
    return (f"{count} not started ({', '.join(names)}): {they} the ml extra "
            f"({missing} is missing) — {INSTALL}")


def refused_line(bot: str, missing: str) -> str:
    """Why `fleet bot run BOT` refuses a learning bot here (exit 2)."""
    return (f"bot {bot} runs rl_policy, which needs the ml extra ({missing} is missing) — "
            f"{INSTALL}")


# --- first models ---------------------------------------------------------------------


def missing_timeframes(loaded: LoadedConfig, settings: BotSettings) -> list[str]:
    """The timeframes whose model the bot should train before it trades: none unless it is
    an rl_policy bot with ml.train_if_missing."""
    ml = settings.ml
    if (ml is None or not ml.train_if_missing or settings.strategy != RL_POLICY
            or not reads_models_dir(settings)):
        return []
    folder = Path(ml.models_dir or "")
    return [tf for tf in ml_timeframes(settings, loaded.config.defaults.bar_interval)
            if not (folder / tf / MANIFEST).is_file()]


def reads_models_dir(settings: BotSettings) -> bool:
    """Whether the strategy loads its models from ml.models_dir (the default params.model):
    training there is of no use to a bot whose params.model names another place."""
    model = settings.params.get("model")
    models_dir = settings.ml.models_dir if settings.ml is not None else None
    return (isinstance(model, str) and models_dir is not None
            and Path(model).expanduser().absolute() == Path(models_dir).absolute())


@dataclass(frozen=True, slots=True)
class TrainingOutcome:
    ok: bool
    timeframes: tuple[str, ...]
    seconds: float
    paths: tuple[str, ...] = ()
    error: str = ""  # one line, when not ok
    stopped: bool = False  # the bot was asked to stop meanwhile: no failure to report


class FirstModels:
    """Trains a booting bot's missing models (see the module docstring).

    `beat(status, detail)` is the runner's heartbeat (it renews the lease; LeaseLostError
    ends the wait and the training), `record(event)` writes to the bot's ledger, `stop`
    is set on SIGTERM/SIGINT: the training is stopped and the boot goes on to stop."""

    def __init__(self, loaded: LoadedConfig, settings: BotSettings, db_url: str, *,
                 beat: Callable[[str, str], None], record: Callable[[Event], None],
                 stop: threading.Event, log: BoundLogger) -> None:
        self.loaded = loaded
        self.settings = settings
        self.db_url = db_url
        self._beat = beat
        self._record = record
        self._stop = stop
        self._log = log

    def ensure(self) -> TrainingOutcome | None:
        """Train what is missing; None when nothing was."""
        ml = self.settings.ml
        if (ml is not None and ml.train_if_missing and self.settings.strategy == RL_POLICY
                and not reads_models_dir(self.settings)):
            # A bot on the registry trades only activated versions: a model trained here
            # would still have to be registered and activated (the pipeline's steps), so
            # nothing is trained at boot for it (docs/registry.md "Bots and the registry").
            registry = self.settings.params.get("model") == MODELS_FROM_REGISTRY
            self._log.warning(
                "ml.train_if_missing does nothing: " + (
                    "params.model is registry; train, register and activate a version "
                    f"(`fleet ml train {self.settings.name}`, `fleet model register`, "
                    "`fleet model activate`)" if registry else
                    "params.model names other models than ml.models_dir"),
                action="ml.training", models_dir=ml.models_dir)
        missing = missing_timeframes(self.loaded, self.settings)
        if not missing:
            return None
        outcome = self.train(missing)
        self._report(outcome)
        return outcome

    def train(self, timeframes: list[str]) -> TrainingOutcome:
        """`fleet ml train` once for all of the bot's timeframes, else once per missing
        one (its -t takes one), stopping at the first failure."""
        everything = ml_timeframes(self.settings, self.loaded.config.defaults.bar_interval)
        runs: list[str | None] = [None] if timeframes == everything else list(timeframes)
        ml = self.settings.ml
        deadline = time.monotonic() + (ml.train_timeout_s if ml is not None else 600.0)
        started = time.monotonic()
        paths: list[str] = []
        for timeframe in runs:
            written, error = self._run_once(timeframe, timeframes, deadline)
            if error is not None:
                return TrainingOutcome(False, tuple(timeframes), time.monotonic() - started,
                                       tuple(paths), error, self._stop.is_set())
            paths += written
        return TrainingOutcome(True, tuple(timeframes), time.monotonic() - started,
                               tuple(paths))

    def _run_once(self, timeframe: str | None, all_missing: list[str],
                  deadline: float) -> tuple[list[str], str | None]:
        """One `fleet ml train` subprocess: (model paths, None) or ([], its one line)."""
        from fleetkit.runtime.fleet import child_environment  # late: only learning bots

        argv = [sys.executable, "-m", "fleetkit", "ml", "train", self.settings.name,
                "--no-progress", "--json", *(["-t", timeframe] if timeframe else [])]
        env = {**os.environ, **child_environment(self.loaded, self.db_url)}
        detail = f"training its first models (timeframes {', '.join(all_missing)})"
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            # Files, not pipes: nothing to drain while waiting, however much it writes.
            process = spawn_guarded(argv, env, out, err)
            try:
                code = self._wait(process, deadline, detail)
            finally:
                if process.poll() is None:  # stopped, timed out, or the lease was lost
                    process.kill()
                    process.wait()
            out.seek(0)
            err.seek(0)
            stdout = out.read().decode("utf-8", "replace")
            stderr = err.read().decode("utf-8", "replace")
        if code is None:
            ml = self.settings.ml
            limit = ml.train_timeout_s if ml is not None else 0.0
            return [], ("stopped: the bot was asked to stop" if self._stop.is_set() else
                        f"timed out after {limit:g} s (ml.train_timeout_s): raise it, or "
                        f"train beforehand with `fleet ml train {self.settings.name}`")
        if code != 0:
            return [], _one_line(stdout, stderr, code)
        return _model_paths(stdout), None

    def _wait(self, process: subprocess.Popen[bytes], deadline: float,
              detail: str) -> int | None:
        """Its exit code, heartbeating meanwhile; None when stopped or out of time."""
        next_beat = 0.0
        while True:
            now = time.monotonic()
            if now >= next_beat:
                self._heartbeat(detail)
                next_beat = now + BEAT_EVERY_S
            if self._stop.is_set() or now >= deadline:
                return None
            try:
                return process.wait(timeout=min(1.0, max(0.0, deadline - now)))
            except subprocess.TimeoutExpired:
                continue

    def _heartbeat(self, detail: str) -> None:
        try:
            self._beat(TRAINING, detail)
        except DatabaseUnavailableError as exc:
            # The supervisor judges no hang while the database is down; training goes on.
            self._log.warning("heartbeat failed while training: database unavailable",
                              action="ml.training", error=str(exc))

    def _report(self, outcome: TrainingOutcome) -> None:
        frames = ", ".join(outcome.timeframes)
        data: dict[str, Any] = {"timeframes": list(outcome.timeframes),
                                "seconds": round(outcome.seconds, 1),
                                "paths": list(outcome.paths)}
        if outcome.stopped:
            self._log.info("training its first models stopped: the bot is stopping",
                           action="ml.training", timeframes=frames)
            return
        if outcome.ok:
            self._log.info("trained its first models", action="ml.trained", timeframes=frames,
                           seconds=round(outcome.seconds, 1), paths=",".join(outcome.paths))
            event = Event("ml.trained", f"trained its first models ({frames}) in "
                          f"{outcome.seconds:.0f} s", "info", data=data)
        else:
            self._log.error("training its first models failed", action="ml.train_failed",
                            timeframes=frames, seconds=round(outcome.seconds, 1),
                            error=outcome.error)
            event = Event("ml.train_failed", f"training its first models ({frames}) "
                          f"failed: {outcome.error}", "error", data={**data,
                                                                      "error": outcome.error})
        try:
            self._record(event)
        except FleetError as exc:  # the log line above still says it
            self._log.warning("could not record event", action="event.lost", kind=event.kind,
                              error=str(exc))


def spawn_guarded(argv: Sequence[str], env: dict[str, str], stdout: IO[bytes],
                  stderr: IO[bytes]) -> subprocess.Popen[bytes]:
    """Start argv so that it gets SIGTERM when this process dies, however it dies (Linux:
    runtime.parent_guard, as the supervisor does for its die_with_parent children)."""
    command = list(argv)
    if sys.platform == "linux":
        command = [sys.executable, "-m", "fleetkit.runtime.parent_guard", str(os.getpid()),
                   *command]
    return subprocess.Popen(  # noqa: S603 - argv built by us, no shell
        command, stdout=stdout, stderr=stderr, stdin=subprocess.DEVNULL, env=env)


def _one_line(stdout: str, stderr: str, code: int) -> str:
    """The training's own error: its --json error object, else its last `error:` line,
    else its last line on stderr (a traceback's exception)."""
    try:
        message = json.loads(stdout)["error"]["message"]
        if isinstance(message, str) and message.strip():
            return " ".join(message.split())
    except (ValueError, KeyError, TypeError):
        pass
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    for line in reversed(lines):
        if line.startswith("error: "):
            return line.removeprefix("error: ")
    return lines[-1][:300] if lines else f"`fleet ml train` exited with code {code}"


def _model_paths(stdout: str) -> list[str]:
    try:
        models = json.loads(stdout)["models"]
        return [str(m["path"]) for m in models]
    except (ValueError, KeyError, TypeError):
        return []
