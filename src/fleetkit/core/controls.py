"""Trading state: the kill switch as data. Read fresh from the database before every order."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class TradingState(StrEnum):
    """ACTIVE trades normally; REDUCING only lets orders that shrink a position through;
    HALTED lets nothing through and stays that way until an operator resumes."""

    ACTIVE = "active"
    REDUCING = "reducing"
    HALTED = "halted"


class HaltSource(StrEnum):
    """Who or what stopped trading; shown to the operator next to the reason."""

    OPERATOR = "operator"
    CIRCUIT_BREAKER = "circuit_breaker"
    RECONCILIATION = "reconciliation"
    STRATEGY_ERROR = "strategy_error"
    CREDENTIALS = "credentials"
    # The broker said something we will not believe (an implausible fill, a fill it
    # reported before with other numbers): nothing more is traded on its word.
    BROKER_REPLY = "broker_reply"


@dataclass(frozen=True, slots=True)
class Control:
    state: TradingState = TradingState.ACTIVE
    reason: str = ""
    source: HaltSource | None = None


@dataclass(frozen=True, slots=True)
class Controls:
    """The fleet-wide switch and one bot's switch, as read together in one query."""

    fleet: Control
    bot: Control

    def needs_halt(self, *, fleet: bool) -> bool:
        """The one rule for halting: the fleet's switch or the bot's, unless that switch is
        halted already (the first halt's reason and source are the ones kept)."""
        switch = self.fleet if fleet else self.bot
        return switch.state is not TradingState.HALTED

    @property
    def effective(self) -> Control:
        """The stricter of the two."""
        order = (TradingState.ACTIVE, TradingState.REDUCING, TradingState.HALTED)
        if order.index(self.fleet.state) >= order.index(self.bot.state):
            return self.fleet if self.fleet.state is not TradingState.ACTIVE else self.bot
        return self.bot
