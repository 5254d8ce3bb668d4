"""A small fleet with known numbers, written through the real ledger, for the dashboard's
query and page tests.

    alpha  NYSE, USD    bought 10 @ 100, sold 4 @ 110, marked 105: realized +40,
                        unrealized +30, fees 3 -> +67 today; fresh heartbeat
    beta   CRYPTO, USDT bought 0.5 @ 60000, marked 59000: -500, fee 1.5 -> -501.5 today;
                        halted by an operator ("spread too wide")
    gamma  NSE, INR     never started (no heartbeat, no trades)
    delta  LSE, GBP     heartbeat 2 h old: stale

Plus 3 max_order_value denials and 1 price_collar denial, a process restart, a monitor
finding, a dead letter, and a failed job run. The fleet's P&L today: 67 - 501.5 = -434.5 USD.

seed_market_data adds the market-data collectors' day (see SeededMarketData).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import insert

from fleetkit.core.controls import TradingState
from fleetkit.core.market_data import Quote
from fleetkit.core.option_quotes import OptionQuote
from fleetkit.core.orders import Fill, OrderIntent, OrderStatus, OrderType, Side
from fleetkit.engine.ports import OrderReport
from fleetkit.sqlutil.engine import write_transaction
from fleetkit.store.collector_stats import CollectorGap, CollectorStats
from fleetkit.store.fleet import FleetStore, Heartbeat
from fleetkit.store.jobs import JobStore, RunOwner, RunStatus
from fleetkit.store.ledger import SqlLedger
from fleetkit.store.option_quotes import OptionQuoteStore
from fleetkit.store.outbox import NotifyState
from fleetkit.store.rows import insert_event
from fleetkit.store.schema import deliveries, outbox, straddle_snapshots

AAPL = "NYSE:AAPL"
BTC = "CRYPTO:BTC/USDT"
FLEET_PNL_TODAY_USD = Decimal("-434.5")


@dataclass(frozen=True)
class Seeded:
    now: datetime
    ids: dict[str, int]


def seed_start(now: datetime) -> datetime:
    """Ten minutes ago, but never before today's UTC midnight (so "today" holds it all)."""
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    return max(now - timedelta(minutes=10), midnight + timedelta(seconds=1))


def seed_fleet(database: Any, now: datetime | None = None) -> Seeded:
    now = now or datetime.now(UTC)
    t0 = seed_start(now)
    store = FleetStore(database.engine)
    ledger = SqlLedger(database.engine, database.fleet_tag())
    ids = {name: store.register_bot(name=name, market=market, currency=currency,
                                    strategy=strategy, mode="sandbox", settings={}, now=t0)
           for name, market, currency, strategy in (
               ("alpha", "NYSE", "USD", "sma_cross"), ("beta", "CRYPTO", "USDT", "rsi_reversion"),
               ("gamma", "NSE", "INR", "buy_and_hold"), ("delta", "LSE", "GBP", "sma_cross"))}
    trade(ledger, ids["alpha"], AAPL, Side.BUY, "10", "100", "a1", t0)
    mark(ledger, ids["alpha"], AAPL, "100", t0 + timedelta(seconds=1))
    trade(ledger, ids["alpha"], AAPL, Side.SELL, "4", "110", "a2", t0 + timedelta(seconds=30))
    mark(ledger, ids["alpha"], AAPL, "105", t0 + timedelta(seconds=60))
    trade(ledger, ids["beta"], BTC, Side.BUY, "0.5", "60000", "b1", t0 + timedelta(seconds=5))
    mark(ledger, ids["beta"], BTC, "59000", t0 + timedelta(seconds=65))
    beat_started = t0 - timedelta(hours=3)
    store.beat(Heartbeat("bot:alpha", "bot", ids["alpha"], "trading", "", 4242, "host-a",
                         beat_started, now - timedelta(seconds=3), 120))
    store.beat(Heartbeat("bot:beta", "bot", ids["beta"], "halted", "", 4243, "host-a",
                         beat_started, now - timedelta(seconds=4), 118))
    store.beat(Heartbeat("bot:delta", "bot", ids["delta"], "trading", "", 4244, "host-a",
                         beat_started, now - timedelta(hours=2), 7))
    store.beat(Heartbeat("notifier", "service", None, "running", "", 4245, "host-a",
                         beat_started, now - timedelta(seconds=2), 900))
    store.set_state("beta", TradingState.HALTED, "spread too wide", "cli:ops",
                    t0 + timedelta(seconds=70))
    _events(database, ids, t0)
    _health(database, now, t0)
    return Seeded(now, ids)


def trade(ledger: SqlLedger, bot_id: int, instrument: str, side: Side, quantity: str,
           price: str, fill_id: str, at: datetime) -> None:
    order = ledger.write_ahead(bot_id, OrderIntent(instrument, side, Decimal(quantity),
                                                   OrderType.MARKET, Decimal(price)), None, at)
    fill = Fill(fill_id, order.client_order_id, instrument, side, Decimal(quantity),
                Decimal(price), Decimal("1.5"), at)
    ledger.record_report(bot_id, order, OrderReport(
        order.client_order_id, f"B-{fill_id}", instrument, side, OrderType.MARKET,
        Decimal(quantity), None, OrderStatus.FILLED, Decimal(quantity), Decimal(price), "",
        (fill,)), at)


def mark(ledger: SqlLedger, bot_id: int, instrument: str, price: str, at: datetime) -> None:
    ledger.mark(bot_id, {instrument: Quote(instrument, Decimal(price), at)}, Decimal(1), at)


def _events(database: Any, ids: dict[str, int], t0: datetime) -> None:
    with write_transaction(database.engine) as conn:
        for index, code in enumerate(["max_order_value"] * 3 + ["price_collar"]):
            insert_event(conn, bot_id=ids["alpha"], kind="risk.denied", severity="warning",
                         code=code, message=f"denied: {code}",
                         now=t0 + timedelta(seconds=10 + index))
        insert_event(conn, bot_id=None, kind="process.exited", severity="error", code="1",
                     message="alpha exited with code 1; restarting (restart #1)",
                     now=t0 + timedelta(seconds=20), data={"process": "alpha", "code": 1})


def _health(database: Any, now: datetime, t0: datetime) -> None:
    NotifyState(database.engine).put("monitor:server:disk:/", {
        "monitor": "server", "severity": "warning", "alerting": True,
        "message": "disk / is 91% full", "since": t0.isoformat(),
        "checked_at": now.isoformat()}, now)
    with write_transaction(database.engine) as conn:
        conn.execute(insert(outbox).values(
            bot_id=None, kind="order.fill", concern="trading", severity="info",
            text="alpha bought 10 NYSE:AAPL", collapse_key="k", created_at=t0, routed_at=t0))
        outbox_id = conn.execute(outbox.select().where(outbox.c.collapse_key == "k")).one().id
        conn.execute(insert(deliveries).values(
            outbox_id=outbox_id, route="ops", status="dead", collapse_key="k", attempts=8,
            delivered_parts=0, next_attempt_at=t0, last_error="403 Forbidden: bot was blocked",
            created_at=t0, updated_at=t0))
    jobs = JobStore(database.engine)
    period = t0.replace(second=0, microsecond=0)
    owner = RunOwner("host-a", 4246)
    jobs.claim("nightly-reconcile", period, owner, t0)
    jobs.finish("nightly-reconcile", period, attempt=1, status=RunStatus.FAILED,
                detail="broker unreachable", now=t0 + timedelta(seconds=3))


# --- market data ---------------------------------------------------------------------------

IST = ZoneInfo("Asia/Kolkata")
CHAIN_STRIKES = range(23800, 24250, 50)  # 9 strikes, both types: 18 quotes a minute
WRITE_MS = {0: 8, 1: 10, 3: 12}  # minute 2 is missed


@dataclass(frozen=True)
class SeededMarketData:
    """What seed_market_data wrote, for the assertions.

    options    minutes 0, 1 and 3 written (18 NIFTY quotes each: 54 rows), minute 2 missed;
               rejects crossed 2 and stale 1; writes 8, 10 and 12 ms (avg 10, max 12);
               heartbeat "collector:options" 5 s old
    straddles  3 BANKNIFTY ATM snapshots (and a strangle); one rejected out-of-order tick;
               one recorded outage (stream dropped, 2 snapshots filled); heartbeat
               "tracker:straddles"
    """

    now: datetime
    day: date
    minutes: tuple[datetime, ...]


def seed_market_data(database: Any, now: datetime | None = None) -> SeededMarketData:
    now = now or datetime.now(UTC)
    day = now.astimezone(IST).date()
    midnight = datetime.combine(day, time(), IST).astimezone(UTC)
    # Four minutes ending now, but never before the market's midnight (all of it "today").
    first = max(now.replace(second=0, microsecond=0) - timedelta(minutes=4), midnight)
    minutes = tuple(first + timedelta(minutes=i) for i in range(4))
    expiry = day + timedelta(days=3)
    quotes = OptionQuoteStore(database.engine)
    stats = CollectorStats(database.engine)
    for index, minute in enumerate(minutes):
        if index == 2:
            quotes.record_missed("options", minute, day, recorded_at=minute + timedelta(
                seconds=45))
            continue
        spot = Decimal("24012.35") + index
        quotes.write_minute("options", minute, day, _chain(minute, spot, expiry),
                            recorded_at=minute + timedelta(seconds=2))
        stats.add("options", day, {"rows": 18, "write_count": 1,
                                   "write_ms_sum": WRITE_MS[index]}, minute)
    stats.add("options", day, {"rejected.crossed": 2, "rejected.stale": 1,
                               "write_ms_max": 12}, now)
    stats.add("straddles", day, {"snapshots": 3, "rejected.out_of_order": 1}, now)
    stats.record_gap(CollectorGap("straddles", "BANKNIFTY", minutes[1],
                                  minutes[1] + timedelta(seconds=20), "stream dropped", 2), now)
    with write_transaction(database.engine) as conn:
        conn.execute(insert(straddle_snapshots), [
            _snapshot(day, expiry, at, width, premium)
            for at, width, premium in ((minutes[0], 0, "410.5"), (minutes[1], 0, "402.25"),
                                       (minutes[3], 0, "398"), (minutes[3], 1, "250"))])
    store = FleetStore(database.engine)
    store.beat(Heartbeat("collector:options", "collector", None, "collecting",
                         "54 rows today, 1 minute missed", 4300, "host-a",
                         now - timedelta(hours=1), now - timedelta(seconds=5), 3))
    store.beat(Heartbeat("tracker:straddles", "collector", None, "streaming",
                         "BANKNIFTY 51200", 4301, "host-a", now - timedelta(hours=1),
                         now - timedelta(seconds=1), 3))
    return SeededMarketData(now, day, minutes)


def _chain(minute: datetime, spot: Decimal, expiry: date) -> list[OptionQuote]:
    quotes = []
    for strike in CHAIN_STRIKES:
        for kind in ("CE", "PE"):
            intrinsic = max(spot - strike, 0) if kind == "CE" else max(strike - spot, 0)
            mid = intrinsic + Decimal("80.05") + Decimal(minute.minute) / 100
            quotes.append(OptionQuote(
                f"NFO:NIFTY{expiry:%y%m%d}{strike}{kind}", "NIFTY", expiry, Decimal(strike),
                kind, mid - Decimal("0.05"), mid + Decimal("0.05"), mid, 1000, 50_000, spot,
                None, "sandbox"))
    return quotes


def _snapshot(day: date, expiry: date, at: datetime, width: int,
              premium: str) -> dict[str, Any]:
    strike = Decimal(51200)
    half = Decimal(premium) / 2
    return {"tracker": "straddles", "underlying": "BANKNIFTY", "width": width, "at": at,
            "trading_day": day, "expiry": expiry, "atm_strike": strike,
            "spot": Decimal("51210.5"), "call_instrument": "NFO:BANKNIFTY51200CE",
            "call_strike": strike + 100 * width, "call_bid": half - 1, "call_ask": half + 1,
            "call_last": half, "call_iv": None, "put_instrument": "NFO:BANKNIFTY51200PE",
            "put_strike": strike - 100 * width, "put_bid": half - 1, "put_ask": half + 1,
            "put_last": half, "put_iv": None, "premium": Decimal(premium),
            "source": "stream", "recorded_at": at + timedelta(seconds=1)}


@dataclass(frozen=True)
class SeededTraining:
    """rl-btc 1h: version 1 then 2 activated (2's metrics beside 1's), version 3 rejected
    in the registry ("gate: Sharpe"); rl-eth 15m: version 4 then 5 activated, then rolled
    back to 4 ("fills slipped"). Runs: rl-btc 1h succeeded (export 2 s, ship 1 s, then
    version 2), then a second period rejected at fetch (a sha256 changed in transit)."""

    now: datetime
    versions: dict[str, int]


def seed_training(database: Any, now: datetime | None = None) -> SeededTraining:
    from fleetkit.store.model_registry import ManifestSummary, ModelFile, ModelRegistry
    from fleetkit.store.training_runs import RunState, StepState, TrainingRunStore

    now = now or datetime.now(UTC)
    moment = [now - timedelta(hours=3)]

    def tick(seconds: float = 60.0) -> datetime:
        moment[0] += timedelta(seconds=seconds)
        return moment[0]

    registry = ModelRegistry(database.engine, clock=tick)
    manifest = ManifestSummary("tft", "ppo", "f" * 16, now - timedelta(days=30),
                               now - timedelta(days=1), 4000, {"model.zip": "a" * 64})
    files = [ModelFile("model.zip", 10, "a" * 64), ModelFile("manifest.json", 5, "b" * 64)]

    def version(bot: str, frame: str, sharpe: float, total: float) -> int:
        return registry.register(bot, frame, manifest, "b" * 64, files,
                                 store_url="file:///models", store_key=f"{bot}/{frame}/{tick()}",
                                 actor="pipeline", metrics={
                                     "total_return": total, "sharpe": sharpe,
                                     "max_drawdown": 0.05, "buy_and_hold_return": 0.02,
                                     "trades": 12}).id

    v1 = version("rl-btc", "1h", 0.5, 0.01)
    registry.activate(v1, actor="pipeline", reason="training run 1")
    v2 = version("rl-btc", "1h", 0.8, 0.03)
    registry.activate(v2, actor="pipeline", reason="training run 2")
    v3 = version("rl-btc", "1h", 0.1, -0.01)
    registry.reject(v3, actor="cli:ops", reason="gate: Sharpe too low")
    v4 = version("rl-eth", "15m", 0.3, 0.02)
    registry.activate(v4, actor="pipeline", reason="training run 3")
    v5 = version("rl-eth", "15m", 0.4, 0.04)
    registry.activate(v5, actor="pipeline", reason="training run 4")
    registry.rollback("rl-eth", "15m", actor="cli:ops", reason="fills slipped")

    runs = TrainingRunStore(database.engine)
    start = tick()
    run = runs.claim("rl-btc", "1h", "2026-12-07T00", trainer="local", owner="bench",
                     lease_s=600, now=start).run
    assert run is not None
    for step, seconds in (("export", 2.0), ("ship", 1.0)):
        at = tick(0.5)
        runs.step_started(run, step, at)
        runs.step_finished(run, step, StepState.DONE, {}, at + timedelta(seconds=seconds))
        tick(seconds)
    runs.finish(run, RunState.SUCCEEDED, now=start + timedelta(seconds=30), owner="bench",
                message="ok", version_id=v2)
    start = tick()
    bad = runs.claim("rl-btc", "1h", "2026-12-07T02", trainer="gpu-box", owner="bench",
                     lease_s=600, now=start).run
    assert bad is not None
    runs.step_started(bad, "fetch", start)
    runs.step_finished(bad, "fetch", StepState.FAILED, {}, start + timedelta(seconds=4))
    runs.finish(bad, RunState.REJECTED, now=start + timedelta(seconds=5), owner="bench",
                message="rejected", error="model.zip arrived with sha256 0000: changed in "
                "transit", failed_step="fetch")
    return SeededTraining(now, {"v1": v1, "v2": v2, "v3": v3, "v4": v4, "v5": v5})
