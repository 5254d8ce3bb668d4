"""What a strategy says: a level on a seven-step scale, or an exact target position."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import IntEnum


class SignalLevel(IntEnum):
    """Seven levels from strong sell to strong buy; HOLD means "change nothing".

    A level maps to a target exposure of level/3 of the bot's position size: STRONG_BUY is a
    full long, WEAK_BUY a third of one; sell levels mean short exposure where shorting is
    allowed and flat where it is not.
    """

    STRONG_SELL = -3
    SELL = -2
    WEAK_SELL = -1
    HOLD = 0
    WEAK_BUY = 1
    BUY = 2
    STRONG_BUY = 3


# A learned policy's discrete actions: action i is ACTION_LEVELS[i], strong sell (0) .. hold
# (3) .. strong buy (6). Training (ml.spec) and trading (strategy.learned) both read it.
ACTION_LEVELS: tuple[SignalLevel, ...] = tuple(sorted(SignalLevel))


@dataclass(frozen=True, slots=True)
class Signal:
    """Exactly one of `level` or `target_quantity` is set; `note` says why, for the audit trail."""

    level: SignalLevel | None = None
    target_quantity: Decimal | None = None
    note: str = ""

    def __post_init__(self) -> None:
        if (self.level is None) == (self.target_quantity is None):
            raise ValueError("a Signal needs exactly one of level or target_quantity")

    @classmethod
    def at(cls, level: SignalLevel, note: str = "") -> Signal:
        return cls(level=level, note=note)

    @classmethod
    def target(cls, quantity: Decimal, note: str = "") -> Signal:
        return cls(target_quantity=quantity, note=note)

    @property
    def is_hold(self) -> bool:
        return self.level is SignalLevel.HOLD
