"""Dates as the CLI takes them (--from / --to): YYYY-MM-DD, refused in one line naming the
option otherwise."""

from __future__ import annotations

import re
from datetime import date

from fleetkit.cli.errors import fail

DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def parse_date(text: str, option: str) -> date:
    if DATE.match(text.strip()):
        try:
            return date.fromisoformat(text.strip())
        except ValueError as exc:
            fail(f"{option} {text!r} is not a date ({exc}): write YYYY-MM-DD, e.g. 2027-01-04")
    fail(f"{option} {text!r} is not a date: write YYYY-MM-DD, e.g. 2027-01-04")
