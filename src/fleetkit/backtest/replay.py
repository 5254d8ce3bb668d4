"""Replaying bots over bar tapes: the same assembled bots and cycle as live (engine.assembly),
one sandbox venue matching every account, one in-memory ledger for the whole fleet (so the
fleet's daily-loss breaker sees every bot), and a clock that moves from one bar close to
the next.

At each bar close, in time order: the venue matches what rests (its matching thread, live),
then every bot whose bars close now runs its cycle — fills and kill switches, its bars
traded (or only fed to the strategy while halted), marks and breakers — as `fleet bot run`
does at that moment. Bots run in the order given; a bot's instruments in its own order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from itertools import accumulate, chain, repeat
from operator import add

import numpy as np
import numpy.typing as npt

from fleetkit.backtest.tape import BarTape
from fleetkit.backtest.venue import SimClock, TapeQuotes, TapesPrices
from fleetkit.brokers.sandbox.book import MemoryBook
from fleetkit.brokers.sandbox.broker import SandboxBroker
from fleetkit.brokers.sandbox.config import VenueConfig
from fleetkit.brokers.sandbox.venue import SandboxVenue
from fleetkit.core.market_data import Bar, Quote
from fleetkit.engine.assembly import AssembledBot, BotRecipe, assemble_bot
from fleetkit.store.memory import MemoryLedger

Progress = Callable[[int], None]
_PROGRESS_EVERY = 65_536


@dataclass(frozen=True, slots=True)
class ReplayBot:
    """A bot to replay and the tape of each of its instruments (keys as in the recipe)."""

    recipe: BotRecipe
    tapes: Mapping[str, BarTape]


class PositionTrail:
    """Each instrument's position after every cycle that may have moved it; the equity curve
    is rebuilt from these with numpy at the end, so quiet bars cost nothing (statistics, not
    accounting: the ledger holds the Decimal truth)."""

    __slots__ = ("rows",)

    def __init__(self) -> None:
        self.rows: dict[str, list[tuple[float, float, float, float]]] = {}

    def record(self, ts_s: float, ledger: MemoryLedger, bot_id: int,
               keys: Sequence[str]) -> None:
        positions = ledger.positions(bot_id)
        for key in keys:
            position = positions.get(key)
            if position is not None:
                self.rows.setdefault(key, []).append((
                    ts_s, float(position.quantity), float(position.average_price),
                    float(position.realized_pnl - position.fees)))

    def equity(self, key: str, tape: BarTape) -> npt.NDArray[np.float64]:
        """This instrument's P&L (realized - fees + unrealized) at each of its bar closes."""
        rows = self.rows.get(key)
        if not rows:
            return np.zeros(len(tape))
        at_s, quantity, average, base = (np.asarray(c, dtype=np.float64) for c in zip(*rows,
                                                                                       strict=True))
        ends = (tape.ts_s + tape.interval_s).astype(np.float64)
        segment = np.searchsorted(at_s, ends, side="right")
        q = np.r_[0.0, quantity][segment]
        curve: npt.NDArray[np.float64] = (np.r_[0.0, base][segment]
                                          + q * (tape.close - np.r_[0.0, average][segment]))
        return curve


class FleetReplay:
    """Bots assembled on one venue and one ledger, ready to replay their tapes once."""

    def __init__(self, bots: Sequence[ReplayBot], venue: VenueConfig, *,
                 keep_marks: bool = False) -> None:
        if not bots:
            raise ValueError("nothing to replay: no bots")
        self.tapes = _shared_tapes(bots)
        start = min(int(t.ts_s[0]) for t in self.tapes.values())
        self.clock = SimClock(datetime.fromtimestamp(start, UTC))
        self.ledger = MemoryLedger("bt", keep_snapshots=keep_marks)
        self.prices = TapesPrices(self.tapes)
        self.venue = SandboxVenue(self.prices, MemoryBook(), self.clock, venue)
        # Held-back marks need the fleet's P&L to move only with this bot's marks: one bot.
        lazy = not keep_marks and len(bots) == 1
        self.bots = [assemble_bot(b.recipe, self.ledger, *_account(self.venue, b.recipe),
                                  self.clock, record_signals=False, lazy_marks=lazy)
                     for b in bots]
        self.trails = [PositionTrail() for _ in bots]
        self._specs = list(bots)

    def run(self, progress: Progress | None = None) -> None:
        if len(self.bots) == 1 and len(self._specs[0].tapes) == 1:
            self._run_one(progress)
        else:
            self._run_fleet(progress)

    def _run_one(self, progress: Progress | None) -> None:
        """One bot, one instrument: the cycle of `_run_fleet` with its lookups hoisted."""
        assembled, trail = self.bots[0], self.trails[0]
        [(key, tape)] = self._specs[0].tapes.items()
        quotes, keys = self.prices.quotes[key], [key]
        bot, bot_id = assembled.bot, assembled.recipe.identity.id
        begin, trade = assembled.begin_cycle, assembled.trade
        # What begin_cycle and end_cycle come to here: with no order open, begin_cycle only
        # reads the kill switches; given the marks, end_cycle only hands them to the brakes.
        check_halt, end_cycle = assembled.brakes.check_halt, assembled.brakes.mark
        set_clock, match, ledger = self.clock.set, self.venue.match, self.ledger
        price_at_row, position = quotes.price_at_row, bot.position
        closes_are_prices = quotes.closes_are_prices
        starts, ends = _bar_times(tape)
        bars = map(_new_tuple, repeat(Bar), zip(starts, *_price_columns(tape), strict=True))
        halted, controls_seen = False, -1
        for row, (now, bar) in enumerate(zip(ends, bars, strict=True)):
            set_clock(now)
            moved = bot.has_open_orders
            if moved:
                match(now)
                halted = begin()
            elif halted or ledger.controls_changes != controls_seen:
                # Not halted at the last read and no switch set since: a read now finds
                # both switches as they were and changes nothing, so it is skipped.
                controls_seen = ledger.controls_changes
                halted = check_halt()
            if trade(key, bar, halted):
                moved = True
            if position(key):
                price = bar.close if closes_are_prices else price_at_row(row)
                end_cycle(partial(_one_quote, key, quotes, row), {key: price})
            else:
                end_cycle(_NO_MARKS, _NO_PRICES)
            if moved:
                trail.record(now.timestamp(), ledger, bot_id, keys)
            if progress is not None and row % _PROGRESS_EVERY == 0:
                progress(row)
        if progress is not None:
            progress(len(tape))

    def _run_fleet(self, progress: Progress | None) -> None:
        events = _timeline(self._specs)
        keys = [list(b.tapes) for b in self._specs]
        # Each bot meets each of its tapes' rows once, in order: one stream of bars apiece.
        bars = [[_bars(tape) for tape in b.tapes.values()] for b in self._specs]
        ends, bot_of, key_of, row_of = (events[name].tolist() for name in
                                        ("end", "bot", "key", "row"))
        count = len(ends)
        i = 0
        while i < count:
            end = ends[i]
            self.clock.set(datetime.fromtimestamp(end, UTC))
            for b in self.bots:
                if b.bot.has_open_orders:
                    self.venue.match(self.clock.now())
                    break
            while i < count and ends[i] == end:
                bot_index = bot_of[i]
                assembled = self.bots[bot_index]
                halted = assembled.begin_cycle(only_if_open=True)
                moved = assembled.bot.has_open_orders
                bot_keys, bot_bars = keys[bot_index], bars[bot_index]
                rows: dict[str, int] = {}
                while i < count and ends[i] == end and bot_of[i] == bot_index:
                    k = key_of[i]
                    key = bot_keys[k]
                    rows[key] = row_of[i]
                    if assembled.trade(key, next(bot_bars[k]), halted) is not None:
                        moved = True
                    i += 1
                    if progress is not None and i % _PROGRESS_EVERY == 0:
                        progress(i)
                assembled.end_cycle(self._marks(assembled, rows))
                if moved:
                    self.trails[bot_index].record(end, self.ledger,
                                                  assembled.recipe.identity.id, bot_keys)
        if progress is not None:
            progress(count)

    def _marks(self, assembled: AssembledBot, rows: Mapping[str, int]) -> dict[str, Quote]:
        """The held instruments' quotes now, as the venue would give them: the close of
        each one's last bar ended by now."""
        bot, quotes, now = assembled.bot, self.prices.quotes, self.clock.now()
        return {key: quotes[key].at_row(rows[key]) if key in rows else quotes[key].at(now)
                for key in bot.slots if bot.position(key)}


_NO_MARKS: dict[str, Quote] = {}
_NO_PRICES: dict[str, float] = {}


def _one_quote(key: str, quotes: TapeQuotes, row: int) -> dict[str, Quote]:
    return {key: quotes.at_row(row)}


def _account(venue: SandboxVenue, recipe: BotRecipe) -> tuple[SandboxBroker, SandboxBroker]:
    # The replay matches at every bar close itself, as the service's matching thread would.
    broker = SandboxBroker(venue, recipe.identity.name, match_on_call=False)
    return broker, broker


def _shared_tapes(bots: Sequence[ReplayBot]) -> dict[str, BarTape]:
    tapes: dict[str, BarTape] = {}
    for bot in bots:
        missing = set(bot.recipe.instruments) - set(bot.tapes)
        if missing:
            raise ValueError(f"bot {bot.recipe.identity.name}: no tape for "
                             f"{', '.join(sorted(missing))}")
        for key, tape in bot.tapes.items():
            if not len(tape):
                # Replay starts at the first bar and prices come from the tape: a tape with
                # none (the market closed all along) has nothing for either to stand on.
                raise ValueError(f"bot {bot.recipe.identity.name}: no bars for {key} in the "
                                 "window; leave it out or widen the window")
            if tape.interval_s != bot.recipe.interval_s:
                raise ValueError(f"bot {bot.recipe.identity.name}: {key} has "
                                 f"{tape.interval_s}s bars, the bot trades "
                                 f"{bot.recipe.interval_s}s bars")
            known = tapes.setdefault(key, tape)
            if known is not tape and known.interval_s != tape.interval_s:
                raise ValueError(f"{key}: two bots replay it at different bar intervals; "
                                 "one venue serves one tape per instrument")
    return tapes


def _timeline(bots: Sequence[ReplayBot]) -> npt.NDArray[np.void]:
    """Every bar of every bot as (end, bot, key, row), in the order the cycles happen."""
    parts = []
    for b, bot in enumerate(bots):
        for k, tape in enumerate(bot.tapes.values()):
            part = np.empty(len(tape), dtype=[("end", np.int64), ("bot", np.int64),
                                              ("key", np.int64), ("row", np.int64)])
            part["end"] = tape.ts_s + tape.interval_s
            part["bot"], part["key"] = b, k
            part["row"] = np.arange(len(tape))
            parts.append(part)
    events = np.concatenate(parts)
    return events[np.lexsort((events["key"], events["bot"], events["end"]))]


# Bar's own constructor, minus the Python frame namedtuple's __new__ adds around it.
_new_tuple = tuple.__new__


def _bar_times(tape: BarTape) -> tuple[Iterator[datetime], Iterator[datetime]]:
    """Every bar's start and end as datetimes: within each run of back-to-back bars, the last
    one plus the interval (C loops adding a timedelta, not a datetime made per bar from its
    timestamp; in UTC the two are the same instant)."""
    ts = tape.ts_s
    if not len(ts):
        return iter(()), iter(())
    step = timedelta(seconds=tape.interval_s)
    cuts = (np.flatnonzero(np.diff(ts) != tape.interval_s) + 1).tolist()
    runs = [(datetime.fromtimestamp(int(ts[first]), UTC), stop - first)
            for first, stop in zip([0, *cuts], [*cuts, len(ts)], strict=True)]

    def times(offset: timedelta) -> Iterator[datetime]:
        return chain.from_iterable(accumulate(repeat(step, count - 1), add, initial=first + offset)
                                   for first, count in runs)

    return times(timedelta(0)), times(step)


def _bars(tape: BarTape) -> Iterator[Bar]:
    """The tape's bars in order, made as they are asked for."""
    starts, _ = _bar_times(tape)
    return map(_new_tuple, repeat(Bar), zip(starts, *_price_columns(tape), strict=True))


def _price_columns(tape: BarTape) -> tuple[list[float], ...]:
    return (tape.open.tolist(), tape.high.tolist(), tape.low.tolist(), tape.close.tolist(),
            tape.volume.tolist())

