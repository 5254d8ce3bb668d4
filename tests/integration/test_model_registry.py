"""The model registry on SQLite and PostgreSQL: candidates, one active version per bot and
timeframe (held by the database itself), activation and rollback with their audit,
refusals that change nothing, retention."""

from __future__ import annotations

import hashlib
import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from fleetkit.store.database import Database
from fleetkit.store.model_registry import (
    MANIFEST,
    ManifestSummary,
    ModelFile,
    ModelRegistry,
    ModelState,
    ModelVersion,
    RegistryError,
)

T0 = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)
ACTOR = "cli:test@host"


def sha(data: str) -> str:
    return hashlib.sha256(data.encode()).hexdigest()


@pytest.fixture
def registry(fleet_db: Database) -> ModelRegistry:
    ticks = itertools.count()
    return ModelRegistry(fleet_db.engine, clock=lambda: T0 + timedelta(minutes=next(ticks)))


def candidate(registry: ModelRegistry, bot: str = "rl-btc", timeframe: str = "1h",
              seed: str = "", **overrides: Any) -> ModelVersion:
    files = {"model.zip": sha(f"model{seed}{bot}{timeframe}{next(_serial)}"),
             "normalisation.json": sha(f"norm{seed}")}
    manifest = ManifestSummary("mlp", "PPO", "f" * 64, T0 - timedelta(days=30), T0, 720,
                               files, timeframe)
    stored = [ModelFile(n, 100, s) for n, s in files.items()]
    stored.append(ModelFile(MANIFEST, 10, sha(f"manifest{files}")))
    kwargs: dict[str, Any] = {"store_url": "file:///store", "store_key":
                              f"{bot}/{timeframe}/{next(_serial)}", "actor": ACTOR,
                              "metrics": {"sharpe": 1.5}}
    kwargs.update(overrides)
    return registry.register(bot, timeframe, manifest, sha(f"manifest{files}"), stored,
                             **kwargs)


_serial = itertools.count()


def states(registry: ModelRegistry, bot: str = "rl-btc") -> dict[int, str]:
    return {v.id: v.state.value for v in registry.versions(bot)}


def test_register_and_activate_archive_the_previous_one_with_an_audit(
        registry: ModelRegistry) -> None:
    first = candidate(registry)
    assert first.state is ModelState.CANDIDATE and first.metrics == {"sharpe": 1.5}
    assert sorted(f.name for f in first.files) == ["manifest.json", "model.zip",
                                                   "normalisation.json"]
    assert registry.active("rl-btc", "1h") is None
    registry.activate(first.id, actor=ACTOR, reason="first model")
    second = candidate(registry)
    done = registry.activate(second.id, actor=ACTOR, reason="daily retrain")
    assert done.state is ModelState.ACTIVE and done.activated_at is not None
    assert states(registry) == {second.id: "active", first.id: "archived"}
    active = registry.active("rl-btc", "1h")
    assert active is not None and active.id == second.id
    assert active.expected == {f.name: f.sha256 for f in second.files}
    assert registry.versions("rl-btc")[0].id == second.id  # newest first
    audit = [(h.version_id, h.action, h.from_state, h.to_state, h.previous_active_id)
             for h in registry.history(bot="rl-btc", timeframe="1h")]
    assert audit == [(first.id, "registered", None, "candidate", None),
                     (first.id, "activated", "candidate", "active", None),
                     (second.id, "registered", None, "candidate", None),
                     (first.id, "archived", "active", "archived", None),
                     (second.id, "activated", "candidate", "active", first.id)]
    assert {h.actor for h in registry.history()} == {ACTOR}


def test_each_bot_and_timeframe_has_its_own_active_version(registry: ModelRegistry) -> None:
    ids = [candidate(registry, bot, frame).id
           for bot, frame in (("rl-btc", "1h"), ("rl-btc", "15m"), ("rl-eth", "1h"))]
    for version_id in ids:
        registry.activate(version_id, actor=ACTOR, reason="go")
    assert all(registry.get(i).state is ModelState.ACTIVE for i in ids)


def test_the_database_refuses_a_second_active_version_even_by_a_direct_write(
        registry: ModelRegistry, fleet_db: Database) -> None:
    first, second = candidate(registry), candidate(registry)
    registry.activate(first.id, actor=ACTOR, reason="go")
    with pytest.raises(IntegrityError), fleet_db.engine.begin() as conn:
        conn.execute(text("UPDATE model_versions SET state = 'active' WHERE id = :id"),
                     {"id": second.id})
    with pytest.raises(IntegrityError), fleet_db.engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO model_versions (bot, timeframe, policy, algorithm, feature_set_hash, "
            "window_start, window_end, window_bars, metrics, state, store_url, store_key, "
            "manifest_sha256, reason, created_at, updated_at) SELECT bot, timeframe, policy, "
            "algorithm, feature_set_hash, window_start, window_end, window_bars, metrics, "
            "'active', store_url, store_key, manifest_sha256, reason, created_at, updated_at "
            "FROM model_versions WHERE id = :id"), {"id": first.id})
    with pytest.raises(IntegrityError), fleet_db.engine.begin() as conn:
        conn.execute(text("UPDATE model_versions SET state = 'live' WHERE id = :id"),
                     {"id": second.id})
    assert states(registry) == {second.id: "candidate", first.id: "active"}


def test_rollback_walks_back_the_activations_and_to_a_named_version(
        registry: ModelRegistry) -> None:
    v1, v2, v3 = (candidate(registry) for _ in range(3))
    for version in (v1, v2, v3):
        registry.activate(version.id, actor=ACTOR, reason="daily")
    checked: list[int] = []

    def verify(version: ModelVersion) -> list[str]:
        checked.append(version.id)
        return []

    assert registry.rollback("rl-btc", "1h", actor=ACTOR, reason="v3 trades badly",
                             verify=verify).id == v2.id
    assert registry.rollback("rl-btc", "1h", actor=ACTOR, reason="so does v2",
                             verify=verify).id == v1.id
    assert checked == [v2.id, v1.id]
    with pytest.raises(RegistryError, match="no earlier archived version"):
        registry.rollback("rl-btc", "1h", actor=ACTOR, reason="again")
    assert registry.rollback("rl-btc", "1h", actor=ACTOR, reason="v3 was fine after all",
                             to=v3.id).id == v3.id
    assert states(registry) == {v3.id: "active", v2.id: "archived", v1.id: "archived"}
    last = registry.history(bot="rl-btc")[-1]
    assert (last.action, last.version_id, last.previous_active_id, last.reason) == (
        "rolled_back", v3.id, v1.id, "v3 was fine after all")
    # The chain from v3 is its own activation's: back to v2.
    assert registry.rollback("rl-btc", "1h", actor=ACTOR, reason="x").id == v2.id


def test_refusals_change_nothing(registry: ModelRegistry) -> None:
    v1, v2 = candidate(registry), candidate(registry)
    other = candidate(registry, "rl-eth", "1h")
    fresh = candidate(registry)
    with pytest.raises(RegistryError, match="no active model version to roll back"):
        registry.rollback("rl-btc", "1h", actor=ACTOR, reason="x")
    registry.activate(v1.id, actor=ACTOR, reason="go")
    registry.activate(v2.id, actor=ACTOR, reason="go")
    before = (states(registry), len(registry.history()))
    with pytest.raises(RegistryError, match="there is no model version 9999"):
        registry.rollback("rl-btc", "1h", actor=ACTOR, reason="x", to=9999)
    with pytest.raises(RegistryError, match=f"model version {other.id} is rl-eth 1h's, not "
                       "rl-btc 1h's"):
        registry.rollback("rl-btc", "1h", actor=ACTOR, reason="x", to=other.id)
    with pytest.raises(RegistryError, match="is rl-btc 1h's, not rl-btc 15m's"):
        registry.rollback("rl-btc", "15m", actor=ACTOR, reason="x", to=v1.id)
    with pytest.raises(RegistryError, match="is candidate: only an archived version"):
        registry.rollback("rl-btc", "1h", actor=ACTOR, reason="x", to=fresh.id)
    with pytest.raises(RegistryError, match=r"stored files disagree.*model\.zip has sha256"):
        registry.rollback("rl-btc", "1h", actor=ACTOR, reason="x",
                          verify=lambda v: ["file:///store/k/model.zip has sha256 00, the "
                                            "registry says 11"])
    with pytest.raises(RegistryError, match="not a candidate"):
        registry.reject(v2.id, actor=ACTOR, reason="bad")
    assert (states(registry), len(registry.history())) == before
    registry.reject(fresh.id, actor=ACTOR, reason="failed the evaluation gate")
    with pytest.raises(RegistryError, match="is rejected: only candidate or archived"):
        registry.activate(fresh.id, actor=ACTOR, reason="anyway")
    assert registry.get(fresh.id).reason == "failed the evaluation gate"


def test_a_candidate_whose_files_disagree_with_its_manifest_is_not_registered(
        registry: ModelRegistry) -> None:
    manifest = ManifestSummary("mlp", "PPO", "f" * 64, T0, T0, 10,
                               {"model.zip": sha("a"), "normalisation.json": sha("n")})
    good = [ModelFile("model.zip", 1, sha("a")), ModelFile("normalisation.json", 1, sha("n")),
            ModelFile(MANIFEST, 1, sha("m"))]
    common: dict[str, Any] = {"store_url": "file:///s", "store_key": "k", "actor": ACTOR}
    with pytest.raises(RegistryError, match=r"model\.zip has sha256 .* says"):
        registry.register("rl-btc", "1h", manifest, sha("m"),
                          [ModelFile("model.zip", 1, sha("changed")), *good[1:]], **common)
    with pytest.raises(RegistryError, match=r"lists normalisation\.json, which was not stored"):
        registry.register("rl-btc", "1h", manifest, sha("m"), [good[0], good[2]], **common)
    with pytest.raises(RegistryError, match=r"do not include this manifest\.json"):
        registry.register("rl-btc", "1h", manifest, sha("other"), good, **common)
    assert registry.versions() == []


def test_retention_keeps_the_newest_archived_versions_and_deletes_the_rest(
        registry: ModelRegistry) -> None:
    versions = [candidate(registry) for _ in range(6)]
    for version in versions:
        registry.activate(version.id, actor=ACTOR, reason="daily")
    eth = candidate(registry, "rl-eth")
    registry.activate(eth.id, actor=ACTOR, reason="daily")
    deleted: list[str] = []
    retired = registry.retire_old("rl-btc", "1h", keep=2, actor="pipeline",
                                  delete=lambda v: deleted.append(v.store_key))
    # v6 active, v5 and v4 archived (kept), v3..v1 retired, oldest last.
    assert [v.id for v in retired] == [versions[2].id, versions[1].id, versions[0].id]
    assert deleted == [versions[i].store_key for i in (2, 1, 0)]
    assert states(registry) == {versions[5].id: "active", versions[4].id: "archived",
                                versions[3].id: "archived", versions[2].id: "retired",
                                versions[1].id: "retired", versions[0].id: "retired"}
    assert registry.get(eth.id).state is ModelState.ACTIVE
    with pytest.raises(RegistryError, match="is retired: only an archived version"):
        registry.rollback("rl-btc", "1h", actor=ACTOR, reason="x", to=versions[0].id)
    assert registry.retire_old("rl-btc", "1h", keep=2, actor="pipeline",
                               delete=lambda v: deleted.append(v.store_key)) == []
    audit = registry.history(version_id=versions[0].id)[-1]
    assert (audit.action, audit.actor) == ("retired", "pipeline")
