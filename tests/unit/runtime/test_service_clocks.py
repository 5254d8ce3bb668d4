"""A service's clock: the wall's is zero; the sandbox's is read from the venue, cached,
re-read after a while, and unknown (None) until the venue has answered once."""

from __future__ import annotations

from datetime import timedelta

from fleetkit.config.models import ServiceSettings
from fleetkit.core.errors import TransientBrokerError
from fleetkit.runtime.service_clocks import ServiceClocks


class FakeVenue:
    def __init__(self) -> None:
        self.offset: timedelta | None = None
        self.asked = 0

    def market_offset(self, market: str) -> timedelta:
        self.asked += 1
        if self.offset is None:
            raise TransientBrokerError("connection refused")
        return self.offset

    def close(self) -> None:
        pass


def service(clock: str) -> ServiceSettings:
    return ServiceSettings.model_validate({"name": "options", "command": "data collect-options",
                                           "market": "NSE", "clock": clock})


def test_offsets_are_read_cached_and_refreshed() -> None:
    venue, now = FakeVenue(), [0.0]
    clocks = ServiceClocks(venue, refresh_s=300, monotonic=lambda: now[0])  # type: ignore[arg-type]
    assert clocks.offset(service("wall")) == timedelta(0)
    assert venue.asked == 0
    assert clocks.offset(service("sandbox")) is None  # not up yet
    venue.offset = -timedelta(hours=3)
    assert clocks.offset(service("sandbox")) == -timedelta(hours=3)
    asked = venue.asked
    now[0] = 299
    assert clocks.offset(service("sandbox")) == -timedelta(hours=3)
    assert venue.asked == asked  # cached
    venue.offset = None  # gone away: the last known offset stands
    now[0] = 301
    assert clocks.offset(service("sandbox")) == -timedelta(hours=3)
    venue.offset = -timedelta(hours=4)  # a new book
    now[0] = 302
    assert clocks.offset(service("sandbox")) == -timedelta(hours=4)
