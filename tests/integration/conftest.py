"""Fixtures shared by integration tests in this folder: a fleet with a PostgreSQL login role
per bot (tests/integration/bot_roles.py)."""

from tests.integration.bot_roles import as_bot, fleet

__all__ = ["as_bot", "fleet"]
