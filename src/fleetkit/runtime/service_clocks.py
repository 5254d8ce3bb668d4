"""Whose time a market-hours service's hours are judged in (`services[].clock`).

"wall": the wall clock. "sandbox": the sandbox venue's time for the service's market, which
in demo time is the wall clock shifted into an earlier session of a closed market. The
offset is fixed for the life of a sandbox book, so it is read once and re-read only every
few minutes (a book deleted and recreated gets a new one); while the sandbox is not up yet
the offset is unknown and the scheduler leaves such a service as it is.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta

from fleetkit.brokers.sandbox.client import SandboxClient
from fleetkit.config.models import ServiceSettings
from fleetkit.core.errors import FleetError
from fleetkit.runtime.logs import get_logger
from fleetkit.runtime.outage import OutageThrottle

log = get_logger("services")

REFRESH_S = 300.0
ACCOUNT = "fleet-services"  # reads the venue's health only; never trades


class ServiceClocks:
    def __init__(self, client: SandboxClient, *, refresh_s: float = REFRESH_S,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._client = client
        self._refresh_s = refresh_s
        self._monotonic = monotonic
        self._offsets: dict[str, tuple[timedelta, float]] = {}
        self._outage = OutageThrottle(log, "service.clock", problem="sandbox clock unreadable; "
                                      "services on the sandbox clock wait",
                                      recovered="sandbox clock read again",
                                      monotonic=monotonic)

    @classmethod
    def for_sandbox(cls, base_url: str, timeout_s: float = 5.0) -> ServiceClocks:
        return cls(SandboxClient(base_url, ACCOUNT, timeout_s=timeout_s))

    def offset(self, service: ServiceSettings) -> timedelta | None:
        if not service.on_venue_clock:
            return timedelta(0)
        cached = self._offsets.get(service.market)
        now = self._monotonic()
        if cached is not None and now - cached[1] < self._refresh_s:
            return cached[0]
        try:
            offset = self._client.market_offset(service.market)
        except FleetError as exc:
            self._outage.failed(exc)
            return cached[0] if cached is not None else None
        self._outage.succeeded()
        self._offsets[service.market] = (offset, now)
        return offset

    def close(self) -> None:
        self._client.close()
