"""Pacing sends: token buckets for Telegram's rate limits and jittered backoff for retries.

Both are pure: time comes from an injected monotonic clock and randomness from an injected
random.Random, so a notifier loop asks "how long until I may send?" and decides itself
whether to sleep or work on another destination meanwhile.

    limiter = RateLimiter()
    if limiter.wait_s(chat) == 0:
        outcome = sender.send(chat, text, skip_parts=done)
        limiter.sent(chat, count=len(outcome.message_ids))
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

# Float refills can leave a bucket at 0.9999999 tokens right when wait_s said it would be
# full; this much is close enough to a token.
_EPSILON = 1e-9
# Buckets are kept per destination; past this many, full ones (equal to a fresh bucket) go.
_PRUNE_ABOVE = 1024


@dataclass(frozen=True, slots=True)
class Bucket:
    """A token bucket: up to `burst` sends at once, refilled at `rate_per_s`.

    In any window of T seconds it lets through at most `burst + rate_per_s * T` sends.
    """

    rate_per_s: float
    burst: int = 1

    def __post_init__(self) -> None:
        if not 0 < self.rate_per_s < math.inf:
            raise ValueError("rate_per_s must be positive and finite")
        if self.burst < 1:
            raise ValueError("burst must be at least 1")


@dataclass(frozen=True, slots=True)
class TelegramLimits:
    """Telegram's published limits, as buckets a sender stays inside.

    Telegram asks for about one message a second per chat, at most 20 a minute per group,
    and about 30 a second overall; past them it answers 429 with a retry_after. The group
    and overall buckets are sized so no window of their length holds more than that:
    1 + 19/60 * 60 = 20 per minute, 1 + 29 * 1 = 30 per second.
    """

    per_chat: Bucket = Bucket(rate_per_s=1.0)
    per_group: Bucket = Bucket(rate_per_s=19 / 60)
    overall: Bucket = Bucket(rate_per_s=29.0)


def is_group_chat(destination: str) -> bool:
    """Groups, supergroups and channels have negative ids; only they have @usernames a bot
    can address (a private chat needs its numeric id)."""
    return destination.startswith(("-", "@"))


@dataclass(slots=True)
class _Level:
    tokens: float
    at: float


class RateLimiter:
    """Per-chat, per-group and overall token buckets over a monotonic `clock` (seconds).

    Not thread-safe: one notifier loop owns it.
    """

    def __init__(self, limits: TelegramLimits | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._limits = limits if limits is not None else TelegramLimits()
        self._clock = clock
        self._levels: dict[tuple[str, str], _Level] = {}

    def wait_s(self, destination: str) -> float:
        """Seconds until one message may go to `destination`; 0.0 when it may go now."""
        now = self._clock()
        return max(self._wait_s(key, bucket, now) for key, bucket in self._buckets(destination))

    def sent(self, destination: str, count: int = 1) -> None:
        """Record `count` messages sent to `destination` just now. Counting sends made
        without waiting (the later parts of a split text) puts the buckets in debt, so the
        next message waits until the burst is paid for."""
        if count < 0:
            raise ValueError("count cannot be negative")
        now = self._clock()
        for key, bucket in self._buckets(destination):
            level = self._level(key, bucket, now)
            level.tokens -= count
        if len(self._levels) > _PRUNE_ABOVE:
            self._prune(now)

    def _buckets(self, destination: str) -> list[tuple[tuple[str, str], Bucket]]:
        buckets = [(("chat", destination), self._limits.per_chat),
                   (("all", ""), self._limits.overall)]
        if is_group_chat(destination):
            buckets.append((("group", destination), self._limits.per_group))
        return buckets

    def _wait_s(self, key: tuple[str, str], bucket: Bucket, now: float) -> float:
        level = self._levels.get(key)
        tokens = bucket.burst if level is None else _refilled(level, bucket, now)
        if tokens >= 1 - _EPSILON:
            return 0.0
        return (1 - tokens) / bucket.rate_per_s

    def _level(self, key: tuple[str, str], bucket: Bucket, now: float) -> _Level:
        """The bucket's level brought up to `now` (a fresh bucket starts full)."""
        level = self._levels.get(key)
        if level is None:
            level = self._levels[key] = _Level(float(bucket.burst), now)
        else:
            level.tokens, level.at = _refilled(level, bucket, now), max(level.at, now)
        return level

    def _prune(self, now: float) -> None:
        limits = {"chat": self._limits.per_chat, "group": self._limits.per_group,
                  "all": self._limits.overall}
        full = [key for key, level in self._levels.items()
                if _refilled(level, limits[key[0]], now) >= limits[key[0]].burst]
        for key in full:
            del self._levels[key]


def _refilled(level: _Level, bucket: Bucket, now: float) -> float:
    elapsed = max(0.0, now - level.at)  # a clock that steps back refills nothing
    return min(float(bucket.burst), level.tokens + elapsed * bucket.rate_per_s)


class Backoff:
    """Delays before retry number `attempt` (0, 1, 2 ...): exponential with full jitter.

    Full jitter (a uniform draw from 0 to the exponential ceiling) spreads out many
    notifications that failed together, so they do not all come back at once. A provider's
    own retry_after is a floor: waiting less would only earn another 429.
    """

    def __init__(self, base_s: float = 1.0, cap_s: float = 300.0,
                 rng: random.Random | None = None) -> None:
        if not 0 < base_s <= cap_s < math.inf:
            raise ValueError("need 0 < base_s <= cap_s, both finite")
        self._base_s = base_s
        self._cap_s = cap_s
        self._rng = rng if rng is not None else random.Random()  # noqa: S311 - jitter only

    def ceiling_s(self, attempt: int) -> float:
        """The most retry `attempt` waits (before any retry_after): min(cap, base * 2^n)."""
        if attempt < 0:
            raise ValueError("attempt cannot be negative")
        if attempt >= 64:  # 2.0 ** 1024 overflows; the cap was reached long before
            return self._cap_s
        return min(self._cap_s, self._base_s * 2.0 ** attempt)

    def delay_s(self, attempt: int, retry_after_s: float | None = None) -> float:
        jittered = self._rng.uniform(0.0, self.ceiling_s(attempt))
        return jittered if retry_after_s is None else max(retry_after_s, jittered)
