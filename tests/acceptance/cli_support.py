"""What the CLI acceptance tests share: `fleet ...` as a user runs it (a fresh data directory
under `cwd`, no database or config from the caller's environment), the check that a
refusal is a user error: exit 2, a message on stderr, no traceback — and, for a command
given --json, that stdout holds the same refusal as a JSON error object."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def fleet(*args: str, cwd: Path, env: dict[str, str] | None = None, stdin: str | None = None,
          timeout: float = 120) -> subprocess.CompletedProcess[str]:
    base = {**os.environ, "FLEET_HOME": str(cwd / "var")}
    base.pop("FLEET_DB_URL", None)
    base.pop("FLEET_CONFIG", None)
    return subprocess.run([sys.executable, "-m", "fleetkit", *args], cwd=cwd,
                          env={**base, **(env or {})}, capture_output=True, text=True,
                          input=stdin, timeout=timeout, check=False)


def assert_user_error(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    assert lines, "expected an error message on stderr"
    assert "Traceback" not in result.stderr
    message = result.stderr.lower()
    for fragment in fragments:
        assert fragment.lower() in message, result.stderr


def assert_json_user_error(result: subprocess.CompletedProcess[str], kind: str,
                           *fragments: str) -> dict[str, object]:
    """A user error under --json: the one line on stderr, and on stdout nothing but
    {"error": {"kind", "message", "exit_code"}}; returns the error object."""
    assert_user_error(result, *fragments)
    error = json.loads(result.stdout)["error"]
    assert error["kind"] == kind, error
    assert error["exit_code"] == 2
    assert f"error: {error['message']}" in result.stderr
    return dict(error)
