"""Exponential backoff with "equal jitter": half of each wait fixed, half random, so a fleet
of bots (or streams) that lost the same venue does not come back in lockstep. One curve for
the runner's outages, the sandbox client's retries and the quote stream's reconnects."""

from __future__ import annotations

import random


def equal_jitter_delay(attempt: int, initial_s: float, maximum_s: float,
                       rng: random.Random) -> float:
    """Seconds before try `attempt` (0, 1, 2 ...): `initial_s` doubled per attempt up to
    `maximum_s`, half of it fixed and half random."""
    base = min(maximum_s, initial_s * 2.0 ** min(attempt, 32))  # no overflow after long outages
    return base / 2 + rng.uniform(0, base / 2)
