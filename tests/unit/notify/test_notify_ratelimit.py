"""Token buckets for Telegram's limits and jittered backoff, on a clock the test moves."""

from __future__ import annotations

import random
from collections import defaultdict

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleetkit.notify.ratelimit import Backoff, Bucket, RateLimiter, TelegramLimits, is_group_chat

SLACK = 1e-6  # float refill arithmetic


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def send_whenever_allowed(limiter: RateLimiter, clock: FakeClock, destinations: list[str],
                          until_s: float) -> list[tuple[float, str]]:
    """A greedy notifier: round-robin over destinations, sending each the moment it may,
    otherwise sleeping until the soonest one may."""
    sent: list[tuple[float, str]] = []
    while clock.now < until_s:
        waits = {d: limiter.wait_s(d) for d in destinations}
        ready = [d for d in destinations if waits[d] == 0]
        if not ready:
            clock.now += min(waits.values())
            continue
        for destination in ready:
            if limiter.wait_s(destination) == 0:
                limiter.sent(destination)
                sent.append((clock.now, destination))
    return sent


def most_in_any_window(times: list[float], window_s: float) -> int:
    """The most sends inside any closed window of `window_s` seconds."""
    times = sorted(times)
    best, first = 0, 0
    for last, at in enumerate(times):
        while at - times[first] > window_s + SLACK:
            first += 1
        best = max(best, last - first + 1)
    return best


def test_a_fresh_chat_may_be_sent_to_at_once_then_waits_a_second() -> None:
    clock = FakeClock()
    limiter = RateLimiter(clock=clock)
    assert limiter.wait_s("42") == 0
    limiter.sent("42")
    assert limiter.wait_s("42") == pytest.approx(1.0)
    clock.now += 0.4
    assert limiter.wait_s("42") == pytest.approx(0.6)
    clock.now += 0.6
    assert limiter.wait_s("42") == 0


def test_one_chat_waiting_does_not_hold_up_another() -> None:
    clock = FakeClock()
    limiter = RateLimiter(clock=clock)
    limiter.sent("42")
    clock.now += 0.1  # past the overall bucket's 1/29 s spacing, well inside the chat's 1 s
    assert limiter.wait_s("42") == pytest.approx(0.9)
    assert limiter.wait_s("43") == 0


def test_a_group_chat_gets_at_most_twenty_messages_a_minute() -> None:
    clock = FakeClock()
    limiter = RateLimiter(clock=clock)
    sent = send_whenever_allowed(limiter, clock, ["-1001"], until_s=clock.now + 600)
    times = [at for at, _ in sent]
    assert most_in_any_window(times, 60) == 20
    assert len(sent) >= 10 * 19  # and it keeps going at that pace


def test_a_private_chat_gets_about_one_message_a_second() -> None:
    clock = FakeClock()
    limiter = RateLimiter(clock=clock)
    sent = send_whenever_allowed(limiter, clock, ["42"], until_s=clock.now + 60)
    assert 59 <= len(sent) <= 61
    assert most_in_any_window([at for at, _ in sent], 0.99) == 1


def test_all_chats_together_get_at_most_thirty_messages_a_second() -> None:
    clock = FakeClock()
    limiter = RateLimiter(clock=clock)
    chats = [str(n) for n in range(100)]
    sent = send_whenever_allowed(limiter, clock, chats, until_s=clock.now + 10)
    assert most_in_any_window([at for at, _ in sent], 1.0) == 30
    assert len(sent) >= 9 * 29


def test_a_split_text_sent_in_one_go_is_paid_for_before_the_next_message() -> None:
    clock = FakeClock()
    limiter = RateLimiter(clock=clock)
    limiter.sent("42", count=3)  # a three-part text went out back to back
    assert limiter.wait_s("42") == pytest.approx(3.0)


def test_channels_by_username_and_negative_ids_count_as_groups() -> None:
    assert is_group_chat("-1001234") and is_group_chat("@alerts")
    assert not is_group_chat("42")


def test_buckets_of_idle_chats_are_forgotten_and_busy_ones_kept() -> None:
    clock = FakeClock()
    # an overall bucket that never binds, so wait_s below speaks for the chat's own bucket
    limiter = RateLimiter(TelegramLimits(overall=Bucket(rate_per_s=1e6, burst=10**6)),
                          clock=clock)
    for n in range(5000):
        clock.now += 2.0  # each chat's bucket is full again before the next send
        limiter.sent(str(n))
    # a full bucket is the same as none: memory stays bounded by active chats
    assert len(limiter._levels) <= 1100  # private, but the memory bound is the point
    for n in range(1500):  # all at once: every one of these is still refilling
        limiter.sent(f"busy-{n}")
    assert all(limiter.wait_s(f"busy-{n}") == pytest.approx(1.0) for n in range(1500))


def test_custom_limits_are_used() -> None:
    clock = FakeClock()
    limiter = RateLimiter(TelegramLimits(per_chat=Bucket(rate_per_s=0.5, burst=2)), clock=clock)
    limiter.sent("42")
    clock.now += 0.1  # past the overall bucket's spacing
    assert limiter.wait_s("42") == 0  # burst 2
    limiter.sent("42")
    assert limiter.wait_s("42") == pytest.approx(1.9)  # 0.05 token refilled in the 0.1 s


@pytest.mark.parametrize("rate, burst", [(0, 1), (-1, 1), (float("inf"), 1), (1, 0)])
def test_impossible_buckets_are_refused(rate: float, burst: int) -> None:
    with pytest.raises(ValueError):
        Bucket(rate_per_s=rate, burst=burst)


DESTINATIONS = st.sampled_from(["1", "2", "-100", "-200", "@news"])


@settings(max_examples=150, deadline=None)
@given(steps=st.lists(st.tuples(st.floats(0, 3, allow_nan=False), DESTINATIONS,
                                st.integers(1, 3)), max_size=300))
def test_no_window_holds_more_sends_than_the_buckets_allow(
        steps: list[tuple[float, str, int]]) -> None:
    """However the notifier's attempts fall, sends that waited for wait_s() == 0 never exceed
    burst + rate * T in any window of T seconds: per chat, per group and overall."""
    clock = FakeClock()
    limits = TelegramLimits()
    limiter = RateLimiter(limits, clock=clock)
    sends: dict[str, list[float]] = defaultdict(list)
    for pause_s, destination, count in steps:
        clock.now += pause_s
        if limiter.wait_s(destination) == 0:
            limiter.sent(destination, count)
            sends[destination].extend([clock.now] * count)
    everything = sorted(t for times in sends.values() for t in times)
    checks = [(times, limits.per_chat) for times in sends.values()]
    checks += [(times, limits.per_group) for d, times in sends.items() if is_group_chat(d)]
    checks += [(everything, limits.overall)]
    for times, bucket in checks:
        for i, start in enumerate(times):
            for j in range(i, len(times)):
                window_s = times[j] - start
                allowed = bucket.burst + bucket.rate_per_s * window_s + SLACK
                # a multi-part send is one decision: it may overdraw, once, by count - 1
                assert (j - i + 1) <= allowed + 2, (times, bucket)


@settings(max_examples=150, deadline=None)
@given(steps=st.lists(st.tuples(st.floats(0, 2, allow_nan=False), DESTINATIONS,
                                st.integers(1, 3)), max_size=100), probe=DESTINATIONS)
def test_waiting_as_long_as_told_is_always_enough(steps: list[tuple[float, str, int]],
                                                  probe: str) -> None:
    clock = FakeClock()
    limiter = RateLimiter(clock=clock)
    for pause_s, destination, count in steps:
        clock.now += pause_s
        limiter.sent(destination, count)
    clock.now += limiter.wait_s(probe)
    assert limiter.wait_s(probe) == 0


@settings(max_examples=100, deadline=None)
@given(steps=st.lists(st.tuples(st.floats(0, 3, allow_nan=False), DESTINATIONS),
                      max_size=300))
def test_single_sends_never_exceed_twenty_a_minute_per_group_or_thirty_a_second(
        steps: list[tuple[float, str]]) -> None:
    clock = FakeClock()
    limiter = RateLimiter(clock=clock)
    sends: dict[str, list[float]] = defaultdict(list)
    for pause_s, destination in steps:
        clock.now += pause_s
        if limiter.wait_s(destination) == 0:
            limiter.sent(destination)
            sends[destination].append(clock.now)
    for destination, times in sends.items():
        if is_group_chat(destination):
            assert most_in_any_window(times, 60) <= 20
    assert most_in_any_window([t for times in sends.values() for t in times], 1.0) <= 30


# --- backoff ---------------------------------------------------------------------------------


def test_backoff_ceiling_doubles_from_the_base_up_to_the_cap() -> None:
    backoff = Backoff(base_s=1.0, cap_s=60.0)
    assert [backoff.ceiling_s(n) for n in range(8)] == [1, 2, 4, 8, 16, 32, 60, 60]
    assert backoff.ceiling_s(100_000) == 60  # no overflow however long it has failed


def test_backoff_uses_full_jitter_across_the_whole_range() -> None:
    backoff = Backoff(base_s=1.0, cap_s=60.0, rng=random.Random(7))
    delays = [backoff.delay_s(3) for _ in range(2000)]
    assert all(0 <= d <= 8 for d in delays)
    assert min(delays) < 0.5 and max(delays) > 7.5  # not "half fixed, half random"


def test_a_seeded_backoff_repeats_its_delays() -> None:
    first = Backoff(rng=random.Random(42))
    second = Backoff(rng=random.Random(42))
    assert [first.delay_s(n) for n in range(10)] == [second.delay_s(n) for n in range(10)]


def test_the_providers_retry_after_is_a_floor() -> None:
    backoff = Backoff(base_s=1.0, cap_s=60.0, rng=random.Random(1))
    assert all(backoff.delay_s(0, retry_after_s=30) >= 30 for _ in range(100))
    assert backoff.delay_s(0, retry_after_s=500) == 500  # even past the cap: Telegram said so


@pytest.mark.parametrize("base_s, cap_s", [(0, 1), (2, 1), (1, float("inf"))])
def test_impossible_backoffs_are_refused(base_s: float, cap_s: float) -> None:
    with pytest.raises(ValueError):
        Backoff(base_s=base_s, cap_s=cap_s)


def test_a_negative_attempt_is_refused() -> None:
    with pytest.raises(ValueError):
        Backoff().delay_s(-1)


@given(attempt=st.integers(0, 2000), seed=st.integers(0, 2**32))
def test_every_delay_lies_between_zero_and_its_ceiling(attempt: int, seed: int) -> None:
    backoff = Backoff(base_s=0.5, cap_s=120.0, rng=random.Random(seed))
    assert 0 <= backoff.delay_s(attempt) <= backoff.ceiling_s(attempt) <= 120.0
    assert backoff.ceiling_s(attempt) <= backoff.ceiling_s(attempt + 1)
