"""Release at transaction end (``OPTIONS["pool"]["release"] = "transaction"``).

The wrapper lends its driver connection out as a ``LentConnection``: it forwards everything to
the real connection and notes the cursors opened on it, so that the wrapper can tell when the
connection is really free (no transaction, no atomic block, no open cursor, no ``hold()``). When
the wrapper gives the connection back, the ``LentConnection`` lets go of it: code that kept
``connection.connection`` gets ``ConnectionReleased``, never another borrower's session.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.backends import utils

from .errors import PoolError


class ConnectionReleased(PoolError):
    """The driver connection was used after the pool took it back at transaction end."""


class LentConnection:
    """The driver connection, as a wrapper in ``release="transaction"`` mode lends it."""

    __slots__ = ("_conn", "_alias", "cursors")

    def __init__(self, conn: Any, alias: str) -> None:
        object.__setattr__(self, "_conn", conn)
        object.__setattr__(self, "_alias", alias)
        # Weak references to the driver cursors opened on it: one collected unclosed is free.
        # (A set of refs, not a WeakSet: that costs twice as much to make on every borrow.)
        object.__setattr__(self, "cursors", set())

    def __getattr__(self, name: str) -> Any:
        return getattr(self._live(), name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._live(), name, value)

    def __repr__(self) -> str:
        conn = self._conn
        state = "released" if conn is None else repr(conn)
        return f"<LentConnection {self._alias!r} {state}>"

    def cursor(self, *args: Any, **kwargs: Any) -> Any:
        """Open a cursor on the connection, noted so the connection stays lent while it is open."""
        cursor = self._live().cursor(*args, **kwargs)
        self.cursors.add(weakref.ref(cursor))
        return cursor

    def note_cursor(self, cursor: Any) -> None:
        """Note a cursor made on the connection without cursor() (psycopg 3's server-side ones)."""
        self.cursors.add(weakref.ref(cursor))

    def forget_cursor(self, cursor: Any) -> None:
        """Forget a closed cursor, so that the usual check looks at an empty set."""
        self.cursors.discard(weakref.ref(cursor))

    def has_open_cursor(self) -> bool:
        """Return True if a cursor opened on the connection is still open."""
        for ref in self.cursors:
            cursor = ref()
            if cursor is not None and not cursor.closed:
                return True
        return False

    def let_go(self) -> Any:
        """Return the driver connection and forget it: any later use raises ConnectionReleased."""
        conn = self._conn
        object.__setattr__(self, "_conn", None)
        return conn

    def _live(self) -> Any:
        conn = self._conn
        if conn is None:
            raise ConnectionReleased(
                f"connections[{self._alias!r}].connection was used after the pool took it back: "
                'with release="transaction" the driver connection is lent only until the '
                "transaction ends. Take it again from connection.connection after "
                "connection.ensure_connection(), inside transaction.atomic() or "
                "django_pool.hold(), so that it stays yours."
            )
        return conn


def _release_on_close(base: type) -> type:
    class ReleasingCursor(base):
        """A Django cursor that lets its wrapper release the connection once it is closed."""

        def close(self) -> None:
            try:
                self.cursor.close()
            finally:
                lent = self.db.connection
                if lent.__class__ is LentConnection:
                    lent.forget_cursor(self.cursor)
                self.db.release_if_free()

    ReleasingCursor.__name__ = ReleasingCursor.__qualname__ = f"Releasing{base.__name__}"
    return ReleasingCursor


ReleasingCursorWrapper = _release_on_close(utils.CursorWrapper)
ReleasingCursorDebugWrapper = _release_on_close(utils.CursorDebugWrapper)


@contextmanager
def hold(using: str = DEFAULT_DB_ALIAS) -> Iterator[None]:
    """Keep ``connections[using]``'s server connection for the block, in any release mode.

    For session state that must last from one query to the next outside a transaction: ``SET``,
    temporary tables, advisory locks, ``LISTEN``. A no-op for other ENGINEs.
    """
    wrapper = connections[using]
    with getattr(wrapper, "hold", nullcontext)():
        yield
