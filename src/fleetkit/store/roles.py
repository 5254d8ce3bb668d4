"""Database roles on PostgreSQL: one login role per bot, confined to its own rows by the
row-level security of migration 0005, and read-only login roles for dashboards.

Passwords are random, sent to the server only as a SCRAM-SHA-256 verifier (so no server log
can show one), handed back to the caller once and never stored in the database.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, select, text, update

from fleetkit.core.errors import ConfigError, UnknownBotError
from fleetkit.sqlutil.engine import write_transaction
from fleetkit.store.schema import bots

BOT_GROUP = "fleet_bot"  # created by migration 0005
READER_GROUP = "fleet_reader"
DEFAULT_BOT_ROLE_PREFIX = "fleet_bot_"
_ROLE_NAME = re.compile(r"^[a-z_][a-z0-9_-]{0,62}$")
_SCRAM_ITERATIONS = 4096  # PostgreSQL's own default


@dataclass(frozen=True, slots=True)
class RoleOutcome:
    """What ensuring one role did. `password` is set only when a new one was issued."""

    role: str
    group: str
    bot: str | None
    created: bool
    rotated: bool
    granted: bool
    mapped: bool
    password: str | None

    @property
    def changed(self) -> bool:
        return self.created or self.rotated or self.granted or self.mapped

    def as_json(self) -> dict[str, object]:
        return {"role": self.role, "group": self.group, "bot": self.bot,
                "created": self.created, "rotated": self.rotated, "granted": self.granted,
                "mapped": self.mapped, "changed": self.changed}


def bot_role_name(bot: str, prefix: str = DEFAULT_BOT_ROLE_PREFIX) -> str:
    return check_role_name(f"{prefix}{bot}")


def check_role_name(role: str) -> str:
    if not _ROLE_NAME.match(role):
        raise ConfigError(f"{role!r} can't be a database role name here: use at most 63 of "
                          "a-z, 0-9, _ and -, starting with a letter or _")
    return role


def ensure_roles(engine: Engine, bot_names: list[str], *, prefix: str = DEFAULT_BOT_ROLE_PREFIX,
                 reader_roles: tuple[str, ...] = (), rotate: bool = False) -> list[RoleOutcome]:
    """Create what is missing, rotate passwords if asked, map each bot to its role; a
    second call with the same arguments (and no rotate) changes nothing. One transaction."""
    require_postgresql(engine)
    outcomes = []
    with write_transaction(engine) as conn:
        _require_groups(conn)
        for name in bot_names:
            bot_id = conn.execute(select(bots.c.id).where(bots.c.name == name)).scalar()
            if bot_id is None:
                raise UnknownBotError(f"no bot named {name!r} in this database")
            role = bot_role_name(name, prefix)
            outcome = _ensure_login_role(conn, role, BOT_GROUP, name, rotate)
            mapped = conn.execute(update(bots).where(
                bots.c.id == bot_id, bots.c.db_role.is_distinct_from(role)
            ).values(db_role=role)).rowcount == 1
            outcomes.append(_with_mapped(outcome, mapped))
        for role in reader_roles:
            outcomes.append(_ensure_login_role(conn, check_role_name(role), READER_GROUP,
                                               None, rotate))
    return outcomes


def require_postgresql(engine: Engine) -> None:
    if engine.dialect.name != "postgresql":
        raise ConfigError("database roles need PostgreSQL: on SQLite every process shares one "
                          "file and isolation is by fleetkit's own API (docs/isolation.md)")


def _with_mapped(outcome: RoleOutcome, mapped: bool) -> RoleOutcome:
    return RoleOutcome(outcome.role, outcome.group, outcome.bot, outcome.created,
                       outcome.rotated, outcome.granted, mapped, outcome.password)


def _require_groups(conn: Connection) -> None:
    found = set(conn.execute(text("SELECT rolname FROM pg_roles WHERE rolname IN (:b, :r)"),
                             {"b": BOT_GROUP, "r": READER_GROUP}).scalars())
    missing = {BOT_GROUP, READER_GROUP} - found
    if missing:
        raise ConfigError(f"the group role(s) {', '.join(sorted(missing))} are missing: "
                          "run `fleet db upgrade` (migration 0005 creates them)")


def _ensure_login_role(conn: Connection, role: str, group: str, bot: str | None,
                       rotate: bool) -> RoleOutcome:
    exists = conn.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role}
                          ).first() is not None
    password = None
    if not exists:
        password = new_password()
        # Utility statements take no bind parameters (and text() would read `:` as one); the
        # name is checked and the verifier is base64 and `$:` only, safe inside its quotes.
        conn.exec_driver_sql(f"CREATE ROLE \"{role}\" LOGIN PASSWORD '{scram_verifier(password)}'")
    elif rotate:
        password = new_password()
        conn.exec_driver_sql(f"ALTER ROLE \"{role}\" PASSWORD '{scram_verifier(password)}'")
    member = conn.execute(text(
        "SELECT 1 FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid "
        "JOIN pg_roles u ON u.oid = m.member WHERE g.rolname = :g AND u.rolname = :r"),
        {"g": group, "r": role}).first() is not None
    if not member:
        conn.execute(text(f'GRANT {group} TO "{role}"'))
    return RoleOutcome(role, group, bot, created=not exists, rotated=exists and rotate,
                       granted=not member, mapped=False, password=password)


def new_password() -> str:
    return secrets.token_urlsafe(32)


def scram_verifier(password: str, *, salt: bytes | None = None,
                   iterations: int = _SCRAM_ITERATIONS) -> str:
    """The SCRAM-SHA-256 verifier PostgreSQL stores for `password` (RFC 5802/7677)."""
    salt = secrets.token_bytes(16) if salt is None else salt
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()

    def b64(raw: bytes) -> str:
        return base64.b64encode(raw).decode()

    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


def verifier_matches(verifier: str, password: str) -> bool:
    """Whether `password` is the one behind a stored SCRAM-SHA-256 verifier."""
    try:
        scheme, rest = verifier.split("$", 1)
        iterations_salt, _keys = rest.split("$", 1)
        iterations, salt = iterations_salt.split(":", 1)
    except ValueError:
        return False
    if scheme != "SCRAM-SHA-256":
        return False
    expected = scram_verifier(password, salt=base64.b64decode(salt), iterations=int(iterations))
    return hmac.compare_digest(expected, verifier)
