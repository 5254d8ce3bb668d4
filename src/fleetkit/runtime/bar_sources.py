"""Which venue each traded instrument's bar history comes from (the data.ports.BarSource
adapters), from the fleet config: the one place that knows both the config and the venues.

    sandbox bots        the sandbox service over loopback HTTP, in its venue time
    paper / live bots   the exchange's public candles through ccxt (no credentials: history
                        is public), paginated and spaced by the exchange's rate limit

An instrument traded on both gets one feed, the exchange's (real prices beat invented
ones): the store keeps one history per instrument.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from datetime import datetime, timedelta

from fleetkit.brokers.sandbox.client import SandboxClient
from fleetkit.config.models import FleetConfig
from fleetkit.core.instruments import instrument_key
from fleetkit.core.market_data import Bar
from fleetkit.data.ports import BarSource
from fleetkit.data.recorder import Feed
from fleetkit.engine.ports import MarketData

# The sandbox wants an account name on every client; bar history needs none of its own.
RECORDER_ACCOUNT = "fleet-data-recorder"


class SandboxBars:
    """The sandbox service's history, moved into venue time: in demo time a closed market
    trades a past session, and its bars belong to that session on the calendar."""

    name = "sandbox"

    def __init__(self, client: SandboxClient) -> None:
        self._client = client
        self._offsets: dict[str, timedelta] = {}  # fixed for the life of the venue's book

    def _offset(self, market: str) -> timedelta:
        if market not in self._offsets:
            self._offsets[market] = self._client.market_offset(market)
        return self._offsets[market]

    def now(self, market: str) -> datetime:
        return self._client.market_clock(market).now + self._offset(market)

    def minute_bars(self, instrument: str, start: datetime, end: datetime) -> list[Bar]:
        offset = self._offset(instrument.partition(":")[0])
        bars = self._client.bars(instrument, 60, start - offset, end - offset)
        return [bar._replace(ts=bar.ts + offset) for bar in bars] if offset else bars


class ExchangeBars:
    """An exchange's candles through the ccxt adapter's MarketData half (which pages
    through fetch_ohlcv; the venue object spaces the calls by the exchange's rate limit)."""

    def __init__(self, name: str, feed: MarketData, now: Callable[[], datetime]) -> None:
        self.name = name
        self._feed = feed
        self._now = now

    def now(self, market: str) -> datetime:
        return self._now()

    def minute_bars(self, instrument: str, start: datetime, end: datetime) -> list[Bar]:
        return self._feed.bars(instrument, 60, start, end)


@contextmanager
def configured_feeds(config: FleetConfig, only: set[str] | None = None) -> Iterator[list[Feed]]:
    """One feed per instrument the config's bots trade (narrowed to `only` keys), each
    with its venue's connection, closed on exit."""
    # instrument -> the exchange it comes from; None: the sandbox (a bot with no exchange)
    chosen: dict[str, str | None] = {}
    for bot in config.bots:
        for symbol in bot.symbols:
            key = instrument_key(bot.market, symbol)
            if (only is None or key in only) and chosen.get(key) is None:
                chosen[key] = bot.exchange
    with ExitStack() as stack:
        sources = {venue: _source(config, venue, stack,
                                  [k for k, v in chosen.items() if v == venue])
                   for venue in dict.fromkeys(chosen.values())}
        yield [Feed(key, sources[venue]) for key, venue in chosen.items()]


def _source(config: FleetConfig, exchange: str | None, stack: ExitStack,
            keys: list[str]) -> BarSource:
    if exchange is None:
        client = stack.enter_context(SandboxClient(config.sandbox.base_url, RECORDER_ACCOUNT,
                                                   timeout_s=config.runtime.broker_timeout_s))
        return SandboxBars(client)
    from fleetkit.brokers.ccxt.broker import CcxtBroker, venue_instrument
    from fleetkit.brokers.ccxt.venue import CcxtVenue
    from fleetkit.runtime.clock import WallClock
    from fleetkit.runtime.connections import venue_spec

    settings = config.exchanges[exchange]
    venue = CcxtVenue(venue_spec(exchange, settings), private=False)
    instruments = {key: venue_instrument(venue, *key.split(":", 1)) for key in keys}
    clock = WallClock()
    return ExchangeBars(f"ccxt:{settings.ccxt_id}", CcxtBroker(venue, instruments, clock),
                        clock.now)
