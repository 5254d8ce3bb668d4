"""Exact tick arithmetic on floats: counts of a decimal step, and the floats they stand for."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class DecimalGrid:
    """Multiples of a positive decimal step, written as `units / scale` (0.05 = 5 / 100).

    A count of steps becomes `count * units / scale`: an exact integer divided by an exact power
    of ten, which IEEE division rounds to the float nearest the decimal. So the float equals
    float(Decimal(...)) and repr() gives back the decimal, a multiple of the step.
    """

    step: Decimal
    units: int
    scale: int
    decimals: int

    @classmethod
    def of(cls, step: Decimal) -> DecimalGrid:
        if not step.is_finite() or step <= 0:
            raise ValueError(f"a grid step must be positive, got {step}")
        exponent = step.normalize().as_tuple().exponent
        decimals = max(0, -exponent) if isinstance(exponent, int) else 0
        return cls(step, int(step.scaleb(decimals)), 10**decimals, decimals)

    def nearest(self, values: FloatArray) -> IntArray:
        """Nearest counts, ties to even (the same rounding as `nearest_count`)."""
        return np.rint(values * self.scale / self.units).astype(np.int64)

    def nearest_count(self, value: float) -> int:
        return round(value * self.scale / self.units)

    def at_or_below(self, values: FloatArray) -> IntArray:
        return np.floor(values * self.scale / self.units).astype(np.int64)

    def at_or_above(self, values: FloatArray) -> IntArray:
        return np.ceil(values * self.scale / self.units).astype(np.int64)

    def floats(self, counts: IntArray) -> FloatArray:
        return (counts * self.units).astype(np.float64) / self.scale

    def decimal(self, count: int) -> Decimal:
        return Decimal(count * self.units).scaleb(-self.decimals)
