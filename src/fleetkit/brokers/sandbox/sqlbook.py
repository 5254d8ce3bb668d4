"""SqlBook: the sandbox venue's book in SQLite or PostgreSQL, so a restart changes nothing.

The sandbox owns a small private schema (tables prefixed `sandbox_`), created on open with
`create_all` rather than by the fleet's migrations: it is a test venue's scratch state, and
when its shape changes the fix is to delete it, which the version check says plainly.

Version 2 added `sandbox_submissions` (every order submission received, for invariant
checks). It only adds a table, so a version-1 book is upgraded in place on open; its
submissions start being counted from then on.

Version 3 added `sandbox_funding` (perpetual funding paid or received per account) and an
index of fills by instrument and time (which position each funding settlement saw). Again
only additions: create_all adds the table, and the index, which create_all makes only
with a new table, is created on open when missing. Versions 1 and 2 upgrade in place.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    CursorResult,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Row,
    String,
    Table,
    Text,
    UniqueConstraint,
    case,
    func,
    inspect,
    select,
    update,
)

from fleetkit.core.errors import SchemaMismatchError
from fleetkit.core.numbers import ZERO
from fleetkit.core.orders import OrderStatus, OrderType, Side
from fleetkit.sqlutil.engine import (
    make_engine,
    read_transaction,
    redact_url,
    write_transaction,
)
from fleetkit.sqlutil.types import ExactDecimal, UTCDateTime
from fleetkit.sqlutil.upsert import upsert

from .book import (
    OPEN_STATUSES,
    BookSession,
    StoredFill,
    StoredFunding,
    StoredOrder,
    StoredPosition,
    Submission,
    SubmissionCounts,
)
from .matching import plain_decimal  # ExactDecimal reads back normalized: 10 as 1E+1

SCHEMA_VERSION = "3"
_SCHEMA_VERSION_KEY = "schema_version"
# Versions whose book create_all brings up to date, because later ones only added tables.
_UPGRADABLE_VERSIONS = frozenset({"1", "2"})

# SQLite only makes INTEGER PRIMARY KEY a rowid alias, and only AUTOINCREMENT guarantees that
# an id is never handed out twice, which the fill sequence (a client's cursor) relies on.
_Sequence = BigInteger().with_variant(Integer(), "sqlite")
_ACCOUNT = String(100)
_KEY = String(200)

metadata = MetaData()

meta_table = Table(
    "sandbox_meta", metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

markets_table = Table(
    "sandbox_markets", metadata,
    Column("market", String(32), primary_key=True),
    Column("offset_s", BigInteger, nullable=False),
)

accounts_table = Table(
    "sandbox_accounts", metadata,
    Column("account", _ACCOUNT, primary_key=True),
    Column("created_at", UTCDateTime, nullable=False),
)

balances_table = Table(
    "sandbox_balances", metadata,
    Column("account", _ACCOUNT, ForeignKey("sandbox_accounts.account"), primary_key=True),
    Column("currency", String(16), primary_key=True),
    Column("amount", ExactDecimal, nullable=False),
)

orders_table = Table(
    "sandbox_orders", metadata,
    Column("order_id", _Sequence, primary_key=True, autoincrement=True),
    Column("account", _ACCOUNT, ForeignKey("sandbox_accounts.account"), nullable=False),
    Column("client_order_id", _KEY, nullable=False),
    Column("instrument", _KEY, nullable=False),
    Column("side", String(8), nullable=False),
    Column("order_type", String(8), nullable=False),
    Column("quantity", ExactDecimal, nullable=False),
    Column("limit_price", ExactDecimal, nullable=True),
    Column("status", String(20), nullable=False),
    Column("filled_quantity", ExactDecimal, nullable=False),
    Column("filled_notional", ExactDecimal, nullable=False),
    Column("reserve_price", ExactDecimal, nullable=True),
    Column("reason", Text, nullable=False),
    Column("not_before", UTCDateTime, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    UniqueConstraint("account", "client_order_id", name="uq_sandbox_orders_account_cid"),
    Index("ix_sandbox_orders_status", "status"),
    sqlite_autoincrement=True,
)

fills_table = Table(
    "sandbox_fills", metadata,
    Column("sequence", _Sequence, primary_key=True, autoincrement=True),
    Column("account", _ACCOUNT, ForeignKey("sandbox_accounts.account"), nullable=False),
    Column("client_order_id", _KEY, nullable=False),
    Column("instrument", _KEY, nullable=False),
    Column("side", String(8), nullable=False),
    Column("quantity", ExactDecimal, nullable=False),
    Column("price", ExactDecimal, nullable=False),
    Column("fee", ExactDecimal, nullable=False),
    Column("ts", UTCDateTime, nullable=False),
    Index("ix_sandbox_fills_account_sequence", "account", "sequence"),
    Index("ix_sandbox_fills_instrument_ts", "instrument", "ts"),
    sqlite_autoincrement=True,
)

positions_table = Table(
    "sandbox_positions", metadata,
    Column("account", _ACCOUNT, ForeignKey("sandbox_accounts.account"), primary_key=True),
    Column("instrument", _KEY, primary_key=True),
    Column("quantity", ExactDecimal, nullable=False),
    Column("average_price", ExactDecimal, nullable=False),
)

submissions_table = Table(
    "sandbox_submissions", metadata,
    Column("sequence", _Sequence, primary_key=True, autoincrement=True),
    Column("account", _ACCOUNT, ForeignKey("sandbox_accounts.account"), nullable=False),
    Column("client_order_id", _KEY, nullable=False),
    Column("received_at", UTCDateTime, nullable=False),
    Column("duplicate", Boolean, nullable=False),
    Column("status", String(20), nullable=False),
    Index("ix_sandbox_submissions_account_sequence", "account", "sequence"),
    sqlite_autoincrement=True,
)

funding_table = Table(
    "sandbox_funding", metadata,
    Column("sequence", _Sequence, primary_key=True, autoincrement=True),
    Column("account", _ACCOUNT, ForeignKey("sandbox_accounts.account"), nullable=False),
    Column("instrument", _KEY, nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("rate", ExactDecimal, nullable=False),
    Column("quantity", ExactDecimal, nullable=False),
    Column("mark", ExactDecimal, nullable=False),
    Column("amount", ExactDecimal, nullable=False),
    Index("ix_sandbox_funding_account_sequence", "account", "sequence"),
    sqlite_autoincrement=True,
)

_OPEN = sorted(status.value for status in OPEN_STATUSES)


class SqlBook:
    """A Book in a database at `url` (SQLite file or PostgreSQL), tables created on open.

    Raises SchemaMismatchError if the database holds a sandbox book of another schema
    version; sessions raise DatabaseUnavailableError while the database cannot be reached.
    """

    def __init__(self, url: str) -> None:
        self._engine = make_engine(url, application_name="fleetkit-sandbox")
        try:
            with write_transaction(self._engine) as conn:
                _prepare_schema(conn, redact_url(url))
        except BaseException:
            self._engine.dispose()
            raise

    @contextmanager
    def write(self) -> Iterator[BookSession]:
        with write_transaction(self._engine) as conn:
            yield _SqlSession(conn, writable=True)

    @contextmanager
    def read(self) -> Iterator[BookSession]:
        with read_transaction(self._engine) as conn:
            yield _SqlSession(conn, writable=False)

    def close(self) -> None:
        self._engine.dispose()


def _prepare_schema(conn: Connection, url: str) -> None:
    stored: str | None = None
    if inspect(conn).has_table(meta_table.name):
        stored = conn.execute(select(meta_table.c.value).where(
            meta_table.c.key == _SCHEMA_VERSION_KEY)).scalar_one_or_none()
        if stored not in (None, SCHEMA_VERSION, *_UPGRADABLE_VERSIONS):
            raise SchemaMismatchError(
                f"the sandbox book in {url} has schema version {stored}, this fleetkit "
                f"expects {SCHEMA_VERSION}. The sandbox keeps only paper state: delete its "
                "tables (sandbox_*) or its database file and start again")
    metadata.create_all(conn)
    for index in fills_table.indexes:  # an upgraded book's fills table predates some
        index.create(conn, checkfirst=True)
    if stored is None:
        conn.execute(meta_table.insert().values(key=_SCHEMA_VERSION_KEY, value=SCHEMA_VERSION))
    elif stored != SCHEMA_VERSION:
        conn.execute(update(meta_table).where(meta_table.c.key == _SCHEMA_VERSION_KEY)
                     .values(value=SCHEMA_VERSION))


class _SqlSession:
    """BookSession over one open transaction."""

    def __init__(self, conn: Connection, *, writable: bool) -> None:
        self._conn = conn
        self._writable = writable

    def _writing(self) -> Connection:
        if not self._writable:
            raise RuntimeError("cannot write to the sandbox book in a read session")
        return self._conn

    def _upsert(self, table: Table, keys: Mapping[str, Any], values: Mapping[str, Any]) -> None:
        upsert(self._writing(), table, {**keys, **values}, list(keys))

    def meta(self, key: str) -> str | None:
        return self._conn.execute(
            select(meta_table.c.value).where(meta_table.c.key == key)).scalar_one_or_none()

    def set_meta(self, key: str, value: str) -> None:
        self._upsert(meta_table, {"key": key}, {"value": value})

    def market_offsets(self) -> dict[str, int]:
        rows = self._conn.execute(select(markets_table.c.market, markets_table.c.offset_s))
        return {market: int(offset_s) for market, offset_s in rows}

    def set_market_offset(self, market: str, offset_s: int) -> None:
        self._upsert(markets_table, {"market": market}, {"offset_s": offset_s})

    def has_account(self, account: str) -> bool:
        found = self._conn.execute(select(accounts_table.c.account).where(
            accounts_table.c.account == account)).first()
        return found is not None

    def create_account(self, account: str, created_at: datetime) -> None:
        self._writing().execute(accounts_table.insert().values(account=account,
                                                               created_at=created_at))

    def balances(self, account: str) -> dict[str, Decimal]:
        rows = self._conn.execute(
            select(balances_table.c.currency, balances_table.c.amount)
            .where(balances_table.c.account == account).order_by(balances_table.c.currency))
        return {currency: plain_decimal(amount) for currency, amount in rows}

    def set_balance(self, account: str, currency: str, amount: Decimal) -> None:
        self._upsert(balances_table, {"account": account, "currency": currency},
                     {"amount": amount})

    def order(self, account: str, client_order_id: str) -> StoredOrder | None:
        row = self._conn.execute(select(orders_table).where(
            orders_table.c.account == account,
            orders_table.c.client_order_id == client_order_id)).first()
        return None if row is None else _order_from_row(row)

    def insert_order(self, order: StoredOrder) -> StoredOrder:
        result = self._writing().execute(orders_table.insert().values(**_order_values(order)))
        return replace(order, order_id=_inserted_id(result))

    def update_order(self, order: StoredOrder) -> None:
        self._writing().execute(orders_table.update()
                                .where(orders_table.c.order_id == order.order_id)
                                .values(**_order_values(order)))

    def open_orders(self, account: str | None = None) -> list[StoredOrder]:
        query = (select(orders_table).where(orders_table.c.status.in_(_OPEN))
                 .order_by(orders_table.c.order_id))
        if account is not None:
            query = query.where(orders_table.c.account == account)
        return [_order_from_row(row) for row in self._conn.execute(query)]

    def insert_fill(self, fill: StoredFill) -> StoredFill:
        result = self._writing().execute(fills_table.insert().values(
            account=fill.account, client_order_id=fill.client_order_id,
            instrument=fill.instrument, side=fill.side.value, quantity=fill.quantity,
            price=fill.price, fee=fill.fee, ts=fill.ts))
        return replace(fill, sequence=_inserted_id(result))

    def fills_after(self, account: str, sequence: int, limit: int) -> list[StoredFill]:
        rows = self._conn.execute(
            select(fills_table)
            .where(fills_table.c.account == account, fills_table.c.sequence > sequence)
            .order_by(fills_table.c.sequence).limit(limit))
        return [StoredFill(**{**_values(row), "side": Side(row.side)}) for row in rows]

    def position(self, account: str, instrument: str) -> StoredPosition | None:
        row = self._conn.execute(
            select(positions_table.c.instrument, positions_table.c.quantity,
                   positions_table.c.average_price)
            .where(positions_table.c.account == account,
                   positions_table.c.instrument == instrument)).first()
        return None if row is None else StoredPosition(**_values(row))

    def set_position(self, account: str, position: StoredPosition) -> None:
        self._upsert(positions_table, {"account": account, "instrument": position.instrument},
                     {"quantity": position.quantity, "average_price": position.average_price})

    def positions(self, account: str) -> list[StoredPosition]:
        rows = self._conn.execute(
            select(positions_table.c.instrument, positions_table.c.quantity,
                   positions_table.c.average_price)
            .where(positions_table.c.account == account)
            .order_by(positions_table.c.instrument))
        return [StoredPosition(**_values(row)) for row in rows]

    def holdings(self, instrument: str | None = None) -> list[tuple[str, StoredPosition]]:
        table = positions_table
        query = (select(table.c.account, table.c.instrument, table.c.quantity,
                        table.c.average_price)
                 .where(table.c.quantity != ZERO)
                 .order_by(table.c.account, table.c.instrument))
        if instrument is not None:
            query = query.where(table.c.instrument == instrument)
        return [(row.account, StoredPosition(row.instrument, plain_decimal(row.quantity),
                                             plain_decimal(row.average_price)))
                for row in self._conn.execute(query)]

    def instrument_fills_after(self, instrument: str, ts: datetime) -> list[StoredFill]:
        rows = self._conn.execute(
            select(fills_table)
            .where(fills_table.c.instrument == instrument, fills_table.c.ts > ts)
            .order_by(fills_table.c.sequence))
        return [StoredFill(**{**_values(row), "side": Side(row.side)}) for row in rows]

    def insert_funding(self, funding: StoredFunding) -> StoredFunding:
        result = self._writing().execute(funding_table.insert().values(
            account=funding.account, instrument=funding.instrument, at=funding.at,
            rate=funding.rate, quantity=funding.quantity, mark=funding.mark,
            amount=funding.amount))
        return replace(funding, sequence=_inserted_id(result))

    def funding_after(self, account: str, sequence: int, limit: int) -> list[StoredFunding]:
        rows = self._conn.execute(
            select(funding_table)
            .where(funding_table.c.account == account, funding_table.c.sequence > sequence)
            .order_by(funding_table.c.sequence).limit(limit))
        return [StoredFunding(**_values(row)) for row in rows]

    def insert_submission(self, submission: Submission) -> Submission:
        result = self._writing().execute(submissions_table.insert().values(
            account=submission.account, client_order_id=submission.client_order_id,
            received_at=submission.received_at, duplicate=submission.duplicate,
            status=submission.status.value))
        return replace(submission, sequence=_inserted_id(result))

    def submission_counts(self) -> dict[str, SubmissionCounts]:
        table = submissions_table
        rejected = case((table.c.duplicate.is_(False)
                         & (table.c.status == OrderStatus.REJECTED.value), 1), else_=0)
        rows = self._conn.execute(
            select(table.c.account, func.count(),
                   func.sum(case((table.c.duplicate, 1), else_=0)), func.sum(rejected))
            .group_by(table.c.account).order_by(table.c.account))
        return {account: SubmissionCounts(int(total), int(duplicates), int(refused))
                for account, total, duplicates, refused in rows}

    def submissions_after(self, account: str | None, sequence: int,
                          limit: int) -> list[Submission]:
        table = submissions_table
        query = (select(table).where(table.c.sequence > sequence)
                 .order_by(table.c.sequence).limit(limit))
        if account is not None:
            query = query.where(table.c.account == account)
        return [Submission(row.sequence, row.account, row.client_order_id, row.received_at,
                           bool(row.duplicate), OrderStatus(row.status))
                for row in self._conn.execute(query)]


def _values(row: Row[Any] | Row[Any, Any, Any]) -> dict[str, Any]:
    return {key: plain_decimal(value) if isinstance(value, Decimal) else value
            for key, value in row._mapping.items()}


def _inserted_id(result: CursorResult[Any]) -> int:
    key = result.inserted_primary_key
    if key is None:
        raise RuntimeError("the database returned no id for an inserted sandbox row")
    return int(key[0])


def _order_values(order: StoredOrder) -> dict[str, Any]:
    return {
        "account": order.account, "client_order_id": order.client_order_id,
        "instrument": order.instrument, "side": order.side.value,
        "order_type": order.order_type.value, "quantity": order.quantity,
        "limit_price": order.limit_price, "status": order.status.value,
        "filled_quantity": order.filled_quantity, "filled_notional": order.filled_notional,
        "reserve_price": order.reserve_price, "reason": order.reason,
        "not_before": order.not_before, "created_at": order.created_at,
        "updated_at": order.updated_at,
    }


def _order_from_row(row: Row[Any]) -> StoredOrder:
    values = _values(row)
    values["side"] = Side(values["side"])
    values["order_type"] = OrderType(values["order_type"])
    values["status"] = OrderStatus(values["status"])
    return StoredOrder(**values)
