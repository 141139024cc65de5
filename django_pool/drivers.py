"""What the pool needs to know about a DB-API connection, per driver.

The pool core calls only these methods, so it can run on psycopg2, psycopg 3 or
a fake driver in tests.
"""

from __future__ import annotations

import contextlib
from enum import IntEnum
from typing import Any, Protocol


class TxStatus(IntEnum):
    """libpq's PQtransactionStatus; psycopg2 and psycopg 3 report the same numbers."""

    IDLE = 0
    ACTIVE = 1
    INTRANS = 2
    INERROR = 3
    UNKNOWN = 4


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


class PsycopgDriver:
    """What psycopg2 and psycopg 3 connections have in common."""

    def status(self, conn: Any) -> int:
        if conn.closed:
            return TxStatus.UNKNOWN
        return conn.info.transaction_status

    def rollback(self, conn: Any) -> None:
        conn.rollback()
        if self.status(conn) != TxStatus.IDLE:
            # psycopg2 in autocommit mode skips ROLLBACK for a transaction it did not open
            # itself (a BEGIN run as a query); libpq's status says one is still open.
            with conn.cursor() as cursor:
                cursor.execute("ROLLBACK")

    def discard_all(self, conn: Any) -> None:
        # DISCARD ALL cannot run inside a transaction block.
        autocommit = conn.autocommit
        if not autocommit:
            conn.autocommit = True
        try:
            with conn.cursor() as cursor:
                cursor.execute("DISCARD ALL")
        finally:
            if not autocommit:
                conn.autocommit = False

    def ping(self, conn: Any) -> None:
        with conn.cursor() as cursor:
            cursor.execute("SELECT 1")
        if not conn.autocommit:
            conn.rollback()

    def close(self, conn: Any) -> None:
        # Closing a broken connection may fail; it is gone either way.
        with contextlib.suppress(Exception):
            conn.close()


class Psycopg2Driver(PsycopgDriver):
    """psycopg2: read the status without building a ConnectionInfo object each time."""

    def status(self, conn: Any) -> int:
        if conn.closed:
            return TxStatus.UNKNOWN
        return conn.get_transaction_status()


class Psycopg3Driver(PsycopgDriver):
    """psycopg 3: read the status straight from libpq."""

    def status(self, conn: Any) -> int:
        if conn.closed:
            return TxStatus.UNKNOWN
        return conn.pgconn.transaction_status


def driver_for(database_module: Any) -> Driver:
    """Return the driver adapter for the DB-API module Django picked (psycopg or psycopg2)."""
    if database_module.__name__ == "psycopg2":
        return Psycopg2Driver()
    return Psycopg3Driver()
