"""The model registry: every trained model version, its files' sha256, where they are
stored, its state, and an audit of every change (docs/registry.md).

    candidate ──activate──▶ active ──(another activated / rolled back from)──▶ archived
        │                     ▲                                                │
        └─reject─▶ rejected   └──────────── rollback (to=…) ◀──────────────────┘
                                                      archived past `keep` ──▶ retired

At most one version per (bot, timeframe) is active; the database holds that (a partial
unique index), so even two operators activating at once cannot make two. Every change of
state is one transaction together with its audit row. The artifact store is not imported
here (adapters stay apart): callers hand in what touches files — a `verify` before a
rollback, a `delete` for retention.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, Row, and_, insert, select, true, update
from sqlalchemy.exc import IntegrityError

from fleetkit.core.errors import ConfigError, UserError
from fleetkit.sqlutil.engine import read_transaction, write_transaction
from fleetkit.store.schema import model_files, model_history, model_versions

MANIFEST = "manifest.json"  # ml.model_dir.MANIFEST, spelled here: the registry reads bytes,
MANIFEST_FORMAT = "fleetkit.ml.model/1"  # never the ml extra
DEFAULT_KEEP_ARCHIVED = 30


class ModelState(StrEnum):
    CANDIDATE = "candidate"
    ACTIVE = "active"
    REJECTED = "rejected"
    ARCHIVED = "archived"
    RETIRED = "retired"


class RegistryError(UserError):
    """A registry operation refused: the message names the version and the fix (exit 2)."""


@dataclass(frozen=True, slots=True)
class ModelFile:
    name: str
    size: int
    sha256: str


@dataclass(frozen=True, slots=True)
class ManifestSummary:
    """What the registry keeps of a model directory's manifest.json."""

    policy: str
    algorithm: str
    feature_set_hash: str
    window_start: datetime
    window_end: datetime
    window_bars: int
    files: dict[str, str]  # name -> sha256
    timeframe: str | None = None


@dataclass(frozen=True, slots=True)
class ModelVersion:
    id: int
    bot: str
    timeframe: str
    policy: str
    algorithm: str
    feature_set_hash: str
    window_start: datetime
    window_end: datetime
    window_bars: int
    metrics: dict[str, Any]
    state: ModelState
    store_url: str
    store_key: str
    manifest_sha256: str
    reason: str
    created_at: datetime
    updated_at: datetime
    activated_at: datetime | None
    files: tuple[ModelFile, ...] = field(default=())

    @property
    def expected(self) -> dict[str, str]:
        """name -> sha256: what the stored files must hash to."""
        return {f.name: f.sha256 for f in self.files}

    @property
    def location(self) -> str:
        return f"{self.store_url.rstrip('/')}/{self.store_key}"

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "bot": self.bot, "timeframe": self.timeframe,
                "policy": self.policy, "algorithm": self.algorithm,
                "feature_set_hash": self.feature_set_hash,
                "training_window": {"start": self.window_start.isoformat(),
                                    "end": self.window_end.isoformat(),
                                    "bars": self.window_bars},
                "metrics": self.metrics, "state": self.state.value,
                "store_url": self.store_url, "store_key": self.store_key,
                "manifest_sha256": self.manifest_sha256, "reason": self.reason,
                "created_at": self.created_at.isoformat(),
                "updated_at": self.updated_at.isoformat(),
                "activated_at": self.activated_at and self.activated_at.isoformat(),
                "files": [{"name": f.name, "size": f.size, "sha256": f.sha256}
                          for f in self.files]}


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    id: int
    version_id: int
    bot: str
    timeframe: str
    action: str
    from_state: str | None
    to_state: str
    previous_active_id: int | None
    actor: str
    reason: str
    at: datetime

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "version": self.version_id, "action": self.action,
                "from": self.from_state, "to": self.to_state,
                "previous_active": self.previous_active_id, "actor": self.actor,
                "reason": self.reason, "at": self.at.isoformat()}


def read_manifest(directory: Path) -> tuple[ManifestSummary, bytes]:
    """The model directory's manifest (as JSON: the registry never imports the ml extra)
    and its bytes; ConfigError naming the fix when it is missing or not one."""
    path = directory / MANIFEST
    try:
        raw = path.read_bytes()
        body = json.loads(raw)
        if body.get("format") != MANIFEST_FORMAT:
            raise ValueError(f"not a {MANIFEST_FORMAT} manifest")
        window = body["training_window"]
        summary = ManifestSummary(
            policy=str(body["policy"]), algorithm=str(body["algorithm"]),
            feature_set_hash=str(body["feature_set_hash"]),
            window_start=_utc(window["start"]), window_end=_utc(window["end"]),
            window_bars=int(window["bars"]),
            files={str(k): str(v) for k, v in body["files"].items()},
            timeframe=body.get("timeframe"))
    except FileNotFoundError:
        raise ConfigError(f"{path} is missing: {directory} is not a model directory (train "
                          "one with `fleet ml train`)") from None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ConfigError(f"{path} is not a readable model manifest ({exc}); train the model "
                          "again") from None
    return summary, raw


def _utc(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


class ModelRegistry:
    """The registry over the fleet database (the operations branch)."""

    def __init__(self, engine: Engine,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._engine = engine
        self._clock = clock

    # --- writing ----------------------------------------------------------------------

    def register(self, bot: str, timeframe: str, manifest: ManifestSummary,
                 manifest_sha256: str, files: Sequence[ModelFile], *, store_url: str,
                 store_key: str, actor: str, metrics: Mapping[str, Any] | None = None,
                 reason: str = "") -> ModelVersion:
        """A new candidate. Refused unless the stored files include every file the
        manifest names with the manifest's sha256 (and the manifest itself)."""
        stored = {f.name: f for f in files}
        if MANIFEST not in stored or stored[MANIFEST].sha256 != manifest_sha256:
            raise RegistryError(f"the stored files of {bot} {timeframe} do not include this "
                                f"{MANIFEST} (sha256 {manifest_sha256}); store it too")
        for name, sha in sorted(manifest.files.items()):
            if name not in stored:
                raise RegistryError(f"{MANIFEST} lists {name}, which was not stored: "
                                    "register the whole model directory")
            if stored[name].sha256 != sha:
                raise RegistryError(f"{name} has sha256 {stored[name].sha256}, {MANIFEST} "
                                    f"says {sha}: the file changed since training; train the "
                                    "model again")
        now = self._clock()
        with write_transaction(self._engine) as conn:
            inserted = conn.execute(insert(model_versions).values(
                bot=bot, timeframe=timeframe, policy=manifest.policy,
                algorithm=manifest.algorithm, feature_set_hash=manifest.feature_set_hash,
                window_start=manifest.window_start, window_end=manifest.window_end,
                window_bars=manifest.window_bars, metrics=dict(metrics or {}),
                state=ModelState.CANDIDATE.value, store_url=store_url, store_key=store_key,
                manifest_sha256=manifest_sha256, reason=reason, created_at=now,
                updated_at=now, activated_at=None)).inserted_primary_key
            version_id = int(inserted[0])  # type: ignore[index]  # never None after insert
            conn.execute(insert(model_files), [
                {"version_id": version_id, "name": f.name, "size": f.size, "sha256": f.sha256}
                for f in sorted(files, key=lambda f: f.name)])
            _audit(conn, version_id, bot, timeframe, "registered", None,
                   ModelState.CANDIDATE, None, actor, reason, now)
        return self.get(version_id)

    def activate(self, version_id: int, *, actor: str, reason: str) -> ModelVersion:
        """Make a candidate (or an archived version) the active one of its bot and
        timeframe; the one active before is archived in the same transaction."""
        return self._make_active(version_id, "activated", actor, reason,
                                 allowed=(ModelState.CANDIDATE, ModelState.ARCHIVED))

    def reject(self, version_id: int, *, actor: str, reason: str) -> ModelVersion:
        """A candidate that must never be activated (a failed checksum or gate)."""
        now = self._clock()
        with write_transaction(self._engine) as conn:
            version = _locked(conn, version_id)
            if version.state is not ModelState.CANDIDATE:
                raise RegistryError(f"model version {version_id} is {version.state}, not a "
                                    "candidate: only candidates are rejected (roll back an "
                                    "active one with `fleet model rollback`)")
            _set_state(conn, version_id, ModelState.REJECTED, reason, now)
            _audit(conn, version_id, version.bot, version.timeframe, "rejected",
                   version.state, ModelState.REJECTED, None, actor, reason, now)
        return self.get(version_id)

    def rollback(self, bot: str, timeframe: str, *, actor: str, reason: str,
                 to: int | None = None,
                 verify: Callable[[ModelVersion], list[str]] | None = None) -> ModelVersion:
        """Make an earlier version active again: `to`, or the one that was active before
        the current one (skipping any since retired or rejected). `verify` re-hashes its
        stored files first: a version whose files disagree is refused, nothing changes."""
        if to is None:
            target = self._previous(bot, timeframe)
        else:
            target = self.get(to)
            if (target.bot, target.timeframe) != (bot, timeframe):
                raise RegistryError(f"model version {to} is {target.bot} {target.timeframe}'s, "
                                    f"not {bot} {timeframe}'s: name a version of this bot "
                                    f"(`fleet model list {bot} --timeframe {timeframe}`)")
        if target.state is not ModelState.ARCHIVED:
            raise RegistryError(f"model version {target.id} is {target.state}: only an "
                                "archived version can be rolled back to")
        if verify is not None:
            problems = verify(target)
            if problems:
                raise RegistryError(f"model version {target.id}'s stored files disagree with "
                                    f"the registry, not rolled back: {problems[0]}"
                                    + (f" (and {len(problems) - 1} more)"
                                       if len(problems) > 1 else ""))
        return self._make_active(target.id, "rolled_back", actor, reason,
                                 allowed=(ModelState.ARCHIVED,))

    def retire_old(self, bot: str, timeframe: str, *, keep: int = DEFAULT_KEEP_ARCHIVED,
                   delete: Callable[[ModelVersion], None], actor: str) -> list[ModelVersion]:
        """Keep the newest `keep` archived versions of (bot, timeframe); each older one is
        marked retired (so nothing can roll back to it) and then its files deleted."""
        if keep < 0:
            raise ValueError("keep must be >= 0")
        archived = [v for v in self.versions(bot, timeframe)
                    if v.state is ModelState.ARCHIVED]
        retired = []
        for version in archived[keep:]:
            now = self._clock()
            with write_transaction(self._engine) as conn:
                current = _locked(conn, version.id)
                if current.state is not ModelState.ARCHIVED:
                    continue  # activated again meanwhile
                text = f"beyond the newest {keep} archived versions"
                _set_state(conn, version.id, ModelState.RETIRED, text, now)
                _audit(conn, version.id, bot, timeframe, "retired", ModelState.ARCHIVED,
                       ModelState.RETIRED, None, actor, text, now)
            delete(version)
            retired.append(self.get(version.id))
        return retired

    # --- reading ----------------------------------------------------------------------

    def get(self, version_id: int) -> ModelVersion:
        with read_transaction(self._engine) as conn:
            found = _versions(conn, model_versions.c.id == version_id)
        if not found:
            raise RegistryError(f"there is no model version {version_id} (see `fleet model "
                                "list BOT`)")
        return found[0]

    def versions(self, bot: str | None = None, timeframe: str | None = None,
                 states: Sequence[ModelState] | None = None) -> list[ModelVersion]:
        """Newest first."""
        conditions = []
        if bot is not None:
            conditions.append(model_versions.c.bot == bot)
        if timeframe is not None:
            conditions.append(model_versions.c.timeframe == timeframe)
        if states is not None:
            conditions.append(model_versions.c.state.in_([s.value for s in states]))
        with read_transaction(self._engine) as conn:
            return _versions(conn, and_(true(), *conditions))

    def active(self, bot: str, timeframe: str) -> ModelVersion | None:
        """The active version with its files' sha256: what a running bot verifies."""
        found = self.versions(bot, timeframe, (ModelState.ACTIVE,))
        return found[0] if found else None

    def active_ids(self, bot: str) -> dict[str, int]:
        """timeframe -> the active version's id: what a running bot asks at every bar, so
        one query on `model_versions` alone (the partial unique index of active versions
        covers it), never the files."""
        with read_transaction(self._engine) as conn:
            rows = conn.execute(select(model_versions.c.timeframe, model_versions.c.id).where(
                model_versions.c.bot == bot,
                model_versions.c.state == ModelState.ACTIVE.value))
            return {str(timeframe): int(version_id) for timeframe, version_id in rows}

    def history(self, version_id: int | None = None, bot: str | None = None,
                timeframe: str | None = None) -> list[HistoryEntry]:
        """Oldest first."""
        query = select(model_history).order_by(model_history.c.id)
        if version_id is not None:
            query = query.where(model_history.c.version_id == version_id)
        if bot is not None:
            query = query.where(model_history.c.bot == bot)
        if timeframe is not None:
            query = query.where(model_history.c.timeframe == timeframe)
        with read_transaction(self._engine) as conn:
            return [HistoryEntry(r.id, r.version_id, r.bot, r.timeframe, r.action,
                                 r.from_state, r.to_state, r.previous_active_id, r.actor,
                                 r.reason, r.at) for r in conn.execute(query)]

    def bots(self) -> list[str]:
        with read_transaction(self._engine) as conn:
            return list(conn.execute(select(model_versions.c.bot).distinct()
                                     .order_by(model_versions.c.bot)).scalars())

    # --- the mechanics ----------------------------------------------------------------

    def _previous(self, bot: str, timeframe: str) -> ModelVersion:
        """Walk back along the chain of activations from the active version: the one each
        was activated over, until an archived one (a retired or rejected one is skipped)."""
        current = self.active(bot, timeframe)
        if current is None:
            raise RegistryError(f"{bot} {timeframe} has no active model version to roll back "
                                "from; activate one with `fleet model activate VERSION`")
        activations = {e.version_id: e for e in self.history(bot=bot, timeframe=timeframe)
                       if e.action == "activated"}  # the latest activation of each wins
        seen = {current.id}
        step = activations.get(current.id)
        while step is not None and step.previous_active_id is not None:
            earlier = step.previous_active_id
            if earlier in seen:
                break
            seen.add(earlier)
            candidate = self.get(earlier)
            if candidate.state is ModelState.ARCHIVED:
                return candidate
            step = activations.get(earlier)
        raise RegistryError(f"{bot} {timeframe} has no earlier archived version to roll "
                            f"back to from version {current.id}; name one with --to "
                            f"(`fleet model list {bot}`)")

    def _make_active(self, version_id: int, action: str, actor: str, reason: str,
                     allowed: tuple[ModelState, ...]) -> ModelVersion:
        now = self._clock()
        try:
            with write_transaction(self._engine) as conn:
                version = _locked(conn, version_id)
                if version.state not in allowed:
                    raise RegistryError(
                        f"model version {version_id} is {version.state}: only "
                        f"{' or '.join(s.value for s in allowed)} versions can be made active")
                previous = conn.execute(
                    select(model_versions.c.id).where(
                        model_versions.c.bot == version.bot,
                        model_versions.c.timeframe == version.timeframe,
                        model_versions.c.state == ModelState.ACTIVE.value)
                    .with_for_update()).scalar_one_or_none()
                if previous is not None:
                    _set_state(conn, previous, ModelState.ARCHIVED,
                               f"replaced by version {version_id}", now)
                    _audit(conn, previous, version.bot, version.timeframe, "archived",
                           ModelState.ACTIVE, ModelState.ARCHIVED, None, actor,
                           f"replaced by version {version_id}: {reason}", now)
                _set_state(conn, version_id, ModelState.ACTIVE, reason, now, activated=True)
                _audit(conn, version_id, version.bot, version.timeframe, action,
                       version.state, ModelState.ACTIVE, previous, actor, reason, now)
        except IntegrityError:
            # Another activation of this bot and timeframe committed first.
            raise RegistryError(f"another activation of model version {version_id}'s bot "
                                "and timeframe ran at the same moment; check `fleet model "
                                "list` and retry") from None
        return self.get(version_id)


def _set_state(conn: Connection, version_id: int, state: ModelState, reason: str,
               now: datetime, *, activated: bool = False) -> None:
    values: dict[str, Any] = {"state": state.value, "reason": reason, "updated_at": now}
    if activated:
        values["activated_at"] = now
    conn.execute(update(model_versions).where(model_versions.c.id == version_id)
                 .values(**values))


def _audit(conn: Connection, version_id: int, bot: str, timeframe: str, action: str,
           from_state: ModelState | None, to_state: ModelState, previous_active: int | None,
           actor: str, reason: str, now: datetime) -> None:
    conn.execute(insert(model_history).values(
        version_id=version_id, bot=bot, timeframe=timeframe, action=action,
        from_state=from_state and from_state.value, to_state=to_state.value,
        previous_active_id=previous_active, actor=actor[:128], reason=reason, at=now))


def _locked(conn: Connection, version_id: int) -> ModelVersion:
    """The version, its row locked for this transaction (PostgreSQL; SQLite's write
    transaction already holds the database's lock)."""
    found = _versions(conn, model_versions.c.id == version_id, lock=True)
    if not found:
        raise RegistryError(f"there is no model version {version_id} (see `fleet model list "
                            "BOT`)")
    return found[0]


def _versions(conn: Connection, condition: Any, *, lock: bool = False) -> list[ModelVersion]:
    query = select(model_versions).where(condition).order_by(model_versions.c.id.desc())
    if lock:
        query = query.with_for_update()
    rows = list(conn.execute(query))
    if not rows:
        return []
    files: dict[int, list[ModelFile]] = {}
    for f in conn.execute(select(model_files).where(
            model_files.c.version_id.in_([r.id for r in rows]))
            .order_by(model_files.c.version_id, model_files.c.name)):
        files.setdefault(int(f.version_id), []).append(ModelFile(f.name, int(f.size), f.sha256))
    return [_version(r, tuple(files.get(int(r.id), ()))) for r in rows]


def _version(row: Row[Any], files: tuple[ModelFile, ...]) -> ModelVersion:
    return ModelVersion(
        id=int(row.id), bot=row.bot, timeframe=row.timeframe, policy=row.policy,
        algorithm=row.algorithm, feature_set_hash=row.feature_set_hash,
        window_start=row.window_start, window_end=row.window_end,
        window_bars=int(row.window_bars), metrics=dict(row.metrics or {}),
        state=ModelState(row.state), store_url=row.store_url, store_key=row.store_key,
        manifest_sha256=row.manifest_sha256, reason=row.reason, created_at=row.created_at,
        updated_at=row.updated_at, activated_at=row.activated_at, files=files)

