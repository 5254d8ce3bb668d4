"""The adapter test kit (fleetkit.testing.broker_kit) against the sandbox: in-process, and as
the loopback HTTP service with its client — the same contract the ccxt adapter passes."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal

import pytest

from fleetkit.brokers.sandbox.broker import SandboxBroker
from fleetkit.brokers.sandbox.client import SandboxClient
from fleetkit.brokers.sandbox.service import SandboxService
from fleetkit.brokers.sandbox.testing import (
    NEW_YORK_MIDDAY,
    ManualClock,
    ScriptedPrices,
    build_venue,
)
from fleetkit.testing.broker_kit import BrokerContract, BrokerKit

D = Decimal


def _kit(broker: object, clock: ManualClock) -> BrokerKit:
    def settle() -> None:
        # A partial fill's remainder comes 5-120 s of venue time later: get there in a few
        # polls even on a loaded machine (midday plus minutes stays inside the session).
        clock.advance(timedelta(seconds=15))

    return BrokerKit(broker=broker, instrument="NYSE:AAA", quantity=D("10"),  # type: ignore[arg-type]
                     resting_price=D("50.00"), too_large=D("100000000"), settle=settle,
                     timeout_s=20.0)


class TestInProcessSandbox(BrokerContract):
    @pytest.fixture
    def kit(self) -> Iterator[BrokerKit]:
        clock = ManualClock(NEW_YORK_MIDDAY)
        venue = build_venue(ScriptedPrices(), clock, partial_fill_probability=0.5)
        yield _kit(SandboxBroker(venue, "kit"), clock)


class TestSandboxService(BrokerContract):
    @pytest.fixture
    def kit(self) -> Iterator[BrokerKit]:
        clock = ManualClock(NEW_YORK_MIDDAY)
        venue = build_venue(ScriptedPrices(), clock, partial_fill_probability=0.5)
        with SandboxService(venue, match_interval_s=0.02) as service, \
                SandboxClient(service.url, "kit") as client:
            yield _kit(client, clock)
