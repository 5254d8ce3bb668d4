"""Errors sorted by what the operator (or the code) must do about them.

    FleetError
    ├── UserError                  stop, print one line, exit 2 — the user must fix something
    │   ├── ConfigError            bad fleet.yaml, unknown strategy, negative limit ...
    │   ├── UnknownBotError        a bot name that is not in the config / database
    │   └── SchemaMismatchError    database schema is not the one this code expects
    ├── DatabaseUnavailableError   pause trading, retry until the database is back
    ├── BrokerError
    │   ├── TransientBrokerError   retry with backoff; an order's outcome may be unknown
    │   ├── OrderRejectedError     the venue said no: record it, do not retry blindly
    │   ├── CredentialsError       the venue refused our credentials: halt until they work
    │   └── BadBrokerReplyError    garbage from the venue: record it, never apply it
    ├── StrategyError              user strategy code raised: isolate (halt) that bot only
    └── ReconciliationError        ledger and broker disagree: halt and yell
"""

from __future__ import annotations


class FleetError(Exception):
    """Base of every error fleetkit raises on purpose."""


class UserError(FleetError):
    """Something the user must fix; the CLI prints it on one line and exits with code 2."""

    exit_code = 2


class ConfigError(UserError):
    """Invalid configuration; the message names the file, the key and the fix."""


class UnknownBotError(UserError):
    """A bot name that the configuration or the database does not know."""


class SchemaMismatchError(UserError):
    """The database schema revision differs from the one this code was built for."""


class DatabaseUnavailableError(FleetError):
    """The database cannot be reached right now; trading pauses until it returns."""


class BrokerError(FleetError):
    """Any failure talking to a broker."""


class TransientBrokerError(BrokerError):
    """Timeout, refused connection or 5xx: retry later; an order's outcome is unknown."""


class OrderRejectedError(BrokerError):
    """The broker refused an order; the reason is recorded on the order row."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class CredentialsError(BrokerError):
    """The broker refused our credentials (expired token, revoked key): the bot halts
    until they work again; nothing is sent meanwhile."""


class BadBrokerReplyError(BrokerError):
    """The broker answered with something we refuse to believe (missing fields, NaN ...)."""


class StrategyError(FleetError):
    """A strategy raised; the bot running it is halted, the rest of the fleet goes on."""


class ReconciliationError(FleetError):
    """The ledger and the broker disagree; the bot halts until an operator acts."""
