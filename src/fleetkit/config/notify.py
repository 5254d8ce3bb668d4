"""The `notify:` and `monitors:` sections of fleet.yaml: routes by concern, reports, two-way
commands, and the monitors the notifier runs. Tokens and webhook URLs never live here: each
route names an environment variable or a secret file to read them from."""

from __future__ import annotations

import re
from datetime import time
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator, model_validator

from fleetkit.config.strict import Strict
from fleetkit.core.alerts import Concern, Severity

ROUTE_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,47}$")
SeverityName = Literal["debug", "info", "warning", "error", "critical"]
_CLOCK = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


def _one_secret_source(env: str | None, file: str | None, what: str) -> None:
    """A secret comes from exactly one of an environment variable or a file."""
    if bool(env) == bool(file):
        raise ValueError(f"give exactly one of {what}_env (an environment variable's "
                         f"name) or {what}_file (a secret file's path), never the value")


class _Route(Strict):
    name: str
    concerns: list[Concern] = Field(min_length=1, description="trading, infrastructure, "
                                    "data, brief")
    min_severity: SeverityName = Field(default="info", description="send this and worse")
    enabled: bool = True

    @field_validator("name")
    @classmethod
    def _route_name(cls, name: str) -> str:
        if not ROUTE_NAME.match(name):
            raise ValueError(f"route name {name!r}: lowercase letters, digits, - and _")
        return name

    @property
    def threshold(self) -> Severity:
        return Severity.parse(self.min_severity)

    def takes(self, concern: str, severity: Severity) -> bool:
        return self.enabled and concern in self.concerns and severity >= self.threshold


class TelegramRoute(_Route):
    type: Literal["telegram"]
    chat_id: str = Field(description="the chat's numeric id (groups are negative) or "
                         "@channelname")
    token_env: str | None = Field(default=None, description="environment variable holding "
                                  "the bot token")
    token_file: str | None = Field(default=None, description="file holding the bot token")
    api_base_url: str = Field(default="https://api.telegram.org",
                              description="Bot API server (a local one in tests)")
    timeout_s: float = Field(default=10.0, gt=0, le=120)

    @field_validator("chat_id", mode="before")
    @classmethod
    def _chat_as_text(cls, value: object) -> object:
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @model_validator(mode="after")
    def _token_source(self) -> TelegramRoute:
        _one_secret_source(self.token_env, self.token_file, "token")
        return self

    @property
    def destination(self) -> str:
        return self.chat_id


class WebhookRoute(_Route):
    type: Literal["webhook"]
    url_env: str | None = Field(default=None, description="environment variable holding the "
                                "URL (webhook URLs are secrets)")
    url_file: str | None = None
    headers_env: dict[str, str] = Field(
        default_factory=dict, description="HTTP header name -> environment variable holding "
        "its value, e.g. Authorization: OPS_HOOK_AUTH")
    timeout_s: float = Field(default=10.0, gt=0, le=120)

    @model_validator(mode="after")
    def _url_source(self) -> WebhookRoute:
        _one_secret_source(self.url_env, self.url_file, "url")
        return self

    @property
    def destination(self) -> str:
        return self.name


Route = Annotated[TelegramRoute | WebhookRoute, Field(discriminator="type")]


class CommandSettings(Strict):
    route: str = Field(description="the telegram route whose bot listens for commands")
    allowed_chat_ids: list[str] = Field(min_length=1, description="chats commands are "
                                        "accepted from; everything else is ignored and logged")
    allowed_user_ids: list[str] | None = Field(
        default=None, description="if set, only these Telegram users (in allowed chats)")
    confirm_ttl_s: float = Field(default=120.0, gt=0, le=3600)
    poll_timeout_s: int = Field(default=20, ge=0, le=50, description="getUpdates long poll")

    @field_validator("allowed_chat_ids", "allowed_user_ids", mode="before")
    @classmethod
    def _ids_as_text(cls, value: object) -> object:
        if isinstance(value, list):
            return [str(v) if isinstance(v, int) and not isinstance(v, bool) else v
                    for v in value]
        return value


def _clock_time(value: str | None) -> str | None:
    if value is not None and not _CLOCK.match(value):
        raise ValueError(f"{value!r} is not a time of day: write HH:MM, e.g. \"17:30\"")
    return value


def _as_time(value: str | None) -> time | None:
    """A validated "HH:MM" as a time of day."""
    if value is None:
        return None
    hour, minute = value.split(":")
    return time(int(hour), int(minute))


def _zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {value!r}: use an IANA name like "
                         "Europe/London") from None
    return value


class ReportSettings(Strict):
    pnl_every_minutes: int = Field(default=15, ge=0, le=1440, description="P&L update while a "
                                   "bot's market is open (crypto: always); 0 turns it off")
    daily_summary_at: str | None = Field(default="22:00", description="HH:MM in `timezone`; "
                                         "null turns it off")
    timezone: str = "UTC"

    @field_validator("daily_summary_at")
    @classmethod
    def _at(cls, value: str | None) -> str | None:
        return _clock_time(value)

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str) -> str:
        return _zone(value)

    def daily_time(self) -> time | None:
        return _as_time(self.daily_summary_at)


class MonitorSettings(Strict):
    server_every_minutes: int = Field(default=15, ge=0, le=1440, description="0: off")
    disk_paths: list[str] = Field(default_factory=lambda: ["/"])
    disk_warning_pct: float = Field(default=85.0, gt=0, lt=100)
    disk_critical_pct: float = Field(default=90.0, gt=0, le=100)
    memory_warning_pct: float = Field(default=90.0, gt=0, lt=100)
    memory_critical_pct: float = Field(default=95.0, gt=0, le=100)
    cpu_warning_pct: float = Field(default=95.0, gt=0, le=100)
    services_every_minutes: float = Field(default=1.0, ge=0, le=60, description="0: off")
    stale_after_minutes: float = Field(default=15.0, gt=0, le=1440, description="a bot or "
                                       "service silent this long is dead: alert")
    security_every_minutes: int = Field(default=15, ge=0, le=1440, description="0: off")
    failed_logins_warning: int = Field(default=20, ge=1, description="failed SSH logins per "
                                       "check that make a warning")
    security_summary_at: str | None = Field(default="08:00", description="HH:MM in "
                                            "notify.reports.timezone; null: off")

    @field_validator("security_summary_at")
    @classmethod
    def _at(cls, value: str | None) -> str | None:
        return _clock_time(value)

    def security_summary_time(self) -> time | None:
        return _as_time(self.security_summary_at)

    @model_validator(mode="after")
    def _ordered(self) -> MonitorSettings:
        if self.disk_warning_pct >= self.disk_critical_pct:
            raise ValueError("disk_warning_pct must be below disk_critical_pct")
        if self.memory_warning_pct >= self.memory_critical_pct:
            raise ValueError("memory_warning_pct must be below memory_critical_pct")
        return self


class NotifySettings(Strict):
    routes: list[Route] = Field(default_factory=list, description="where each concern goes")
    collapse_window_s: float = Field(default=600.0, ge=0, le=86_400, description="identical "
                                     "alerts within this window become one message and a count")
    max_attempts: int = Field(default=8, ge=1, le=100, description="then dead-letter")
    backoff_base_s: float = Field(default=2.0, gt=0, le=3600)
    backoff_cap_s: float = Field(default=300.0, gt=0, le=86_400)
    poll_interval_s: float = Field(default=1.0, gt=0, le=60)
    db_outage_alert_after_s: float = Field(default=60.0, ge=0, le=3600, description="tell "
                                           "infrastructure routes directly when the database "
                                           "has been unreachable this long")
    reports: ReportSettings = Field(default_factory=ReportSettings)
    commands: CommandSettings | None = None

    @field_validator("routes")
    @classmethod
    def _unique_routes(cls, routes: list[TelegramRoute | WebhookRoute]
                       ) -> list[TelegramRoute | WebhookRoute]:
        seen: set[str] = set()
        for route in routes:
            if route.name in seen:
                raise ValueError(f"two routes are named {route.name!r}; names must be unique")
            seen.add(route.name)
        return routes

    @model_validator(mode="after")
    def _command_route(self) -> NotifySettings:
        if self.backoff_base_s > self.backoff_cap_s:
            raise ValueError("backoff_base_s must not exceed backoff_cap_s")
        if self.commands is None:
            return self
        route = self.route(self.commands.route)
        if route is None or not isinstance(route, TelegramRoute):
            known = ", ".join(r.name for r in self.routes if isinstance(r, TelegramRoute))
            raise ValueError(f"commands.route {self.commands.route!r} is not a telegram route "
                             f"(telegram routes: {known or 'none'})")
        return self

    def route(self, name: str) -> TelegramRoute | WebhookRoute | None:
        return next((r for r in self.routes if r.name == name), None)

    def routes_for(self, concern: str, severity: Severity) -> list[str]:
        return [r.name for r in self.routes if r.takes(concern, severity)]
