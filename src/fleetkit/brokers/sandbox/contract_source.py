"""The sandbox as an engine.rolls.ContractSource: which index future is the front one and
when it rolls (its futures curve), and the specs of the derivatives it lists — over HTTP
(SandboxClient) or in-process (a SandboxVenue) alike."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from fleetkit.core.futures import FuturesCurve
from fleetkit.core.instruments import Instrument
from fleetkit.engine.rolls import FrontContract

from .errors import UnknownInstrumentError


class SandboxContracts:
    """`curve(underlying)`: the venue's futures curve now; `instruments()`: everything the
    venue lists now (its catalog and the derivatives listed)."""

    def __init__(self, curve: Callable[[str], FuturesCurve],
                 instruments: Callable[[], Mapping[str, Instrument]]) -> None:
        self._curve = curve
        self._instruments = instruments
        self._known: Mapping[str, Instrument] = {}

    def front_future(self, market: str, underlying: str) -> FrontContract:
        curve = self._curve(underlying)
        instrument = self.instrument(curve.front)
        if instrument is None or instrument.market != market:
            raise UnknownInstrumentError(f"the sandbox's front {underlying} future "
                                         f"{curve.front} is not a listed {market} instrument")
        return FrontContract(underlying, instrument, curve.roll_at,
                             tuple(future.instrument for future in curve.futures))

    def instrument(self, key: str) -> Instrument | None:
        """The venue's spec of `key` (a listed derivative, or a catalog instrument)."""
        found = self._known.get(key)
        if found is None:  # a contract listed since the last look: look again
            self._known = self._instruments()
            found = self._known.get(key)
        return found
