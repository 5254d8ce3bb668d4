"""The fleet database's tables (SQLAlchemy Core). Migrations must produce exactly this.

Every row that belongs to a bot carries `bot_id`, so PostgreSQL row-level security confines
each bot's database role to its own rows (migration 0005, docs/isolation.md).
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Column,
    Date,
    Double,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

from fleetkit.sqlutil.types import ExactDecimal, UTCDateTime

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING)

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets 64-bit ids.
Id = BigInteger().with_variant(Integer(), "sqlite")

fleet_meta = Table(
    "fleet_meta", metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

bots = Table(
    "bots", metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("market", String(16), nullable=False),
    Column("currency", String(8), nullable=False),
    Column("strategy", String(64), nullable=False),
    Column("mode", String(16), nullable=False),
    Column("settings", JSON, nullable=False),
    Column("lease_owner", String(160)),
    Column("lease_expires_at", UTCDateTime()),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    # The PostgreSQL login role this bot connects as (`fleet db roles`); row-level security
    # maps the connected role to the bot through it. Bots can't write it (column grants).
    Column("db_role", String(63), unique=True),
)

fleet_controls = Table(
    "fleet_controls", metadata,
    Column("id", SmallInteger, primary_key=True, autoincrement=False),
    Column("state", String(16), nullable=False),
    Column("reason", Text, nullable=False),
    Column("source", String(32)),
    Column("changed_by", String(128), nullable=False),
    Column("changed_at", UTCDateTime(), nullable=False),
    CheckConstraint("id = 1", name="singleton"),
)

bot_controls = Table(
    "bot_controls", metadata,
    Column("bot_id", Id, ForeignKey("bots.id"), primary_key=True),
    Column("state", String(16), nullable=False),
    Column("reason", Text, nullable=False),
    Column("source", String(32)),
    Column("changed_by", String(128), nullable=False),
    Column("changed_at", UTCDateTime(), nullable=False),
)

instruments = Table(
    "instruments", metadata,
    Column("key", String(64), primary_key=True),
    Column("symbol", String(32), nullable=False),
    Column("market", String(16), nullable=False),
    Column("asset_class", String(16), nullable=False),
    Column("currency", String(8), nullable=False),
    Column("tick_size", ExactDecimal(), nullable=False),
    Column("lot_size", ExactDecimal(), nullable=False),
    Column("min_quantity", ExactDecimal()),
    Column("calendar", String(16), nullable=False),
)

signals = Table(
    "signals", metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("bot_id", Id, ForeignKey("bots.id"), nullable=False),
    Column("instrument", String(64), nullable=False),
    Column("bar_ts", UTCDateTime(), nullable=False),
    Column("level", SmallInteger),
    Column("target_quantity", ExactDecimal()),
    Column("note", Text, nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Index(None, "bot_id", "created_at"),
)

orders = Table(
    "orders", metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("bot_id", Id, ForeignKey("bots.id"), nullable=False),
    Column("client_order_id", String(64), nullable=False, unique=True),
    Column("broker_order_id", String(64)),
    Column("instrument", String(64), nullable=False),
    Column("side", String(8), nullable=False),
    Column("order_type", String(8), nullable=False),
    Column("quantity", ExactDecimal(), nullable=False),
    Column("limit_price", ExactDecimal()),
    Column("reference_price", ExactDecimal(), nullable=False),
    Column("status", String(20), nullable=False),
    Column("filled_quantity", ExactDecimal(), nullable=False),
    Column("average_fill_price", ExactDecimal()),
    Column("reason", Text, nullable=False),
    Column("signal_id", Id, ForeignKey("signals.id")),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Index(None, "bot_id", "status"),
    Index(None, "created_at"),  # fleet-wide history, newest first (the dashboard)
    Index(None, "status", "bot_id"),  # open orders per bot, however many orders there were
)

fills = Table(
    "fills", metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("bot_id", Id, ForeignKey("bots.id"), nullable=False),
    Column("order_id", Id, ForeignKey("orders.id"), nullable=False),
    Column("broker_fill_id", String(64), nullable=False),
    Column("instrument", String(64), nullable=False),
    Column("side", String(8), nullable=False),
    Column("quantity", ExactDecimal(), nullable=False),
    Column("price", ExactDecimal(), nullable=False),
    Column("fee", ExactDecimal(), nullable=False),
    Column("ts", UTCDateTime(), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    UniqueConstraint("bot_id", "broker_fill_id"),
    Index(None, "bot_id", "ts"),
    Index(None, "ts"),  # fleet-wide history, newest first (the dashboard)
)

positions = Table(
    "positions", metadata,
    Column("bot_id", Id, ForeignKey("bots.id"), primary_key=True),
    Column("instrument", String(64), primary_key=True),
    Column("quantity", ExactDecimal(), nullable=False),
    Column("average_price", ExactDecimal(), nullable=False),
    Column("realized_pnl", ExactDecimal(), nullable=False),
    Column("fees", ExactDecimal(), nullable=False),
    Column("mark_price", ExactDecimal()),
    Column("mark_ts", UTCDateTime()),
    Column("updated_at", UTCDateTime(), nullable=False),
)

bot_pnl = Table(
    "bot_pnl", metadata,
    Column("bot_id", Id, ForeignKey("bots.id"), primary_key=True),
    Column("day", String(10), nullable=False),
    Column("day_start_net", ExactDecimal(), nullable=False),
    # Realized P&L when the day began, so today's realized is realized - this.
    Column("day_start_realized", ExactDecimal()),
    Column("realized", ExactDecimal(), nullable=False),
    Column("unrealized", ExactDecimal(), nullable=False),
    Column("fees", ExactDecimal(), nullable=False),
    Column("daily", ExactDecimal(), nullable=False),
    Column("daily_usd", ExactDecimal(), nullable=False),
    Column("usd_per_unit", ExactDecimal(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
)

pnl_snapshots = Table(
    "pnl_snapshots", metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("bot_id", Id, ForeignKey("bots.id"), nullable=False),
    Column("ts", UTCDateTime(), nullable=False),
    Column("day", String(10), nullable=False),
    Column("realized", ExactDecimal(), nullable=False),
    Column("unrealized", ExactDecimal(), nullable=False),
    Column("fees", ExactDecimal(), nullable=False),
    Column("daily", ExactDecimal(), nullable=False),
    # The quote currency in USD at this mark, so a fleet curve adds each moment at its own
    # rate. NULL for snapshots from before migration 0009 (readers use the bot's last rate).
    Column("usd_per_unit", ExactDecimal()),
    Index(None, "bot_id", "ts"),
)

bot_state = Table(
    "bot_state", metadata,
    Column("bot_id", Id, ForeignKey("bots.id"), primary_key=True),
    Column("state", JSON, nullable=False),
    Column("fills_cursor", String(64)),
    Column("updated_at", UTCDateTime(), nullable=False),
    # {currency: broker cash less the ledger's cash flow} at the first clean reconciliation
    Column("cash_baseline", JSON),
    Column("funding_cursor", String(64)),
)

# A perpetual's funding settlements as they touched the bot's account (engine.ports
# FundingEntry), each applied once into its position's realized P&L.
funding_payments = Table(
    "funding_payments", metadata,
    Column("bot_id", Id, ForeignKey("bots.id"), primary_key=True),
    Column("payment_id", String(64), primary_key=True),
    Column("instrument", String(64), nullable=False),
    Column("at", UTCDateTime(), nullable=False),
    Column("rate", ExactDecimal(), nullable=False),
    Column("quantity", ExactDecimal(), nullable=False),
    Column("mark", ExactDecimal(), nullable=False),
    Column("amount", ExactDecimal(), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Index(None, "bot_id", "at"),
)

events = Table(
    "events", metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("bot_id", Id, ForeignKey("bots.id")),
    Column("kind", String(64), nullable=False),
    Column("severity", String(16), nullable=False),
    Column("code", String(64)),
    Column("message", Text, nullable=False),
    Column("data", JSON, nullable=False),
    Column("actor", String(128)),
    Column("created_at", UTCDateTime(), nullable=False),
    Index(None, "bot_id", "created_at"),
    Index(None, "kind", "created_at"),
)

heartbeats = Table(
    "heartbeats", metadata,
    Column("component", String(128), primary_key=True),
    Column("bot_id", Id, ForeignKey("bots.id")),
    Column("kind", String(16), nullable=False),
    Column("status", String(32), nullable=False),
    Column("detail", Text, nullable=False),
    Column("pid", Integer),
    Column("host", String(255), nullable=False),
    Column("started_at", UTCDateTime(), nullable=False),
    Column("beat_at", UTCDateTime(), nullable=False),
    Column("cycles", BigInteger, nullable=False),
    # How late the last cycle started after its bar closed (scale checks, metrics).
    Column("cycle_lag_ms", Integer),
)

# Corrections an operator made to the ledger (`fleet reconcile BOT --adopt-broker`): the
# position before and after, why, and who — the ledger never changes silently.
position_adjustments = Table(
    "position_adjustments", metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("bot_id", Id, ForeignKey("bots.id"), nullable=False),
    Column("instrument", String(64), nullable=False),
    Column("quantity_before", ExactDecimal(), nullable=False),
    Column("quantity_after", ExactDecimal(), nullable=False),
    Column("average_price_before", ExactDecimal(), nullable=False),
    Column("average_price_after", ExactDecimal(), nullable=False),
    Column("reason", Text, nullable=False),
    Column("actor", String(128), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Index(None, "bot_id", "created_at"),
)

# One row per scheduled period of a job: the unique (job, period_key) is what stops a
# restarted or second scheduler from running a period twice. period_key is the fire time
# in UTC as fixed-width ISO text, so it sorts in time order on both backends.
job_runs = Table(
    "job_runs", metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("job", String(64), nullable=False),
    Column("period_key", String(32), nullable=False),
    Column("status", String(16), nullable=False),
    Column("started_at", UTCDateTime(), nullable=False),
    Column("finished_at", UTCDateTime()),
    Column("attempt", SmallInteger, nullable=False),
    Column("host", String(255), nullable=False),
    Column("pid", Integer),
    Column("detail", Text, nullable=False),
    UniqueConstraint("job", "period_key"),
    CheckConstraint("status IN ('running', 'succeeded', 'failed', 'skipped')", name="status"),
    Index(None, "status", "finished_at"),
)

# Which scheduler runs each market-hours service: a lease renewed while it runs, so two
# schedulers (on one host or several) never run the same service at once, and another
# takes over once the holder dies and its lease runs out.
service_leases = Table(
    "service_leases", metadata,
    Column("service", String(64), primary_key=True),
    Column("owner", String(255), nullable=False),
    Column("expires_at", UTCDateTime(), nullable=False),
    Column("pid", Integer),
    Column("updated_at", UTCDateTime(), nullable=False),
)

# The notification outbox: a row per event worth telling someone, inserted in the same
# transaction as the event (so a notification exists exactly when its event does), plus
# reports and monitor alerts. The notifier expands each row into one delivery per route
# and stamps routed_at; dedup_key makes a scheduled report's enqueue idempotent.
outbox = Table(
    "outbox", metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("bot_id", Id, ForeignKey("bots.id")),
    Column("kind", String(64), nullable=False),
    Column("concern", String(16), nullable=False),
    Column("severity", String(16), nullable=False),
    Column("text", Text, nullable=False),
    # Identical alerts share it (kind, bot, code): repeats within a window collapse.
    Column("collapse_key", String(255), nullable=False),
    Column("dedup_key", String(128), unique=True),
    # Set by the notifier for its own messages: a collapse summary goes only to the route
    # whose alerts it counts; news of a failing route is never sent through that route.
    Column("only_route", String(64)),
    Column("skip_route", String(64)),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("routed_at", UTCDateTime()),
    # A file sent with the text (a PNG chart): a path under the fleet's data directory.
    Column("attachment", Text),
    Index(None, "routed_at", "id"),
    # A bot role may insert here but not SELECT, so no INSERT ... RETURNING id.
    implicit_returning=False,
)

# One outbox row on one route: the unit that is sent, retried, collapsed or dead-lettered.
# delivered_parts survives a crash, so a resumed send never repeats a part that went out.
deliveries = Table(
    "deliveries", metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("outbox_id", Id, ForeignKey("outbox.id"), nullable=False),
    Column("route", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("collapse_key", String(255), nullable=False),
    Column("collapsed_into", Id),
    Column("attempts", Integer, nullable=False),
    Column("delivered_parts", Integer, nullable=False),
    Column("next_attempt_at", UTCDateTime(), nullable=False),
    Column("last_error", Text, nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("sent_at", UTCDateTime()),
    UniqueConstraint("outbox_id", "route"),
    CheckConstraint("status IN ('pending', 'sent', 'collapsed', 'dead')", name="status"),
    Index(None, "status", "next_attempt_at"),
    Index(None, "route", "collapse_key", "created_at"),
)

# Small durable state of the notifier and monitors, by key: the Telegram update offset,
# pending command confirmations, when each report last went out, each monitor key's last
# severity (so a lasting problem is one alert and its end another).
notify_state = Table(
    "notify_state", metadata,
    Column("key", String(128), primary_key=True),
    Column("value", JSON, nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
)

# --- the operations branch (store.migrate): the model registry (docs/registry.md) ---------

# Every trained model version of a bot and timeframe, where its files are (an artifact store
# URL and key) and its state. The partial unique index is the database's guarantee that a
# (bot, timeframe) has at most one active version, whoever writes; `bot` is the config's
# name (a model may be registered before its bot ever ran, so no key into `bots`).
MODEL_STATES = ("candidate", "active", "rejected", "archived", "retired")
model_versions = Table(
    "model_versions", metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("bot", String(64), nullable=False),
    Column("timeframe", String(8), nullable=False),
    Column("policy", String(16), nullable=False),
    Column("algorithm", String(32), nullable=False),
    Column("feature_set_hash", String(64), nullable=False),
    Column("window_start", UTCDateTime(), nullable=False),
    Column("window_end", UTCDateTime(), nullable=False),
    Column("window_bars", Integer, nullable=False),
    Column("metrics", JSON, nullable=False),  # the evaluation report's summary
    Column("state", String(16), nullable=False),
    Column("store_url", Text, nullable=False),
    Column("store_key", String(255), nullable=False),
    Column("manifest_sha256", String(64), nullable=False),
    Column("reason", Text, nullable=False),  # why it is in its state (rejection, rollback)
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("activated_at", UTCDateTime()),
    CheckConstraint("state IN ('candidate', 'active', 'rejected', 'archived', 'retired')",
                    name="state"),
    Index(None, "bot", "timeframe", "id"),
    Index("ix_model_versions_one_active", "bot", "timeframe", unique=True,
          sqlite_where=text("state = 'active'"), postgresql_where=text("state = 'active'")),
)

# Each version's files and their sha256: what a bot verifies before loading the model.
model_files = Table(
    "model_files", metadata,
    Column("version_id", Id, ForeignKey("model_versions.id"), primary_key=True),
    Column("name", String(128), primary_key=True),
    Column("size", BigInteger, nullable=False),
    Column("sha256", String(64), nullable=False),
)

# The audit of every state change: who, why, when, and which version was active before.
model_history = Table(
    "model_history", metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("version_id", Id, ForeignKey("model_versions.id"), nullable=False),
    Column("bot", String(64), nullable=False),
    Column("timeframe", String(8), nullable=False),
    Column("action", String(16), nullable=False),
    Column("from_state", String(16)),
    Column("to_state", String(16), nullable=False),
    Column("previous_active_id", Id),
    Column("actor", String(128), nullable=False),
    Column("reason", Text, nullable=False),
    Column("at", UTCDateTime(), nullable=False),
    CheckConstraint("action IN ('registered', 'activated', 'rolled_back', 'rejected', "
                    "'archived', 'retired')", name="action"),
    Index(None, "bot", "timeframe", "at"),
    Index(None, "version_id"),
)

# The training pipeline (docs/pipeline.md): one row per attempt of a (bot, timeframe,
# period). The unique key is the claim: inserting attempt 1 is taking the period, and a
# forced rerun inserts the next attempt, so two processes can never run the same attempt.
# claimed_by + lease_expires let a dead process's claim be taken over after its lease.
TRAINING_RUN_STATES = ("running", "succeeded", "failed", "rejected", "skipped")
training_runs = Table(
    "training_runs", metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("bot", String(64), nullable=False),
    Column("timeframe", String(8), nullable=False),
    Column("period", String(32), nullable=False),  # 2026-12-08, or 2026-12-08T14:00Z
    Column("attempt", Integer, nullable=False),
    Column("trainer", String(48), nullable=False),
    Column("state", String(16), nullable=False),
    Column("started_at", UTCDateTime(), nullable=False),
    Column("finished_at", UTCDateTime()),
    Column("failed_step", String(16)),
    Column("error", Text, nullable=False),
    Column("version_id", Id),  # the registry's version, once archived
    Column("claimed_by", String(128), nullable=False),  # host:pid
    Column("lease_expires", UTCDateTime(), nullable=False),
    CheckConstraint("state IN ('running', 'succeeded', 'failed', 'rejected', 'skipped')",
                    name="state"),
    UniqueConstraint("bot", "timeframe", "period", "attempt"),
    Index(None, "started_at"),
)

# Each step of a run: recorded before (running) and after (done or failed). `detail` holds
# what the step produced that later steps need (the export's sha256, the trainer's hashes,
# the version id), so a resumed run continues from the last done step.
training_steps = Table(
    "training_steps", metadata,
    Column("run_id", Id, ForeignKey("training_runs.id"), primary_key=True),
    Column("step", String(16), primary_key=True),
    Column("state", String(16), nullable=False),
    Column("started_at", UTCDateTime(), nullable=False),
    Column("finished_at", UTCDateTime()),
    Column("seconds", Double),
    Column("detail", JSON, nullable=False),
    CheckConstraint("state IN ('running', 'done', 'failed', 'skipped')", name="state"),
)

# --- the market_data branch (store.migrate; it may live in a database of its own) ---------

# Bar history (docs/market-data.md): one row per (instrument, timeframe, open time), and
# that key is the primary key, so a rerun backfill or a retried minute inserts nothing
# (ON CONFLICT DO NOTHING) and a range read walks the key. Recorders write 1m bars; higher
# timeframes are aggregated from them on session boundaries (core.bars).
bars = Table(
    "bars", metadata,
    Column("instrument", String(64), primary_key=True),  # "CRYPTO:BTC/USDT", "NSE:INFY"
    Column("timeframe", String(8), primary_key=True),  # core.bars.TIMEFRAMES
    Column("open_time", UTCDateTime(), primary_key=True),
    Column("open", ExactDecimal(), nullable=False),
    Column("high", ExactDecimal(), nullable=False),
    Column("low", ExactDecimal(), nullable=False),
    Column("close", ExactDecimal(), nullable=False),
    Column("volume", ExactDecimal(), nullable=False),
    Column("source", String(64), nullable=False),  # "sandbox", "ccxt:binance"
    Column("recorded_at", UTCDateTime(), nullable=False),
)

# Option chain snapshots (docs/market-data.md, "Option quotes"): one row per instrument per
# minute. On PostgreSQL the table is partitioned by trading day (RANGE, one partition a day,
# made ahead by `fleet data archive` and on a day's first write), so a day leaves the hot
# database as one DETACH + DROP after its Parquet archive is verified. A partitioned table's
# unique key must hold the partition column, hence trading_day first in the primary key;
# instrument and minute alone decide a row (the day follows from the minute).
option_quotes = Table(
    "option_quotes", metadata,
    Column("trading_day", Date, primary_key=True),  # the exchange's local date
    Column("instrument", String(64), primary_key=True),  # opaque: "NFO:NIFTY26D0824000CE"
    Column("minute", UTCDateTime(), primary_key=True),
    Column("underlying", String(32), nullable=False),  # "NIFTY"
    Column("expiry", Date, nullable=False),
    Column("strike", ExactDecimal(), nullable=False),
    Column("option_type", String(2), nullable=False),
    Column("bid", ExactDecimal()),  # NULL: no bid that minute
    Column("ask", ExactDecimal()),
    Column("last", ExactDecimal()),
    Column("volume", BigInteger, nullable=False),
    Column("open_interest", BigInteger, nullable=False),
    Column("underlying_price", ExactDecimal(), nullable=False),
    Column("iv", Double()),  # NULL where it could not be computed
    Column("source", String(64), nullable=False),
    CheckConstraint("option_type IN ('CE', 'PE')", name="option_type"),
    # One minute's chain of an underlying, and a day's straddle series, are read by this.
    Index(None, "underlying", "minute"),
    postgresql_partition_by="RANGE (trading_day)",
)

# Which minutes each collector has written, and which it missed: a retried minute finds its
# row and writes nothing; a missed one stays recorded as a gap (status "missed") until a
# late snapshot fills it. Small (a row a minute), never partitioned, never archived.
option_quote_minutes = Table(
    "option_quote_minutes", metadata,
    Column("collector", String(64), primary_key=True),
    Column("minute", UTCDateTime(), primary_key=True),
    Column("trading_day", Date, nullable=False),
    Column("status", String(8), nullable=False),  # "written" | "missed"
    Column("rows", Integer, nullable=False),
    Column("recorded_at", UTCDateTime(), nullable=False),
    CheckConstraint("status IN ('written', 'missed')", name="status"),
)

# The straddle tracker's snapshots: one row per tracked structure (width 0 the ATM
# straddle, k a strangle k strikes each side of ATM) per tick that changed it. `source` says
# whether the stream gave it or a REST fill after an outage did. Read by underlying and day.
straddle_snapshots = Table(
    "straddle_snapshots", metadata,
    Column("tracker", String(64), primary_key=True),
    Column("underlying", String(32), primary_key=True),
    Column("width", SmallInteger, primary_key=True),  # strikes each side of ATM; 0 straddle
    Column("at", UTCDateTime(), primary_key=True),  # the venue's time of the newest leg tick
    Column("trading_day", Date, nullable=False),
    Column("expiry", Date, nullable=False),
    Column("atm_strike", ExactDecimal(), nullable=False),
    Column("spot", ExactDecimal(), nullable=False),
    Column("call_instrument", String(64), nullable=False),
    Column("call_strike", ExactDecimal(), nullable=False),
    Column("call_bid", ExactDecimal()),
    Column("call_ask", ExactDecimal()),
    Column("call_last", ExactDecimal()),
    Column("call_iv", Double()),
    Column("put_instrument", String(64), nullable=False),
    Column("put_strike", ExactDecimal(), nullable=False),
    Column("put_bid", ExactDecimal()),
    Column("put_ask", ExactDecimal()),
    Column("put_last", ExactDecimal()),
    Column("put_iv", Double()),
    Column("premium", ExactDecimal()),  # call mark + put mark; NULL when a leg has none
    Column("source", String(16), nullable=False),  # "stream" | "rest"
    Column("recorded_at", UTCDateTime(), nullable=False),
    CheckConstraint("source IN ('stream', 'rest')", name="source"),
    CheckConstraint("width >= 0", name="width"),
    Index(None, "underlying", "trading_day", "at"),
)

# Outages a collector could not fill as it went (a dropped stream, a venue that would not
# answer): when, for which scope (an underlying, or '' for the whole collector), why, and
# how much of it a later fill recovered. One row per outage, kept, never archived.
collector_gaps = Table(
    "collector_gaps", metadata,
    Column("collector", String(64), primary_key=True),
    Column("scope", String(64), primary_key=True),
    Column("started_at", UTCDateTime(), primary_key=True),
    Column("ended_at", UTCDateTime(), nullable=False),
    Column("reason", String(200), nullable=False),
    Column("filled", Integer, nullable=False),  # snapshots a REST fill recovered
    Column("recorded_at", UTCDateTime(), nullable=False),
)

# Each collector's counters per trading day (quotes written, ticks rejected by reason, write
# latency sums): added to by the collectors, read by `fleet data status` and the metrics.
collector_counters = Table(
    "collector_counters", metadata,
    Column("collector", String(64), primary_key=True),
    Column("trading_day", Date, primary_key=True),
    Column("name", String(64), primary_key=True),  # "rows", "rejected.crossed", ...
    Column("value", BigInteger, nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
)

# One row per chain snapshot (underlying, expiry, minute) written with the minute's quotes:
# the chain's spot (its rows' lowest underlying price) and the quotes of its ATM strike, so
# a day's straddle series reads 4 rows a minute instead of the whole chain. Small (about
# 1,500 rows a trading day), never partitioned, kept when a day's quotes are archived.
option_chain_minutes = Table(
    "option_chain_minutes", metadata,
    Column("trading_day", Date, primary_key=True),
    Column("underlying", String(32), primary_key=True),
    Column("expiry", Date, primary_key=True),
    Column("minute", UTCDateTime(), primary_key=True),
    Column("spot", ExactDecimal(), nullable=False),
    Column("atm_strike", ExactDecimal()),  # NULL: the chain had one strike, no step
    Column("call_bid", ExactDecimal()),
    Column("call_ask", ExactDecimal()),
    Column("call_last", ExactDecimal()),
    Column("put_bid", ExactDecimal()),
    Column("put_ask", ExactDecimal()),
    Column("put_last", ExactDecimal()),
    Column("quotes", Integer, nullable=False),
)
