"""A learning bot that follows the model registry (`params.model: registry`, docs/registry.md
"Bots and the registry"): it trades each of its timeframes' **active** version, and switches
at the next bar when another is activated or rolled back to, without a restart.

At start and then at every bar the runner asks `check()`: one query of the registry for the
bot's active version ids (`ModelRegistry.active_ids`). Only when they differ from what the
strategy trades are the versions read with their files' sha256, and each one's files put in
the production side's model area, `<ml.models_dir>/registry/<timeframe>/<version id>/`:
downloaded from the artifact store by `get_dir` (every sha256 checked against the registry
in a temporary sibling, then renamed into place), or, when that directory is there already
(a restart, a rollback to a version kept), re-hashed against the registry before it is used.
The strategy then loads them through its loader (which checks every sha256 against the
manifest again before unpickling) — all timeframes or none — and the runner re-warms its
model state from history before the bar decides. The newest `models.keep_local` (2)
directories per timeframe are kept (the one traded always), older ones deleted.

Failures never trade an unverified file and never stop the bot:
  - no active version for a timeframe: before anything was loaded, the strategy refuses with
    the reason (the bot halts, strategy.error: the alert); once trading, it goes on with what
    it has (a registry cannot normally lose its active version);
  - a version whose files are missing or disagree, an unreachable store, a model the loader
    refuses: the bot keeps trading the version it has, `model.load_failed` is recorded (error,
    the infrastructure alert; once per set of versions, not once per bar) and the switch is
    tried again at the next bar. With nothing loaded yet, the strategy refuses with it.

The artifact store (fsspec ...) is imported here, late, only by a bot that follows the
registry: the runner imports this module only for one (tests/unit/test_architecture.py).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from fleetkit.config.loader import LoadedConfig
from fleetkit.config.ml import ml_timeframes
from fleetkit.config.models import BotSettings
from fleetkit.core.errors import DatabaseUnavailableError
from fleetkit.engine.ports import Event
from fleetkit.runtime.logs import BoundLogger
from fleetkit.store.model_registry import ModelRegistry, ModelVersion

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from fleetkit.artifacts import ArtifactStore

REGISTRY_FOLDER = "registry"  # under ml.models_dir: `fleet ml train` owns <models_dir>/<tf>/
LOAD_FAILED = "model.load_failed"
SWITCHED = "model.switched"


class FollowingStrategy(Protocol):
    """What a strategy that takes its models from the registry offers (RlPolicyStrategy)."""

    @property
    def versions(self) -> dict[str, int]: ...

    def use_models(self, models: Sequence[tuple[str, Path, int]]) -> None: ...

    def refuse(self, reason: str) -> None: ...


class RegistryModels:
    """One bot's registry versions, handed to its strategies (see the module docstring).

    `record(event)` writes to the bot's ledger (and its alert, by kind)."""

    def __init__(self, loaded: LoadedConfig, settings: BotSettings, engine: Engine,
                 strategies: Sequence[FollowingStrategy], *,
                 record: Callable[[Event], None], log: BoundLogger) -> None:
        if settings.ml is None or settings.ml.models_dir is None:  # config refuses this
            raise ValueError(f"bot {settings.name} follows the registry without an ml section")
        self.bot = settings.name
        self.timeframes = ml_timeframes(settings, loaded.config.defaults.bar_interval)
        self.root = Path(settings.ml.models_dir) / REGISTRY_FOLDER
        self.keep = loaded.config.models.keep_local
        self._loaded = loaded
        self._registry = ModelRegistry(engine)
        self._strategies = list(strategies)
        self._record = record
        self._log = log
        self.current: dict[str, int] = {}  # what the strategies trade
        self._reported: tuple[tuple[str, int | None], ...] | None = None
        self._stores: dict[str, ArtifactStore] = {}

    def note(self) -> str:
        """For the heartbeat (`fleet status` reads it back): "models 1h:v12 4h:v11"."""
        if not self.current:
            return "models none"
        return "models " + " ".join(f"{tf}:v{self.current[tf]}" for tf in self.timeframes
                                    if tf in self.current)

    def check(self) -> bool:
        """Ask the registry; when its active versions are not the ones traded, fetch,
        verify and hand them over. True when the strategies changed models (the caller
        warms them up again before the next bar trades)."""
        active = self._registry.active_ids(self.bot)  # the one query a bar
        wanted = {tf: active.get(tf) for tf in self.timeframes}
        if wanted == self.current:
            return False
        key = tuple(sorted(wanted.items()))
        missing = [tf for tf, version in wanted.items() if version is None]
        if missing:
            self._failed(key, f"no active model version of {self.bot} "
                         f"{', '.join(missing)} in the registry: register and activate one "
                         f"(`fleet model register {self.bot} DIR -t {missing[0]}`, then "
                         "`fleet model activate VERSION --reason ...`)", missing=True)
            return False
        chosen = {tf: version for tf, version in wanted.items() if version is not None}
        try:
            handed = [(tf, self._fetch(self._registry.get(version)), version)
                      for tf, version in chosen.items()]
            for strategy in self._strategies:
                strategy.use_models(handed)
        except DatabaseUnavailableError:
            raise  # an outage: the runner pauses and recovers
        except Exception as exc:  # a file that disagrees, a store out of reach, a refusal
            self._failed(key, " ".join(str(exc).split()))
            return False
        before = self.current
        self.current = chosen
        self._reported = None
        self._prune()
        text = ("trading model versions " if not before else "switched to model versions ") \
            + " ".join(f"{tf}:v{v}" for tf, v in chosen.items()) \
            + ("" if not before else " (from " + " ".join(
                f"{tf}:v{v}" for tf, v in before.items()) + ")")
        self._log.info(text, action=SWITCHED, versions=self.note())
        self._record_safely(Event(SWITCHED, text, "info", data={
            "versions": chosen, "previous": before}))
        return True

    # --- the mechanics ----------------------------------------------------------------

    def _fetch(self, version: ModelVersion) -> Path:
        """The version's verified local directory: kept from before and re-hashed, else
        downloaded (and verified) from its artifact store."""
        from fleetkit.artifacts import ArtifactMismatchError, sha256_file

        local = self.root / version.timeframe / str(version.id)
        expected = version.expected
        if not expected:
            raise ArtifactMismatchError(f"model version {version.id} has no files in the "
                                        "registry; it cannot be verified, so it is not used")
        if local.is_dir():
            if all((local / name).is_file() and sha256_file(local / name) == sha
                   for name, sha in expected.items()):
                os.utime(local)  # the newest used: kept by _prune
                return local
            self._log.warning("local copy of a model version disagrees with the registry; "
                              "downloading it again", action="model.refetch",
                              version=version.id, path=str(local))
        self._store(version.store_url).get_dir(version.store_key, local, expected)
        os.utime(local)
        return local

    def _store(self, url: str) -> ArtifactStore:
        """The store the version was put in (not necessarily today's models.store)."""
        if url not in self._stores:
            from fleetkit.config.model_store import open_model_store  # late: fsspec

            self._stores[url] = open_model_store(self._loaded, url)
        return self._stores[url]

    def _failed(self, key: tuple[tuple[str, int | None], ...], reason: str, *,
                missing: bool = False) -> None:
        """Keep what is traded; say it once per set of versions wanted; with nothing
        traded yet, the strategies refuse with the reason (the bot halts)."""
        if not self.current:
            for strategy in self._strategies:
                strategy.refuse(f"rl_policy has no model to trade: {reason}")
        if self._reported == key:
            self._log.warning("model versions still not usable; retrying at the next bar",
                              action=LOAD_FAILED, error=reason)
            return
        self._reported = key
        keeps = (f"; still trading {self.note().removeprefix('models ')}" if self.current
                 else "")
        self._log.error("model versions not usable", action=LOAD_FAILED, error=reason,
                        trading=self.note())
        if missing and not self.current:
            return  # the refusal halts the bot and alerts (strategy.error): said once
        wanted = ", ".join(f"{tf}:v{v}" for tf, v in key if v is not None)
        self._record_safely(Event(
            LOAD_FAILED, f"model versions {wanted or '-'} not used: {reason}{keeps}; "
            "retrying at the next bar", "error", code=f"{LOAD_FAILED}:{wanted}",
            data={"wanted": dict(key), "trading": dict(self.current), "error": reason}))

    def _record_safely(self, event: Event) -> None:
        try:
            self._record(event)
        except DatabaseUnavailableError:
            raise
        except Exception as exc:  # the log line says it still
            self._log.warning("could not record event", action="event.lost", kind=event.kind,
                              error=str(exc))

    def _prune(self) -> None:
        """The newest `keep` directories per timeframe stay (the traded one always)."""
        for timeframe, version in self.current.items():
            folder = self.root / timeframe
            kept = [p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")]
            kept.sort(key=lambda p: (p.name != str(version), -p.stat().st_mtime))
            for old in kept[self.keep:]:
                shutil.rmtree(old, ignore_errors=True)

