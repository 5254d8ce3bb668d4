"""Telegram commands end to end: updates read from the fake Bot API over HTTP, answered from
the fleet database (SQLite and PostgreSQL), halts and resumes written through the same
audited kill switch as the CLI. Strangers get nothing; fleet-wide and resume commands wait
for a code; the update offset and open questions survive a restart."""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select

from fleetkit.config.loader import LoadedConfig, parse_config
from fleetkit.core.controls import Control, HaltSource, TradingState
from fleetkit.core.market_data import Quote
from fleetkit.core.orders import Side
from fleetkit.notify import TelegramSender
from fleetkit.notify.commands import CommandDesk, CommandPolicy
from fleetkit.runtime.notify_tasks import Commands
from fleetkit.store.database import Database
from fleetkit.store.fleet import FleetStore, Heartbeat
from fleetkit.store.ledger import SqlLedger
from fleetkit.store.outbox import NotifyState
from fleetkit.store.schema import events, outbox
from fleetkit.testing.fake_telegram import FakeTelegram
from tests.integration.dashboard.dashboard_seed import trade as seed_trade

OPS_CHAT = "-100777"
STRANGER_CHAT = "-100666"
OPERATOR = "4242"
OTHER_OPERATOR = "4343"
OFFSET_KEY = "commands.offset:ops"
T0 = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)  # a Monday, NYSE in session
ACTOR = f"telegram:user:{OPERATOR}@chat:{OPS_CHAT}"
CODE_ASKED = re.compile(r"Reply /confirm (\d{4}) within 2 min\.$")

CONFIG = f"""
bots:
  - {{name: alpha, market: CRYPTO, symbols: ["BTC/USDT"], strategy: buy_and_hold}}
  - {{name: beta, market: CRYPTO, symbols: ["ETH/USDT"], strategy: buy_and_hold}}
  - {{name: gamma, market: NYSE, symbols: [AAPL], strategy: buy_and_hold}}
notify:
  routes:
    - {{name: ops, type: telegram, chat_id: "{OPS_CHAT}", token_env: FLEET_TEST_TG_TOKEN,
       concerns: [trading, infrastructure, brief]}}
  commands:
    route: ops
    allowed_chat_ids: ["{OPS_CHAT}"]
    allowed_user_ids: ["{OPERATOR}", "{OTHER_OPERATOR}"]
"""
BOTS = (("alpha", "CRYPTO", "USDT"), ("beta", "CRYPTO", "USDT"), ("gamma", "NYSE", "USD"))


class Ops:
    """The command listener as the notifier runs it, on a clock the test moves."""

    def __init__(self, loaded: LoadedConfig, database: Database, telegram: FakeTelegram,
                 sender: TelegramSender) -> None:
        self.loaded, self.database, self.telegram, self.sender = (loaded, database, telegram,
                                                                  sender)
        self.now = T0
        self.store = FleetStore(database.engine)
        self.ids = {name: self.store.register_bot(name=name, market=market, currency=currency,
                                                  strategy="buy_and_hold", mode="sandbox",
                                                  settings={}, now=T0)
                    for name, market, currency in BOTS}
        self._seed = 0
        self.commands = self.restart()

    def restart(self) -> Commands:
        """A new listener and desk (a restarted notifier) on the same database."""
        settings = self.loaded.config.notify.commands
        assert settings is not None
        policy = CommandPolicy(frozenset(settings.allowed_chat_ids),
                               frozenset(settings.allowed_user_ids or ()),
                               settings.confirm_ttl_s)
        self._seed += 1
        self.commands = Commands(self.loaded, self.database,
                                 CommandDesk(policy, random.Random(self._seed)), self.sender,
                                 OFFSET_KEY, poll_timeout_s=0, now=lambda: self.now)
        return self.commands

    def say(self, *texts: str, chat: str = OPS_CHAT, user: str = OPERATOR) -> list[str]:
        """Send `texts` to the bot, let the listener poll once; the replies it sent."""
        before = len(self.telegram.messages)
        for text in texts:
            self.telegram.inject_message(chat, text, from_user_id=user)
        assert self.commands.poll_once() == len(texts)
        replies = self.telegram.messages[before:]
        assert {m.chat_id for m in replies} <= {chat}
        return [m.text for m in replies]

    def ask(self, text: str) -> str:
        """Send a command that needs confirming; the code it asked for."""
        (question,) = self.say(text)
        match = CODE_ASKED.search(question)
        assert match is not None, question
        return match[1]

    def bot_control(self, name: str) -> Control:
        return SqlLedger(self.database.engine, "-").controls(self.ids[name]).bot

    def fleet_control(self) -> Control:
        return SqlLedger(self.database.engine, "-").controls(self.ids["alpha"]).fleet

    def control_events(self) -> list[tuple[str, int | None, str | None, str]]:
        with self.database.engine.connect() as conn:
            rows = conn.execute(select(events.c.kind, events.c.bot_id, events.c.actor,
                                       events.c.message)
                                .where(events.c.kind.like("control.%"))
                                .order_by(events.c.id)).all()
        return [(r.kind, r.bot_id, r.actor, r.message) for r in rows]


@pytest.fixture
def ops(fleet_db: Database, telegram: FakeTelegram, sender: TelegramSender,
        tmp_path: Path) -> Iterator[Ops]:
    loaded = LoadedConfig(parse_config(CONFIG, "fleet.yaml"), "fleet.yaml", tmp_path)
    yield Ops(loaded, fleet_db, telegram, sender)


def trade(database: Database, bot_id: int, instrument: str, side: Side, quantity: str,
          price: str, fill_id: str, at: datetime) -> None:
    """One market order filled at `price` (fee 1.5), recorded as the bot's runner does."""
    seed_trade(SqlLedger(database.engine, database.fleet_tag()), bot_id, instrument, side,
               quantity, price, fill_id, at)


def mark(database: Database, bot_id: int, instrument: str, price: str, at: datetime) -> None:
    SqlLedger(database.engine, database.fleet_tag()).mark(
        bot_id, {instrument: Quote(instrument, Decimal(price), at)}, Decimal(1), at)


def a_day_of_trading(ops: Ops) -> None:
    """alpha: +100 realized, +50 unrealized, 3 fees = +147 today; beta halted by hand;
    gamma never started."""
    btc = "CRYPTO:BTC/USDT"
    trade(ops.database, ops.ids["alpha"], btc, Side.BUY, "0.5", "60000", "f1", T0)
    trade(ops.database, ops.ids["alpha"], btc, Side.SELL, "0.25", "60400", "f2", T0)
    mark(ops.database, ops.ids["alpha"], btc, "60200", T0)
    ops.store.beat(Heartbeat("bot:alpha", "bot", ops.ids["alpha"], "trading", "", 1234,
                             "host-a", T0 - timedelta(hours=1), T0 - timedelta(seconds=5), 60))
    ops.store.set_state("beta", TradingState.HALTED, "spread too wide", "cli:ops", T0)


# --- who is answered ------------------------------------------------------------------------


def test_a_stranger_chats_halt_gets_no_reply_and_halts_nothing(ops: Ops) -> None:
    last = ops.telegram.inject_message(STRANGER_CHAT, "/halt alpha", from_user_id=OPERATOR)
    assert ops.commands.poll_once() == 1
    assert [c.method for c in ops.telegram.calls] == ["getUpdates"]  # no sendMessage at all
    assert ops.bot_control("alpha").state is TradingState.ACTIVE
    assert ops.control_events() == []
    # Read and confirmed all the same, so it is not read again on the next poll.
    assert NotifyState(ops.database.engine).get(OFFSET_KEY) == last + 1
    assert ops.commands.poll_once() == 0


def test_a_user_not_on_the_list_is_ignored_even_in_the_ops_chat(ops: Ops) -> None:
    assert ops.say("/halt alpha", user="999") == []
    assert ops.bot_control("alpha").state is TradingState.ACTIVE
    assert ops.say("/halt alpha", user=OTHER_OPERATOR) == [
        "bot alpha is now HALTED — checked before every order"]


# --- reading the fleet ----------------------------------------------------------------------


def test_status_gives_the_fleet_state_and_names_the_halted_bot(ops: Ops) -> None:
    a_day_of_trading(ops)
    assert ops.say("/status") == [
        "Fleet ACTIVE · 3 bots (1 active, 1 halted, 1 stopped) · today +147.00 USD\n"
        "HALTED beta: spread too wide [operator, by cli:ops]"]


def test_pnl_gives_each_bots_numbers_grouped_by_market(ops: Ops) -> None:
    a_day_of_trading(ops)
    (reply,) = ops.say("/pnl")
    # Column padding is the report's business (unit-tested); here: what each line says.
    assert [" ".join(line.split()) for line in reply.splitlines()] == [
        "P&L 15:00 UTC — fleet +147.00 USD today (3 bots, 1 halted)",
        "",
        "CRYPTO — +147.00 USD (2 bots, 1 halted)",
        "alpha +147.00 USDT = +147.00 USD (r +100.00 u +50.00) 1 pos 2 fills",
        "beta +0.00 USDT = +0.00 USD (r +0.00 u +0.00) 0 pos HALTED",
        "",
        "NYSE — +0.00 USD (1 bot)",
        "gamma +0.00 USD (r +0.00 u +0.00) 0 pos",
    ]


# --- halting --------------------------------------------------------------------------------


def test_halting_one_bot_takes_effect_at_once_and_is_audited(ops: Ops) -> None:
    assert ops.say("/halt alpha") == ["bot alpha is now HALTED — checked before every order"]
    assert ops.bot_control("alpha") == Control(
        TradingState.HALTED, "halted from Telegram", HaltSource.OPERATOR)
    assert ops.bot_control("beta").state is TradingState.ACTIVE
    assert ops.fleet_control().state is TradingState.ACTIVE
    assert ops.control_events() == [
        ("control.halted", ops.ids["alpha"], ACTOR,
         f"bot halted by {ACTOR} (operator): halted from Telegram")]
    with ops.database.engine.connect() as conn:
        alert = conn.execute(select(outbox.c.concern, outbox.c.severity)
                             .where(outbox.c.kind == "control.halted")).one()
    assert tuple(alert) == ("trading", "critical")
    assert ops.say("/halt alpha") == [
        "bot alpha is now HALTED (it already was) — checked before every order"]
    assert ops.say("/halt nosuch") == ["no bot named nosuch"]


def test_halting_the_fleet_waits_for_the_right_code(ops: Ops) -> None:
    code = ops.ask("/halt all")
    assert ops.fleet_control().state is TradingState.ACTIVE
    wrong = f"{(int(code) + 1) % 10_000:04d}"
    assert ops.say(f"/confirm {wrong}") == [
        "that code does not match the open question (/halt all)"]
    assert ops.fleet_control().state is TradingState.ACTIVE
    assert ops.control_events() == []

    assert ops.say(f"/confirm {code}") == ["the fleet is now HALTED — checked before every order"]
    assert ops.fleet_control() == Control(
        TradingState.HALTED, "halted from Telegram", HaltSource.OPERATOR)
    assert [(kind, bot, actor) for kind, bot, actor, _ in ops.control_events()] == [
        ("control.halted", None, ACTOR)]
    assert ops.say(f"/confirm {code}") == ["nothing to confirm: no open question in this chat"]
    (status,) = ops.say("/status")
    assert status.startswith("Fleet HALTED (halted from Telegram) · 3 bots (3 halted)")


def test_a_code_past_its_time_confirms_nothing(ops: Ops) -> None:
    code = ops.ask("/halt all")
    ops.now += timedelta(seconds=121)
    assert ops.say(f"/confirm {code}") == ["that confirmation expired; send /halt all again"]
    assert ops.fleet_control().state is TradingState.ACTIVE


# --- resuming -------------------------------------------------------------------------------


def test_resuming_a_bot_waits_for_the_code(ops: Ops) -> None:
    ops.store.set_state("alpha", TradingState.HALTED, "manual check", "cli:ops", T0)
    code = ops.ask("/resume alpha")
    assert ops.bot_control("alpha").state is TradingState.HALTED
    assert ops.say(f"/confirm {code}") == ["bot alpha resumed (was halted: manual check)"]
    assert ops.bot_control("alpha") == Control(TradingState.ACTIVE, "resumed from Telegram",
                                               HaltSource.OPERATOR)
    assert [(kind, actor) for kind, _, actor, _ in ops.control_events()] == [
        ("control.halted", "cli:ops"), ("control.active", ACTOR)]
    code = ops.ask("/resume alpha")
    assert ops.say(f"/confirm {code}") == ["bot alpha was not halted; nothing changed"]


def test_a_bot_halted_by_reconciliation_is_resumed_from_the_cli_only(ops: Ops) -> None:
    reason = "position differs: ledger 0.5, broker 0.4 CRYPTO:ETH/USDT"
    SqlLedger(ops.database.engine, "-").set_control(
        ops.ids["beta"], TradingState.HALTED, reason, HaltSource.RECONCILIATION, "reconciler",
        T0)
    code = ops.ask("/resume beta")
    assert ops.say(f"/confirm {code}") == [
        "bot beta was halted because its ledger and broker disagree: resume it from the CLI "
        "after `fleet reconcile beta`"]
    assert ops.bot_control("beta") == Control(TradingState.HALTED, reason,
                                              HaltSource.RECONCILIATION)
    assert [kind for kind, *_ in ops.control_events()] == ["control.halted"]


# --- restarts and outages -------------------------------------------------------------------


def test_the_offset_and_an_open_question_survive_a_restart(ops: Ops) -> None:
    first = ops.say("/halt alpha", "/halt all")
    assert first[0] == "bot alpha is now HALTED — checked before every order"
    match = CODE_ASKED.search(first[1])
    assert match is not None

    ops.restart()  # a new desk, a new random code generator: only the database remembers
    assert ops.say(f"/confirm {match[1]}") == [
        "the fleet is now HALTED — checked before every order"]
    # /halt alpha was not handled a second time: one halt for alpha, one for the fleet.
    assert [(kind, bot) for kind, bot, *_ in ops.control_events()] == [
        ("control.halted", ops.ids["alpha"]), ("control.halted", None)]
    ops.restart()
    assert ops.commands.poll_once() == 0


def test_a_failed_poll_keeps_the_offset_and_reads_the_message_next_time(ops: Ops) -> None:
    ops.telegram.inject_message(OPS_CHAT, "/halt alpha", from_user_id=OPERATOR)
    ops.telegram.fail_next(1, "server_error", method="getUpdates", status=502)
    assert ops.commands.poll_once() is None
    assert NotifyState(ops.database.engine).get(OFFSET_KEY) is None
    assert ops.bot_control("alpha").state is TradingState.ACTIVE
    assert ops.commands.poll_once() == 1
    assert ops.bot_control("alpha").state is TradingState.HALTED
    assert ops.telegram.texts(OPS_CHAT) == ["bot alpha is now HALTED — checked before every order"]
