"""Errors the sandbox venue raises, shared by the in-process adapter, the service and the client."""

from __future__ import annotations

from fleetkit.core.errors import BrokerError


class OrderNotFoundError(BrokerError):
    """The account holds no order with this client order id (the venue never received it)."""


class UnknownInstrumentError(BrokerError):
    """The sandbox prices no instrument by this key."""


class UnknownMarketError(BrokerError):
    """The sandbox prices no instrument in this market."""


class DerivativesUnavailableError(BrokerError, LookupError):
    """The sandbox lists no options on this underlying (or has no calendars to list any)."""
