"""Ready-made tampers for TamperingProxy: the lies a broker could tell, each one line to use.

    proxy.set(fill_price_times(1000))                      # every fills page: prices x1000
    proxy.set(fill_price_times(1000, Route.SUBMIT))        # the fills in each submit answer
    proxy.set(order_field(Route.SUBMIT, "side", other_side).only_first(1))

Fill tampers change every fill of an answer that carries fills (a fills page, an order
answer, open orders) on the route given; a fill's order is the answer holding it or, in a
fills page, the latest order answer the account saw about it. Tampers that replay (a fill
reported again, a stranger's fill, a ghost order) copy something the account saw before
and change nothing while it has seen nothing. Names start with the route, so a set of
tampers reads as what each answer said.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

from fleetkit.testing.tamper import JsonObject, Route, Seen, Tamper, orders_in

Value = str | Callable[[Any], Any]
"""A field's new value: as given, or computed from the old one."""

FillEdit = Callable[[JsonObject, JsonObject | None], None]
"""Edit a fill in place, given its order answer (None when the account never saw it)."""


def edit_fills(name: str, route: Route, edit: FillEdit) -> Tamper:
    """The general fill tamper: `edit` every fill of a matching answer."""
    def change(body: JsonObject, seen: Seen) -> JsonObject:
        for fill, order in _fills_with_orders(body, seen):
            edit(fill, order)
        return body

    return Tamper(f"{route}: {name}", route, change)


def fill_field(field: str, value: Value, route: Route = Route.FILLS) -> Tamper:
    """Every fill's `field` set to `value` (text such as "NaN", "0", "-1", or a function)."""
    shown = value if isinstance(value, str) else getattr(value, "__name__", "changed")
    return edit_fills(f"fill {field} {shown}", route,
                      lambda fill, _order: _set(fill, field, value))


def fill_price_times(factor: Decimal | int | str, route: Route = Route.FILLS) -> Tamper:
    return edit_fills(f"fill price x{factor}", route,
                      lambda fill, _order: _set(fill, "price", _times(factor)))


def fill_fee_times(factor: Decimal | int | str, route: Route = Route.FILLS) -> Tamper:
    return edit_fills(f"fill fee x{factor}", route,
                      lambda fill, _order: _set(fill, "fee", _times(factor)))


def fill_without(field: str, route: Route = Route.FILLS) -> Tamper:
    return edit_fills(f"fill without {field}", route, lambda fill, _order: fill.pop(field, None))


def fill_beyond_limit(tick: Decimal | str, route: Route = Route.SUBMIT) -> Tamper:
    """Each fill of a limit order priced one `tick` worse than its limit (a buy above it, a
    sell below): the smallest lie a limit order must not accept."""
    def edit(fill: JsonObject, order: JsonObject | None) -> None:
        limit = None if order is None else order.get("limit_price")
        if limit is not None:
            step = Decimal(tick) if fill.get("side") == "buy" else -Decimal(tick)
            fill["price"] = _text(Decimal(limit) + step)

    return edit_fills(f"fill {tick} beyond its limit", route, edit)


def fills_held_back(route: Route = Route.SUBMIT) -> Tamper:
    """Order answers that carry no fills, whatever their status says (the fills come only in
    the fills pages, as many venues do)."""
    def change(body: JsonObject, _seen: Seen) -> JsonObject:
        for order in orders_in(body):
            order["fills"] = []
        return body

    return Tamper(f"{route}: no fills in the answer", route, change)


def replayed_fill(name: str = "a fill reported again", **changes: Value) -> Tamper:
    """Fills pages with the first fill the account ever saw appended again, its fields
    changed as given (none: a plain duplicate)."""
    def change(body: JsonObject, seen: Seen) -> JsonObject:
        earlier = seen.fills()
        if earlier and isinstance(body.get("fills"), list):
            replay = dict(earlier[0])
            for field, value in changes.items():
                _set(replay, field, value)
            body["fills"].append(replay)
        return body

    return Tamper(f"{Route.FILLS}: {name}", Route.FILLS, change)


def stranger_fill(client_order_id: str = "desk-1") -> Tamper:
    """Fills pages with a trade for an order the bot never placed (someone traded in its
    account), shaped like the first fill the account saw."""
    return replayed_fill(f"a fill for order {client_order_id}", client_order_id=client_order_id,
                         broker_fill_id=lambda fid: f"{fid}-{client_order_id}")


def order_field(route: Route, field: str, value: Value) -> Tamper:
    """Order answers (submit, lookup, cancel, open orders) with `field` set to `value`."""
    def change(body: JsonObject, _seen: Seen) -> JsonObject:
        for order in orders_in(body):
            _set(order, field, value)
        return body

    shown = value if isinstance(value, str) else getattr(value, "__name__", "changed")
    return Tamper(f"{route}: order answer with {field} {shown}", route, change)


def ghost_open_order(client_order_id: str = "ghost-1") -> Tamper:
    """Open-order lists with an order only the broker claims, shaped like the latest order
    answer the account saw."""
    def change(body: JsonObject, seen: Seen) -> JsonObject:
        known = [o for answer in seen.answers() for o in orders_in(answer)]
        if known and isinstance(body.get("orders"), list):
            body["orders"].append(known[-1] | {
                "client_order_id": client_order_id, "broker_order_id": f"B-{client_order_id}",
                "status": "acknowledged", "filled_quantity": "0",
                "average_fill_price": None, "reason": "", "fills": []})
        return body

    return Tamper(f"{Route.OPEN_ORDERS}: an open order {client_order_id}", Route.OPEN_ORDERS,
                  change)


def position_times(field: str, factor: Decimal | int | str) -> Tamper:
    """Positions with `field` ("quantity", "average_price") multiplied by `factor`."""
    def change(body: JsonObject, _seen: Seen) -> JsonObject:
        for position in body.get("positions") or ():
            _set(position, field, _times(factor))
        return body

    return Tamper(f"{Route.POSITIONS}: {field} x{factor}", Route.POSITIONS, change)


def cash_plus(amount: Decimal | int | str) -> Tamper:
    """Balances with `amount` added to every currency's cash (negative: taken away)."""
    def change(body: JsonObject, _seen: Seen) -> JsonObject:
        balances = body.get("balances")
        if isinstance(balances, dict):
            for currency in balances:
                _set(balances, currency, lambda cash: _text(Decimal(cash) + Decimal(amount)))
        return body

    return Tamper(f"{Route.BALANCES}: cash {Decimal(amount):+}", Route.BALANCES, change)


def other_side(side: str) -> str:
    """For order_field/fill_field: the opposite side."""
    return "sell" if side == "buy" else "buy"


def other_order(client_order_id: str) -> str:
    """For order_field: an answer about another order than the one asked about."""
    return f"{client_order_id}-other"


def doubled(quantity: str) -> str:
    """For order_field/fill_field: twice the amount."""
    return _text(Decimal(quantity) * 2)


def halved(quantity: str) -> str:
    return _text(Decimal(quantity) / 2)


def plus_one_percent(price: str) -> str:
    return _text(Decimal(price) * Decimal("1.01"))


def _fills_with_orders(body: JsonObject, seen: Seen
                       ) -> Iterator[tuple[JsonObject, JsonObject | None]]:
    if "orders" in body or "client_order_id" in body:
        for order in orders_in(body):
            for fill in _dicts(order.get("fills")):
                yield fill, order
        return
    for fill in _dicts(body.get("fills")):
        yield fill, seen.order(str(fill.get("client_order_id")))


def _dicts(items: object) -> list[JsonObject]:
    return [item for item in items if isinstance(item, dict)] if isinstance(items, list) else []


def _set(holder: JsonObject, field: str, value: Value) -> None:
    if field in holder or isinstance(value, str):
        holder[field] = value if isinstance(value, str) else value(holder.get(field))


def _times(factor: Decimal | int | str) -> Callable[[Any], str]:
    return lambda text: _text(Decimal(str(text)) * Decimal(factor))


def _text(value: Decimal) -> str:
    return format(value, "f")
