"""The quote stream client's reconnection delays: exponential, jittered, capped."""

from __future__ import annotations

import random

from fleetkit.core.backoff import equal_jitter_delay


def test_delays_double_with_half_of_each_random_and_stop_at_the_cap() -> None:
    rng = random.Random(7)
    for attempt, base in enumerate([0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0]):
        delays = {equal_jitter_delay(attempt, 0.2, 5.0, rng) for _ in range(50)}
        assert all(base / 2 <= d <= base for d in delays)
        assert len(delays) > 1  # jittered: a fleet does not reconnect in lockstep
    assert equal_jitter_delay(10_000, 0.2, 5.0, rng) <= 5.0  # no overflow after a long outage
