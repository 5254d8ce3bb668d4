"""Schema migrations by area: upgrade, report, and refuse to run against the wrong schema.

The schema is three Alembic branches, one per area, each with a version table of its own:

    branch       version table                 revisions          holds
    trading      alembic_version               0001 .. 0012       everything a bot uses
    operations   alembic_version_operations    operations_0001..  registry, pipeline, backups
    market_data  alembic_version_market_data   market_data_0001.. bars, option chains

Separate version tables let each branch be checked, upgraded and placed on its own: a bot
checks only `trading` (a database whose other branches are behind or ahead does not stop
it), `market_data` may live in a database of its own, and a revision id this code does not
know is pinned to its branch by the table it sits in. Trading keeps the table and the ids it
always had, so a database from before the split upgrades in place (and older fleetkits still
read it). Branches never depend on each other: they need not share a database.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine, column, inspect, select, table, text

from fleetkit.core.errors import SchemaMismatchError
from fleetkit.sqlutil.engine import read_transaction, write_transaction

if TYPE_CHECKING:
    from alembic.config import Config

TRADING = "trading"
OPERATIONS = "operations"
MARKET_DATA = "market_data"


@dataclass(frozen=True, slots=True)
class Branch:
    name: str  # also its Alembic branch label
    version_table: str
    # Every revision of the branch, oldest first. Processes check the schema against these
    # without importing alembic (bots start faster and stay smaller); a test keeps them
    # equal to the migration scripts.
    revisions: tuple[str, ...]

    @property
    def head(self) -> str:
        return self.revisions[-1]


BRANCHES: tuple[Branch, ...] = (
    Branch(TRADING, "alembic_version", ("0001", "0002", "0003", "0004", "0005", "0006", "0007",
                                        "0008", "0009", "0010", "0011",
                                        "0012")),
    Branch(OPERATIONS, "alembic_version_operations", ("operations_0001",
                                                          "operations_0002",
                                                          "operations_0003")),
    Branch(MARKET_DATA, "alembic_version_market_data", ("market_data_0001",
                                                          "market_data_0002",
                                                          "market_data_0003",
                                                          "market_data_0004",
                                                          "market_data_0005")),
)
BRANCH_NAMES: tuple[str, ...] = tuple(b.name for b in BRANCHES)
# What each kind of process checks at start: what it reads and writes, nothing more.
BOT_BRANCHES: tuple[str, ...] = (TRADING,)  # bots, broker service, dashboard, CLI reads
SCHEDULER_BRANCHES: tuple[str, ...] = (TRADING,)  # + OPERATIONS once jobs use its tables
COLLECTOR_BRANCHES: tuple[str, ...] = (MARKET_DATA,)  # market-data collectors and trackers

# The trading branch under the names it had before there were branches.
REVISIONS = BRANCHES[0].revisions
HEAD = BRANCHES[0].head

_MIGRATIONS = Path(__file__).parent / "migrations"
# Any constant works; it only has to be the same for every fleetkit process.
_PG_MIGRATION_LOCK = 0x666C6565


class SchemaState(StrEnum):
    CURRENT = "up_to_date"
    BEHIND = "behind"  # an older revision of the branch: `fleet db upgrade`
    EMPTY = "empty"  # the branch was never migrated here: `fleet db upgrade`
    NEWER = "newer"  # a revision this code does not know: upgrade fleetkit


@dataclass(frozen=True, slots=True)
class BranchStatus:
    branch: str
    stored: tuple[str, ...]  # the revision(s) in the branch's version table
    head: str
    state: SchemaState

    @property
    def current(self) -> str | None:
        return " + ".join(self.stored) or None

    @property
    def action(self) -> str:
        """What the operator should do about it, in a few words."""
        if self.state is SchemaState.CURRENT:
            return "up to date"
        if self.state is SchemaState.NEWER:
            return "this database was migrated by a newer fleetkit: upgrade fleetkit"
        return "run `fleet db upgrade`"

    def as_json(self) -> dict[str, object]:
        return {"branch": self.branch, "current": self.current, "head": self.head,
                "state": self.state.value, "up_to_date": self.state is SchemaState.CURRENT,
                "action": self.action}


@dataclass(frozen=True, slots=True)
class BranchUpgrade:
    before: BranchStatus
    after: BranchStatus

    @property
    def changed(self) -> bool:
        return self.before.stored != self.after.stored


def branch(name: str) -> Branch:
    for candidate in BRANCHES:
        if candidate.name == name:
            return candidate
    raise ValueError(f"unknown schema branch {name!r} (known: {', '.join(BRANCH_NAMES)})")


def alembic_config(connection: Connection | None = None, branch_name: str = TRADING) -> Config:
    """Alembic's config for one branch: env.py runs on `connection` with its version table."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    config.attributes["version_table"] = branch(branch_name).version_table
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision(branch_name: str = TRADING) -> str:
    return branch(branch_name).head


def script_revisions(branch_name: str = TRADING) -> list[str]:
    """A branch's revisions as alembic finds them in the scripts, oldest first (tests
    compare)."""
    from alembic.script import ScriptDirectory

    scripts = ScriptDirectory.from_config(alembic_config())
    walked = scripts.walk_revisions(base="base", head=f"{branch_name}@head")
    return [rev.revision for rev in reversed(list(walked))]


def is_version_table(name: str | None) -> bool:
    """Alembic's bookkeeping, not part of the models (autogenerate and the models check)."""
    return name is not None and any(name == b.version_table for b in BRANCHES)


def current_revision(engine: Engine, branch_name: str = TRADING) -> str | None:
    with read_transaction(engine) as conn:
        return _status(conn, branch(branch_name)).current


def schema_status(engine: Engine, branches: Sequence[str] = BRANCH_NAMES
                  ) -> tuple[BranchStatus, ...]:
    with read_transaction(engine) as conn:
        return tuple(_status(conn, branch(name)) for name in branches)


def _status(conn: Connection, of: Branch) -> BranchStatus:
    stored: tuple[str, ...] = ()
    if inspect(conn).has_table(of.version_table):
        versions = table(of.version_table, column("version_num"))
        stored = tuple(sorted(str(v) for v in conn.execute(select(versions.c.version_num))
                              .scalars()))
    if not stored:
        state = SchemaState.EMPTY
    elif any(revision not in of.revisions for revision in stored):
        state = SchemaState.NEWER
    elif stored == (of.head,):
        state = SchemaState.CURRENT
    else:
        state = SchemaState.BEHIND
    return BranchStatus(of.name, stored, of.head, state)


def upgrade(engine: Engine, branches: Sequence[str] = BRANCH_NAMES
            ) -> tuple[BranchUpgrade, ...]:
    """Bring each branch to its head; safe to run twice or from two processes at once.

    A branch at a revision this code does not know (a newer fleetkit migrated it) is left
    as it is and reported NEWER; the others are upgraded all the same.
    """
    from alembic import command

    done: list[BranchUpgrade] = []
    with write_transaction(engine) as conn:
        if conn.dialect.name == "postgresql":
            # Serialise concurrent upgrades; the loser then finds nothing left to do.
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK})
        for name in branches:
            of = branch(name)
            before = _status(conn, of)
            if before.state is not SchemaState.NEWER:
                command.upgrade(alembic_config(conn, name), f"{name}@head")
            done.append(BranchUpgrade(before, _status(conn, of)))
    return tuple(done)


def require_current_schema(engine: Engine, where: str,
                           branches: Sequence[str] = BOT_BRANCHES) -> None:
    """Raise SchemaMismatchError unless each branch is exactly at this code's head (the
    other branches may be anywhere)."""
    for status in schema_status(engine, branches):
        if status.state is not SchemaState.CURRENT:
            raise SchemaMismatchError(mismatch(status, where))


def mismatch(status: BranchStatus, where: str) -> str:
    """One line: what is wrong with the branch in the database at `where`, and the fix."""
    what = "fleetkit" if status.branch == TRADING else status.branch
    if status.state is SchemaState.EMPTY:
        return f"the database at {where} has no {what} schema: run `fleet db upgrade` first"
    if status.state is SchemaState.NEWER:
        return (f"the database at {where} is at {status.branch} schema {status.current}, "
                f"newer than this fleetkit (expects {status.head}): this database was "
                "migrated by a newer fleetkit — upgrade fleetkit on this machine")
    return (f"the database at {where} is at {status.branch} schema {status.current}, this "
            f"fleetkit expects {status.head}: run `fleet db upgrade`")
