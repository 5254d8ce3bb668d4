"""Database roles on PostgreSQL: one login role per bot, confined to its own rows by the
row-level security of migration 0005, and read-only login roles for dashboards.

Passwords are random, sent to the server only as a SCRAM-SHA-256 verifier (so no server log
can show one), handed back to the caller once and never stored in the database. A deployment
can instead declare them: one `<role>.password` file each (`read_password_files`), which
`ensure_roles` then makes true, creating or changing roles to match.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

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
    password_set: bool = False  # an existing role's password changed to the declared one

    @property
    def changed(self) -> bool:
        return (self.created or self.rotated or self.granted or self.mapped
                or self.password_set)

    def as_json(self) -> dict[str, object]:
        return {"role": self.role, "group": self.group, "bot": self.bot,
                "created": self.created, "rotated": self.rotated, "granted": self.granted,
                "mapped": self.mapped, "password_set": self.password_set,
                "changed": self.changed}


def bot_role_name(bot: str, prefix: str = DEFAULT_BOT_ROLE_PREFIX) -> str:
    return check_role_name(f"{prefix}{bot}")


def check_role_name(role: str) -> str:
    if not _ROLE_NAME.match(role):
        raise ConfigError(f"{role!r} can't be a database role name here: use at most 63 of "
                          "a-z, 0-9, _ and -, starting with a letter or _")
    return role


def ensure_roles(engine: Engine, bot_names: list[str], *, prefix: str = DEFAULT_BOT_ROLE_PREFIX,
                 reader_roles: tuple[str, ...] = (), rotate: bool = False,
                 passwords: Mapping[str, str] | None = None) -> list[RoleOutcome]:
    """Create what is missing, rotate passwords if asked, map each bot to its role; a
    second call with the same arguments (and no rotate) changes nothing. One transaction.

    With `passwords` (role -> password, one for every role), each role gets exactly that
    password: created with it, or changed to it; nothing random is issued or handed back.
    """
    require_postgresql(engine)
    _require_distinct(bot_names, prefix, reader_roles)
    given = {} if passwords is None else dict(passwords)
    if passwords is not None:
        _require_declared(given, [bot_role_name(n, prefix) for n in bot_names],
                          reader_roles, rotate)
    outcomes = []
    with write_transaction(engine) as conn:
        _require_groups(conn)
        for name in bot_names:
            bot_id = conn.execute(select(bots.c.id).where(bots.c.name == name)).scalar()
            if bot_id is None:
                raise UnknownBotError(f"no bot named {name!r} in this database")
            role = bot_role_name(name, prefix)
            outcome = _ensure_login_role(conn, role, BOT_GROUP, name, rotate, given.get(role))
            mapped = conn.execute(update(bots).where(
                bots.c.id == bot_id, bots.c.db_role.is_distinct_from(role)
            ).values(db_role=role)).rowcount == 1
            outcomes.append(_with_mapped(outcome, mapped))
        for role in reader_roles:
            outcomes.append(_ensure_login_role(conn, check_role_name(role), READER_GROUP,
                                               None, rotate, given.get(role)))
    return outcomes


def read_password_files(folder: Path, roles: Iterable[str]) -> dict[str, str]:
    """Each role's password from `folder/<role>.password`: one line, its newline dropped.
    Every file is read before anything is changed, and every missing one is named."""
    passwords: dict[str, str] = {}
    missing: list[Path] = []
    for role in roles:
        path = folder / f"{check_role_name(role)}.password"
        if not path.is_file():
            missing.append(path)
            continue
        passwords[role] = _read_password_file(path)
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise ConfigError(f"no password file {missing[0]}{more}: {_how_to_create(missing[0])}")
    return passwords


def require_postgresql(engine: Engine) -> None:
    if engine.dialect.name != "postgresql":
        raise ConfigError("database roles need PostgreSQL: on SQLite every process shares one "
                          "file and isolation is by fleetkit's own API (docs/isolation.md)")


def _how_to_create(path: Path) -> str:
    return (f"create it with the password as its one line, e.g. `openssl rand -hex 32 > "
            f"{path}` (a generated deployment's secrets.sh or install.sh creates every "
            "missing one)")


def _read_password_file(path: Path) -> str:
    try:
        raw = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read password file {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"password file {path} is not UTF-8 text: "
                          f"{_how_to_create(path)}") from None
    password = raw.removesuffix("\n").removesuffix("\r")
    if not password:
        raise ConfigError(f"password file {path} is empty: {_how_to_create(path)}")
    if "\n" in password or "\r" in password:
        raise ConfigError(f"password file {path} holds more than one line: the password "
                          "is its only line")
    if password != password.strip():
        # A process that connects with the file strips white space (runtime.wiring), so
        # such a password would never match: refuse it rather than set it.
        raise ConfigError(f"password file {path}: the password starts or ends with white "
                          "space, which bots strip when they read the file: remove it")
    return password


def _require_distinct(bot_names: list[str], prefix: str, reader_roles: tuple[str, ...]) -> None:
    clash = {bot_role_name(n, prefix) for n in bot_names} & set(reader_roles)
    if clash:
        raise ConfigError(f"{', '.join(sorted(clash))} would be both a bot's role and a "
                          "reader role: pick another --reader-role or --role-prefix")


def _require_declared(given: dict[str, str], bot_roles: list[str],
                      reader_roles: tuple[str, ...], rotate: bool) -> None:
    # A programming error, not the operator's: the CLI reads a file for every role.
    if rotate:
        raise ValueError("declared passwords and rotate exclude each other")
    undeclared = sorted({*bot_roles, *reader_roles} - set(given))
    if undeclared:
        raise ValueError(f"no declared password for {', '.join(undeclared)}")


def _with_mapped(outcome: RoleOutcome, mapped: bool) -> RoleOutcome:
    return replace(outcome, mapped=mapped)


def _require_groups(conn: Connection) -> None:
    found = set(conn.execute(text("SELECT rolname FROM pg_roles WHERE rolname IN (:b, :r)"),
                             {"b": BOT_GROUP, "r": READER_GROUP}).scalars())
    missing = {BOT_GROUP, READER_GROUP} - found
    if missing:
        raise ConfigError(f"the group role(s) {', '.join(sorted(missing))} are missing: "
                          "run `fleet db upgrade` (migration 0005 creates them)")


def _ensure_login_role(conn: Connection, role: str, group: str, bot: str | None,
                       rotate: bool, declared: str | None = None) -> RoleOutcome:
    exists = conn.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role}
                          ).first() is not None
    password = None
    password_set = False
    if declared is not None and not exists:
        _create_role(conn, role, declared)
    elif declared is not None:
        password_set = _match_password(conn, role, declared)
    elif not exists:
        password = new_password()
        _create_role(conn, role, password)
    elif rotate:
        password = new_password()
        _set_password(conn, role, password)
    member = conn.execute(text(
        "SELECT 1 FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid "
        "JOIN pg_roles u ON u.oid = m.member WHERE g.rolname = :g AND u.rolname = :r"),
        {"g": group, "r": role}).first() is not None
    if not member:
        conn.execute(text(f'GRANT {group} TO "{role}"'))
    return RoleOutcome(role, group, bot, created=not exists, rotated=exists and rotate,
                       granted=not member, mapped=False, password=password,
                       password_set=password_set)


def _match_password(conn: Connection, role: str, password: str) -> bool:
    """Make `password` an existing role's; True if it was not already."""
    stored = _stored_verifier(conn, role)
    if stored is not None and verifier_matches(stored, password):
        return False
    _set_password(conn, role, password)
    return True


def _stored_verifier(conn: Connection, role: str) -> str | None:
    """The role's stored verifier, where we may read it: pg_authid is a superuser's only
    (a CREATEROLE owner gets None and sets the password again, which is harmless)."""
    readable = conn.execute(text(
        "SELECT has_table_privilege('pg_catalog.pg_authid', 'SELECT')")).scalar()
    if not readable:
        return None
    stored = conn.execute(text("SELECT rolpassword FROM pg_catalog.pg_authid "
                               "WHERE rolname = :r"), {"r": role}).scalar()
    return None if stored is None else str(stored)


# Utility statements take no bind parameters (and text() would read `:` as one); the name is
# checked and the verifier is base64 and `$:` only, safe inside its quotes. Only the verifier
# reaches the server, so `log_statement` can never show a password.
def _create_role(conn: Connection, role: str, password: str) -> None:
    conn.exec_driver_sql(f"CREATE ROLE \"{role}\" LOGIN PASSWORD '{scram_verifier(password)}'")


def _set_password(conn: Connection, role: str, password: str) -> None:
    conn.exec_driver_sql(f"ALTER ROLE \"{role}\" PASSWORD '{scram_verifier(password)}'")


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
