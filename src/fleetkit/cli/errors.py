"""How a command refuses: one line naming the problem and the fix (`cli.app.main` prints it
and exits with the code)."""

from __future__ import annotations

from typing import NoReturn

from fleetkit.core.errors import UserError


def fail(message: str, code: int = 2) -> NoReturn:
    """Refuse with one line naming the problem and the fix (reported by `main`)."""
    error = UserError(message)
    error.exit_code = code
    raise error
