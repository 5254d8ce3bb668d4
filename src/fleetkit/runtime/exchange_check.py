"""`fleet exchange check`: can we reach this exchange, are our credentials accepted, and
what grid will each bot's symbols trade on — before a bot is pointed at it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fleetkit.brokers.ccxt.broker import CcxtBroker, venue_instrument
from fleetkit.brokers.ccxt.venue import CcxtVenue
from fleetkit.config.models import FleetConfig
from fleetkit.core.errors import UserError
from fleetkit.core.instruments import instrument_key
from fleetkit.core.numbers import plain, to_decimal
from fleetkit.runtime.clock import WallClock
from fleetkit.runtime.connections import venue_spec


@dataclass(frozen=True, slots=True)
class SymbolCheck:
    symbol: str
    bots: list[str]
    last_price: str
    tick_size: str
    step_size: str
    min_quantity: str | None
    min_notional: str | None


@dataclass(frozen=True, slots=True)
class ExchangeCheck:
    name: str
    ccxt_id: str
    testnet: bool
    markets: int
    authenticated: bool
    balances: dict[str, str] = field(default_factory=dict)
    reserved: dict[str, str] = field(default_factory=dict)
    symbols: list[SymbolCheck] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        from dataclasses import asdict

        return asdict(self)


def check_exchange(config: FleetConfig, name: str) -> ExchangeCheck:
    """Load markets, quote every symbol a bot trades there, and (with credentials) prove
    them with a balance call. Raises UserError for an unknown name, and the adapter's
    CredentialsError / TransientBrokerError when the venue says no or cannot be reached."""
    settings = config.exchanges.get(name)
    if settings is None:
        known = ", ".join(config.exchanges) or "none configured"
        raise UserError(f"no exchange named {name!r} under exchanges (known: {known})")
    private = settings.credentials.configured
    venue = CcxtVenue(venue_spec(name, settings), private=private)
    markets = venue.markets()
    wanted: dict[str, list[str]] = {}
    for bot in config.bots:
        if bot.exchange == name:
            for symbol in bot.symbols:
                wanted.setdefault(symbol, []).append(bot.name)
    instruments = {instrument_key("CRYPTO", s): venue_instrument(venue, "CRYPTO", s)
                   for s in wanted}
    feed = CcxtBroker(venue, instruments, WallClock())
    symbols = []
    for key, inst in instruments.items():
        limits = venue.market(inst.symbol).get("limits") or {}
        minimum_cost = (limits.get("cost") or {}).get("min")
        symbols.append(SymbolCheck(
            inst.symbol, wanted[inst.symbol], plain(feed.quote(key).price),
            plain(inst.tick_size), plain(inst.lot_size),
            None if inst.min_quantity is None else plain(inst.min_quantity),
            None if minimum_cost is None else str(minimum_cost)))
    balances: dict[str, str] = {}
    if private:
        raw = venue.call(lambda ex: ex.fetch_balance())
        totals = raw.get("total") if isinstance(raw, dict) else None
        for asset, amount in sorted((totals or {}).items()):
            if amount:
                balances[asset] = plain(to_decimal(amount, what=f"{asset} balance"))
    return ExchangeCheck(name, settings.ccxt_id, settings.testnet, len(markets), private,
                         balances, {k: plain(v) for k, v in settings.reserved.items()}, symbols)
