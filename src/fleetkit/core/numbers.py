"""Decimal and time helpers that every layer shares: money is Decimal, time is tz-aware UTC."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_EVEN, Decimal, InvalidOperation

ZERO = Decimal(0)


def to_decimal(value: object, *, what: str = "value") -> Decimal:
    """Convert a number or numeric string to a finite Decimal, or raise ValueError naming `what`.

    Floats go through repr() so 0.1 becomes Decimal("0.1"), not its binary expansion.
    """
    if isinstance(value, bool):
        raise ValueError(f"{what} must be a number, got a boolean")
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int):
        result = Decimal(value)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{what} must be a finite number, got {value!r}")
        result = Decimal(repr(value))
    elif isinstance(value, str):
        try:
            result = Decimal(value.strip())
        except InvalidOperation as exc:
            raise ValueError(f"{what} must be a number, got {value!r}") from exc
    else:
        raise ValueError(f"{what} must be a number, got {type(value).__name__}")
    if not result.is_finite():
        raise ValueError(f"{what} must be a finite number, got {value!r}")
    return result


def plain(value: Decimal) -> str:
    """A decimal as people and JSON consumers read it: "1000", "0.00001", never "1E+3"."""
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "0") else text


def floor_to_step(value: Decimal, step: Decimal) -> Decimal:
    """Largest multiple of `step` not above `value` (toward minus infinity)."""
    if step <= 0:
        raise ValueError("step must be positive")
    return ((value / step).to_integral_value(rounding=ROUND_FLOOR) * step).quantize(step)


def ceil_to_step(value: Decimal, step: Decimal) -> Decimal:
    """Smallest multiple of `step` not below `value`."""
    if step <= 0:
        raise ValueError("step must be positive")
    return ((value / step).to_integral_value(rounding=ROUND_CEILING) * step).quantize(step)


def round_to_step(value: Decimal, step: Decimal) -> Decimal:
    """Nearest multiple of `step` (banker's rounding on ties)."""
    if step <= 0:
        raise ValueError("step must be positive")
    return ((value / step).to_integral_value(rounding=ROUND_HALF_EVEN) * step).quantize(step)


def truncate_toward_zero(value: Decimal, step: Decimal) -> Decimal:
    """Multiple of `step` nearest to `value` without exceeding it in magnitude."""
    if value >= 0:
        return floor_to_step(value, step)
    return -floor_to_step(-value, step)


def require_utc(moment: datetime, *, what: str = "time") -> datetime:
    """Return `moment` converted to UTC; naive datetimes are a bug and raise ValueError."""
    if moment.tzinfo is UTC:
        return moment  # what astimezone(UTC) returns for it too, without the call
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware, got naive {moment.isoformat()}")
    return moment.astimezone(UTC)


def floor_minute(moment: datetime) -> datetime:
    """The UTC minute `moment` falls in (naive datetimes raise, as in require_utc)."""
    return require_utc(moment).replace(second=0, microsecond=0)


def ceil_minute(moment: datetime) -> datetime:
    """The first whole UTC minute at or after `moment`."""
    floored = floor_minute(moment)
    return floored if floored == moment else floored + timedelta(minutes=1)


def epoch_seconds(moment: datetime) -> float:
    return require_utc(moment).timestamp()


def from_epoch_seconds(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def decimal_size(size: int) -> str:
    """Bytes as kB or MB (powers of ten, as disk and database sizes are quoted)."""
    return f"{size / 1_000_000:.1f} MB" if size >= 100_000 else f"{size / 1000:.1f} kB"
