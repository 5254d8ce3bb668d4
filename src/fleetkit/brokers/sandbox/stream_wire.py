"""The sandbox quote stream's messages, as JSON text: what the server writes and the client reads.

In the shape of Zerodha's Kite ticker, in JSON rather than Kite's binary packets:

    client -> server   {"a": "subscribe",   "v": ["NSE:NIFTY", ...]}     (mode "quote")
                       {"a": "unsubscribe", "v": ["NSE:NIFTY", ...]}
                       {"a": "mode",        "v": ["ltp"|"quote"|"full", ["NSE:NIFTY", ...]]}
    server -> client   {"type": "hello", "tick_interval_s", "heartbeat_interval_s",
                        "max_subscriptions", "modes"}                     once, on connect
                       {"type": "tick", "instrument", "seq", "ts", "mode", "last_price",
                        ["bid", "ask", "volume", ["bid_quantity", "ask_quantity"]]}
                       {"type": "ack", "a": action, "v": [instruments done]}
                       {"type": "error", "message", ["instrument"]}
                       {"type": "heartbeat", "ts", "dropped"}             every few seconds

Prices and quantities are decimal strings, times ISO 8601 UTC. `seq` counts the ticks of one
connection from 1; a jump means the server dropped ticks for a slow reader (`dropped` in the
heartbeat counts them).
"""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any, cast

from fleetkit.core.ticks import TICK_MODES, Tick, TickMode

from .wire import decimal_text, time_text

_QUOTE_FIELDS = ("bid", "ask", "volume")
_FULL_FIELDS = ("bid_quantity", "ask_quantity")


class MalformedMessage(ValueError):
    """A message that is not what the protocol says; its text names what is wrong."""


def tick_to_dict(tick: Tick) -> dict[str, Any]:
    message: dict[str, Any] = {"type": "tick", "instrument": tick.instrument, "seq": tick.seq,
                               "ts": time_text(tick.ts), "mode": tick.mode,
                               "last_price": decimal_text(tick.last_price)}
    for name in (*_QUOTE_FIELDS, *_FULL_FIELDS):
        value = getattr(tick, name)
        if value is not None:
            message[name] = decimal_text(value)
    return message


def tick_from_dict(message: dict[str, Any]) -> Tick:
    """A tick as sent; MalformedMessage if a field is missing or of the wrong kind. Values
    that parse but are bad (NaN, negative, crossed) are left for core.ticks to judge."""
    mode = message.get("mode", "ltp")
    if mode not in TICK_MODES:
        raise MalformedMessage(f"unknown tick mode {mode!r}")
    seq = message.get("seq")
    if isinstance(seq, bool) or not isinstance(seq, int):
        raise MalformedMessage(f"seq must be a whole number, got {seq!r}")
    instrument = message.get("instrument")
    if not isinstance(instrument, str) or not instrument:
        raise MalformedMessage(f"instrument must be a name, got {instrument!r}")
    return Tick(instrument, seq, _time(message.get("ts")), _decimal(message, "last_price"),
                cast(TickMode, mode),
                **{name: _decimal(message, name) for name in (*_QUOTE_FIELDS, *_FULL_FIELDS)
                   if message.get(name) is not None})


def parse(text: str | bytes) -> dict[str, Any]:
    """One message as a JSON object; MalformedMessage otherwise."""
    try:
        message = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedMessage(f"not JSON: {exc}") from None
    if not isinstance(message, dict):
        raise MalformedMessage("a message must be a JSON object")
    return message


def dumps(message: dict[str, Any]) -> str:
    return json.dumps(message, separators=(",", ":"))


def _decimal(message: dict[str, Any], name: str) -> Decimal:
    value = message.get(name)
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise MalformedMessage(f"{name} must be a number, got {value!r}")
    try:
        return Decimal(str(value))
    except InvalidOperation:
        raise MalformedMessage(f"{name} must be a number, got {value!r}") from None


def _time(value: object) -> datetime:
    if not isinstance(value, str):
        raise MalformedMessage(f"ts must be an ISO 8601 time, got {value!r}")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise MalformedMessage(f"ts must be an ISO 8601 time, got {value!r}") from None
    if moment.tzinfo is None:
        raise MalformedMessage(f"ts must carry its time zone, got {value!r}")
    return moment
