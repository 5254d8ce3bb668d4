"""What is worth telling a person, and whom: concerns, severities and monitor findings.

Pure vocabulary shared by the store (which enqueues a notification in the same transaction
as the event it tells of), the notifier (which routes by concern and severity) and the
monitors (which report findings). No I/O here.

Concerns split the noise by who has to act:

    trading          fills, risk denials, halts and resumes, circuit breakers, reconciliation
    infrastructure   crashes and restarts, stale heartbeats, database/broker outages,
                     job failures, server and security monitors
    data             market data and calendars (e.g. a calendar running out of holidays)
    brief            scheduled reports: P&L every 15 minutes, the daily summary
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


class Concern(enum.StrEnum):
    TRADING = "trading"
    INFRASTRUCTURE = "infrastructure"
    DATA = "data"
    BRIEF = "brief"


class Severity(enum.IntEnum):
    """Ordered, so a route can ask for "warning and worse"."""

    DEBUG = 10
    INFO = 20
    WARNING = 30
    ERROR = 40
    CRITICAL = 50

    @classmethod
    def parse(cls, name: str) -> Severity:
        try:
            return cls[name.upper()]
        except KeyError:
            known = ", ".join(s.name.lower() for s in cls)
            raise ValueError(f"unknown severity {name!r} (known: {known})") from None

    @property
    def label(self) -> str:
        return self.name.lower()


# Event kinds that are news, by prefix (the longest matching prefix wins). Anything not
# here (signals, order acks, fleet started ...) stays in the audit log only.
_CONCERN_BY_PREFIX: dict[str, Concern] = {
    "order.fill": Concern.TRADING,
    "order.rejected": Concern.TRADING,
    "order.outcome_unknown": Concern.TRADING,
    "order.id_collision": Concern.TRADING,  # someone squatted this bot's client order id
    "fill.": Concern.TRADING,  # refused or rewritten by the broker
    "risk.": Concern.TRADING,
    "control.": Concern.TRADING,
    "circuit.": Concern.TRADING,
    "reconcile.": Concern.TRADING,
    "strategy.error": Concern.TRADING,
    "process.": Concern.INFRASTRUCTURE,
    "service.exited": Concern.INFRASTRUCTURE,
    "service.gave_up": Concern.INFRASTRUCTURE,
    "db.": Concern.INFRASTRUCTURE,
    "broker.": Concern.INFRASTRUCTURE,
    "job.": Concern.INFRASTRUCTURE,
    "monitor.": Concern.INFRASTRUCTURE,
    "notify.": Concern.INFRASTRUCTURE,
    # The training pipeline (docs/pipeline.md): a new model is the day's news; a run that
    # failed or was rejected (the active model kept) is for whoever runs the trainer.
    "training.succeeded": Concern.BRIEF,
    "training.failed": Concern.INFRASTRUCTURE,
    "training.rejected": Concern.INFRASTRUCTURE,
    "training.taken_over": Concern.INFRASTRUCTURE,
    # A running bot could not use a model version the registry made active (files that
    # disagree, a store out of reach): it keeps trading the one it has.
    "model.load_failed": Concern.INFRASTRUCTURE,
    "calendar.": Concern.DATA,
    "data.": Concern.DATA,
    "report.": Concern.BRIEF,
}


def concern_for(kind: str) -> Concern | None:
    """The concern an event of `kind` is news to, or None when it is not news."""
    best: tuple[int, Concern] | None = None
    for prefix, concern in _CONCERN_BY_PREFIX.items():
        matches = kind == prefix or kind.startswith(prefix if prefix.endswith(".")
                                                    else prefix + ".")
        if matches and (best is None or len(prefix) > best[0]):
            best = (len(prefix), concern)
    return None if best is None else best[1]


def severity_of(name: str | None) -> Severity:
    """An event's stored severity; unknown or missing ones count as info."""
    if not name:
        return Severity.INFO
    try:
        return Severity.parse(name)
    except ValueError:
        return Severity.INFO


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing a monitor noticed.

    `key` names the thing watched ("disk:/", "heartbeat:bot:alpha", "ssh:failed"), stable
    from run to run, so a finding that persists is one alert and its end is another.
    `severity` INFO means "fine" (nothing to alert); WARNING and worse are alerts.
    """

    monitor: str  # server, services, security
    key: str
    severity: Severity
    message: str
    data: Mapping[str, Any] = field(default_factory=dict)

    @property
    def alerting(self) -> bool:
        return self.severity >= Severity.WARNING
