"""Structured logs: every line has an `action` and, inside a bot, the bot's name.

JSON lines for machines (files, containers, FLEET_LOG_FORMAT=json), a compact readable
line for terminals. Built on stdlib logging so library logs flow through the same handlers.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Mapping, MutableMapping
from datetime import UTC, datetime
from logging.handlers import RotatingFileHandler
from pathlib import Path
from typing import Any

_RESERVED = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


class BoundLogger(logging.LoggerAdapter[logging.Logger]):
    """log.info("message", action="order.submit", cid=...) — keywords become fields."""

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]
                ) -> tuple[Any, MutableMapping[str, Any]]:
        fields = {k: kwargs.pop(k) for k in list(kwargs) if k not in ("exc_info", "stack_info",
                                                                       "stacklevel", "extra")}
        extra = dict(self.extra or {})
        extra.update(fields)
        kwargs["extra"] = {"fields": extra}
        return msg, kwargs

    def bind(self, **fields: Any) -> BoundLogger:
        return BoundLogger(self.logger, {**(self.extra or {}), **fields})


def get_logger(name: str, **bound: Any) -> BoundLogger:
    return BoundLogger(logging.getLogger(f"fleetkit.{name}"), bound)


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    fields = getattr(record, "fields", None)
    result = dict(fields) if isinstance(fields, Mapping) else {}
    for key, value in record.__dict__.items():
        if key not in _RESERVED and key != "fields":
            result.setdefault(key, value)
    return result


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = _fields(record)
        payload["action"] = fields.pop("action", record.name.rsplit(".", 1)[-1])
        payload.update(fields)
        if record.exc_info:
            payload["error"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str)


class ConsoleFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields = _fields(record)
        when = datetime.fromtimestamp(record.created, UTC).strftime("%H:%M:%S")
        bot = fields.pop("bot", None)
        action = fields.pop("action", "")
        extras = " ".join(f"{k}={v}" for k, v in fields.items())
        head = f"{when} {record.levelname:<7} " + (f"[{bot}] " if bot else "")
        line = f"{head}{action + ' ' if action else ''}{record.getMessage()}"
        if extras:
            line += f"  {extras}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever sys.stderr is when a record comes, not the stream it was when
    logging was configured: a command run in-process (a test's CLI runner, an embedding
    program) swaps sys.stderr and closes its stand-in afterwards, and a handler holding the
    stand-in would then fail every record ("I/O operation on closed file")."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass  # StreamHandler's __init__ and setStream: the current sys.stderr always


def configure_logging(*, level: str | None = None, log_file: Path | None = None,
                      json_console: bool | None = None) -> None:
    """Console on stderr (JSON when FLEET_LOG_FORMAT=json or not a terminal) plus an
    optional rotating JSON file. Safe to call twice: it replaces fleetkit's handlers."""
    root = logging.getLogger()
    root.setLevel(level or os.environ.get("FLEET_LOG_LEVEL", "INFO").upper())
    for handler in list(root.handlers):
        if getattr(handler, "_fleetkit", False):
            root.removeHandler(handler)
    if json_console is None:
        json_console = (os.environ.get("FLEET_LOG_FORMAT") == "json"
                        or not sys.stderr.isatty())
    console = _StderrHandler()
    console.setFormatter(JsonFormatter() if json_console else ConsoleFormatter())
    console._fleetkit = True  # type: ignore[attr-defined]
    root.addHandler(console)
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        file_handler = RotatingFileHandler(log_file, maxBytes=10_000_000, backupCount=3,
                                           encoding="utf-8")
        file_handler.setFormatter(JsonFormatter())
        file_handler._fleetkit = True  # type: ignore[attr-defined]
        root.addHandler(file_handler)
    for noisy in ("httpx", "httpcore", "alembic", "urllib3", "ccxt"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
