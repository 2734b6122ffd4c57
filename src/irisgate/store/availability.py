"""Whether the database is reachable, as last seen by anyone using it, logged once per change.

The batch writer and the management API report what they saw: `failed(exc)` when an error
means the database cannot be reached (see `unavailable`), `answered()` when it worked. The
log says once that the database is down and once that it is back, however many requests
run into the outage in between.
"""

from __future__ import annotations

import logging
import time

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, StatementError

_LOG = logging.getLogger("irisgate.store")
# SQLSTATE classes that mean "no usable connection", not "this statement is wrong":
# 08 connection exception, 53 insufficient resources, 57 operator intervention (shutdown,
# "the database system is starting up").
_UNAVAILABLE_SQLSTATES = frozenset({"08", "53", "57"})
# and 55000 object_not_in_prerequisite_state, which is what connecting to a database an admin
# closed (`ALTER DATABASE ... ALLOW_CONNECTIONS false`, as during a restore) raises
_UNAVAILABLE_CODES = frozenset({"55000"})


def unavailable(exc: BaseException) -> bool:
    """Whether `exc` means the database could not be reached or used at all (as opposed to a
    statement or the data being at fault)."""
    if isinstance(exc, OSError | TimeoutError):
        return True
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated or isinstance(exc, InterfaceError):
            return True
        sqlstate = getattr(exc.orig, "sqlstate", None)
        if isinstance(sqlstate, str):
            return sqlstate[:2] in _UNAVAILABLE_SQLSTATES or sqlstate in _UNAVAILABLE_CODES
        if isinstance(exc, OperationalError):  # SQLite: locked, unable to open, disk I/O
            return True
        return isinstance(exc.orig, OSError | TimeoutError)
    if isinstance(exc, StatementError):
        return isinstance(exc.orig, OSError | TimeoutError)
    return False


def describe(exc: BaseException) -> str:
    """The driver's own message, without the SQL and parameters SQLAlchemy adds."""
    if isinstance(exc, StatementError) and exc.orig is not None:
        return f"{type(exc.orig).__name__}: {exc.orig}"
    return f"{type(exc).__name__}: {exc}"


class Availability:
    """The database's reachability as last reported (`down`), each change logged once."""

    def __init__(self, url: str, logger: logging.Logger | None = None) -> None:
        self._url = url
        self._log = logger if logger is not None else _LOG
        self.down = False
        self._since = 0.0
        self.outages_total = 0

    def failed(self, exc: BaseException) -> None:
        """Someone could not reach the database."""
        if self.down:
            return
        self.down = True
        self.outages_total += 1
        self._since = time.monotonic()
        self._log.error("the database %s is unavailable: %s", self._url, describe(exc))

    def answered(self) -> None:
        """Someone used the database successfully."""
        if not self.down:
            return
        self.down = False
        self._log.warning(
            "the database %s is available again (after %.1f s)",
            self._url,
            time.monotonic() - self._since,
        )
