"""What the pool needs to know about a DB-API connection, per driver.

The pool core calls only these methods, so it can run on psycopg2, psycopg 3 or
a fake driver in tests.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from enum import IntEnum
from typing import Any, Protocol


class TxStatus(IntEnum):
    """libpq's PQtransactionStatus; psycopg2 and psycopg 3 report the same numbers."""

    IDLE = 0
    ACTIVE = 1
    INTRANS = 2
    INERROR = 3
    UNKNOWN = 4


# Session settings the server reports to the client (ParameterStatus) whenever they change, so
# the pool can tell with no round trip that a borrower changed them. PostgreSQL reports
# search_path from version 18 on; on older servers it reads None and is never restored.
REPORTED_SETTINGS = (
    "TimeZone",
    "DateStyle",
    "IntervalStyle",
    "application_name",
    "default_transaction_read_only",
    "search_path",
    "client_encoding",
    "standard_conforming_strings",
)
# The driver decodes text with the encoding it chose at connect time: a changed
# client_encoding cannot be set back safely, so such a connection is discarded instead.
_NOT_RESTORABLE = frozenset({"client_encoding"})


class SessionNotRestorable(Exception):
    """A session setting changed that cannot be set back; the connection must be closed."""


class Driver(Protocol):
    """The operations the pool performs on a connection."""

    def status(self, conn: Any) -> int:
        """Return the local transaction status (a TxStatus value); UNKNOWN if broken."""

    def rollback(self, conn: Any) -> None:
        """Roll back the open transaction."""

    def discard_all(self, conn: Any) -> None:
        """Reset all session state on the server (``DISCARD ALL``)."""

    def ping(self, conn: Any) -> None:
        """Run a trivial query; raise if the connection does not work."""

    def close(self, conn: Any) -> None:
        """Close the connection; never raise."""

    def session_state(self, conn: Any) -> tuple:
        """Return the reported session settings (REPORTED_SETTINGS order), with no round trip."""

    def idle_session_state(self, conn: Any) -> tuple | int:
        """Return ``session_state()`` if the status is IDLE, else the status (one call, for
        the return's fast path)."""

    def restore_session(self, conn: Any, baseline: tuple) -> None:
        """Set the reported session settings that differ from ``baseline`` back (one round trip)."""

    def detach(self, conn: Any) -> None:
        """In a forked child, make an inherited connection harmless without telling the server."""


@contextlib.contextmanager
def _autocommit(conn: Any) -> Iterator[None]:
    """Run the block in autocommit mode, then put the connection's mode back."""
    autocommit = conn.autocommit
    if not autocommit:
        conn.autocommit = True
    try:
        yield
    finally:
        if not autocommit:
            conn.autocommit = False


class PsycopgDriver:
    """What psycopg2 and psycopg 3 connections have in common; subclasses read the status."""

    def __init__(self, setup: Callable[[Any], object] | None = None) -> None:
        # DISCARD ALL also undoes the connection's set-up (SET ROLE, SET TIME ZONE): ``setup``
        # runs it again afterwards.
        self._setup = setup

    def rollback(self, conn: Any) -> None:
        conn.rollback()
        if self.status(conn) != TxStatus.IDLE:
            # psycopg2 in autocommit mode skips ROLLBACK for a transaction it did not open
            # itself (a BEGIN run as a query); libpq's status says one is still open.
            with conn.cursor() as cursor:
                cursor.execute("ROLLBACK")

    def discard_all(self, conn: Any) -> None:
        # DISCARD ALL cannot run inside a transaction block.
        with _autocommit(conn), conn.cursor() as cursor:
            cursor.execute("DISCARD ALL")
            if self._setup is not None:
                self._setup(conn)

    def ping(self, conn: Any) -> None:
        with conn.cursor() as cursor:
            cursor.execute("SELECT 1")
        if not conn.autocommit:
            conn.rollback()

    def close(self, conn: Any) -> None:
        # Closing a broken connection may fail; it is gone either way.
        with contextlib.suppress(Exception):
            conn.close()

    def restore_session(self, conn: Any, baseline: tuple) -> None:
        current = self._current_settings(conn)
        changed = [
            (name, value)
            for name, value, now in zip(REPORTED_SETTINGS, baseline, current, strict=True)
            if value != now and value is not None
        ]
        if not changed:
            return
        if _NOT_RESTORABLE.intersection(name for name, _ in changed):
            raise SessionNotRestorable(f"changed: {', '.join(name for name, _ in changed)}")
        calls = ", ".join(["set_config(%s, %s, false)"] * len(changed))
        params = [item for pair in changed for item in pair]
        # Outside a transaction, so that a later rollback cannot undo the restore.
        with _autocommit(conn), conn.cursor() as cursor:
            cursor.execute(f"SELECT {calls}", params)

    def idle_session_state(self, conn: Any) -> tuple | int:
        status = self.status(conn)
        return status if status else self.session_state(conn)  # status 0 is IDLE

    def _current_settings(self, conn: Any) -> tuple:
        return self.session_state(conn)

    def detach(self, conn: Any) -> None:
        # Point this process's copy of the socket at /dev/null: whatever later closes or
        # collects the connection here (sending Terminate) then cannot end the parent's
        # session, while the parent's copy of the socket stays as it was.
        with contextlib.suppress(Exception):
            devnull = os.open(os.devnull, os.O_RDWR)
            try:
                os.dup2(devnull, conn.fileno())
            finally:
                os.close(devnull)


class Psycopg2Driver(PsycopgDriver):
    """psycopg2: read status and settings without building a ConnectionInfo each time."""

    def status(self, conn: Any) -> int:
        if conn.closed:
            return TxStatus.UNKNOWN
        return conn.get_transaction_status()

    def session_state(self, conn: Any) -> tuple:
        return tuple(map(conn.get_parameter_status, REPORTED_SETTINGS))


class Psycopg3Driver(PsycopgDriver):
    """psycopg 3: read status and settings straight from libpq."""

    _SETTINGS = tuple(name.encode() for name in REPORTED_SETTINGS)

    def status(self, conn: Any) -> int:
        # libpq says UNKNOWN for a closed or broken connection: no need to ask conn.closed.
        return conn.pgconn.transaction_status

    def session_state(self, conn: Any) -> tuple:
        # Raw bytes: comparing them is all a return needs; decoding would double the cost.
        return tuple(map(conn.pgconn.parameter_status, self._SETTINGS))

    def idle_session_state(self, conn: Any) -> tuple | int:
        # The base class's, with conn.pgconn looked up once: it runs on every return.
        pgconn = conn.pgconn
        status = pgconn.transaction_status
        if status:  # not IDLE
            return status
        return tuple(map(pgconn.parameter_status, self._SETTINGS))

    def restore_session(self, conn: Any, baseline: tuple) -> None:
        super().restore_session(conn, tuple(map(_text, baseline)))

    def _current_settings(self, conn: Any) -> tuple:
        return tuple(map(_text, self.session_state(conn)))


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode()


def backend_pid(conn: Any) -> int | None:
    """Return the server process id of a psycopg 3 or psycopg2 connection (no round trip)."""
    try:
        return conn.info.backend_pid  # both drivers' ConnectionInfo has it
    except Exception:  # noqa: BLE001 - a closed or broken connection has no pid to show
        return None


def driver_for(database_module: Any, setup: Callable[[Any], object] | None = None) -> Driver:
    """Return the driver adapter for the DB-API module Django picked (psycopg or psycopg2)."""
    if database_module.__name__ == "psycopg2":
        return Psycopg2Driver(setup)
    return Psycopg3Driver(setup)
