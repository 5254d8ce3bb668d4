"""A fake Telegram Bot API on loopback and a sender pointed at it, for the notify tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fleetkit.notify import TelegramSender
from fleetkit.testing.fake_telegram import FakeTelegram


@pytest.fixture
def telegram() -> Iterator[FakeTelegram]:
    with FakeTelegram() as fake:
        yield fake


@pytest.fixture
def sender(telegram: FakeTelegram) -> Iterator[TelegramSender]:
    with TelegramSender(telegram.token, api_base_url=telegram.url, timeout_s=2.0) as sender:
        yield sender
