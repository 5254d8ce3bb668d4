"""Recognising "the database is not there" among driver errors."""

from __future__ import annotations

from sqlalchemy.exc import DBAPIError, OperationalError

_SQLITE_UNAVAILABLE = ("database is locked", "unable to open database", "disk i/o error",
                       "database table is locked")


def is_unavailable(exc: BaseException) -> bool:
    """True for errors that mean "retry later" (server down, connection lost, file locked),
    False for errors in our own SQL or data, which must not be retried."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, OperationalError):
        message = str(exc.orig).lower() if exc.orig is not None else str(exc).lower()
        if any(text in message for text in _SQLITE_UNAVAILABLE):
            return True
        # psycopg raises OperationalError for refused/lost connections and server shutdown.
        return exc.orig is not None and type(exc.orig).__module__.startswith("psycopg")
    return False
