"""Delivering notifications: the Sender port, Telegram and webhook senders, rate limits, backoff.

These are the self-contained parts a notifier loop calls; the durable outbox and the loop that
drains it are built on top. Nothing here raises for a provider or network problem: every send
returns a SendOutcome (delivered / retry / rejected), see `base`.
"""

from fleetkit.notify.base import Failure, OutcomeKind, Sender, SendOutcome, redact
from fleetkit.notify.ratelimit import Backoff, Bucket, RateLimiter, TelegramLimits
from fleetkit.notify.telegram import (
    TELEGRAM_TEXT_LIMIT,
    TelegramSender,
    Update,
    UpdateBatch,
    split_message,
)
from fleetkit.notify.webhook import WebhookSender

__all__ = [
    "TELEGRAM_TEXT_LIMIT",
    "Backoff",
    "Bucket",
    "Failure",
    "OutcomeKind",
    "RateLimiter",
    "SendOutcome",
    "Sender",
    "TelegramLimits",
    "TelegramSender",
    "Update",
    "UpdateBatch",
    "WebhookSender",
    "redact",
    "split_message",
]
