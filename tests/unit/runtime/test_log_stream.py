"""The console log follows sys.stderr: a command run in-process (a test's CLI runner, an
embedding program) swaps it and closes its stand-in afterwards; records logged later must
reach the stderr of that moment, not fail on the closed stand-in."""

from __future__ import annotations

import io
import logging
import sys

import pytest

from fleetkit.runtime.logs import configure_logging


def test_records_go_to_the_stderr_of_the_moment_they_are_logged(
        monkeypatch: pytest.MonkeyPatch) -> None:
    stand_in = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stand_in)
    configure_logging(json_console=True)
    stand_in.close()
    now = io.StringIO()
    monkeypatch.setattr(sys, "stderr", now)
    try:
        logging.getLogger("fleetkit.test").warning("after the swap")
    finally:
        for handler in list(logging.getLogger().handlers):
            if getattr(handler, "_fleetkit", False):
                logging.getLogger().removeHandler(handler)
    assert "after the swap" in now.getvalue()
    assert "Logging error" not in now.getvalue()
