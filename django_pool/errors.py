"""Exceptions raised by the pool.

They subclass the driver's ``OperationalError`` when a driver is importable, so
Django's error wrapper turns them into ``django.db.OperationalError`` like any
other connection failure. When psycopg_pool is importable, they are also its errors of
the same names, so that code written for Django's native pool
(``except psycopg_pool.PoolTimeout:``) catches ours unchanged.
"""

from __future__ import annotations


def _driver_operational_error() -> type[Exception]:
    # Django picks psycopg 3 when it is importable and psycopg2 otherwise; our
    # errors must be the OperationalError of the driver Django wraps.
    try:
        import psycopg

        return psycopg.OperationalError
    except ImportError:
        pass
    try:
        import psycopg2

        return psycopg2.OperationalError
    except ImportError:
        return Exception


def _native(name: str) -> tuple[type[Exception], ...]:
    """Return psycopg_pool's error called ``name``, as a base to add, or nothing."""
    try:
        import psycopg_pool
    except ImportError:
        return ()
    return (getattr(psycopg_pool, name),)


class PoolError(_driver_operational_error()):
    """Base class of every error raised by the pool."""


class PoolTimeout(PoolError, *_native("PoolTimeout")):
    """No connection became available within the pool's timeout."""


class TooManyRequests(PoolError, *_native("TooManyRequests")):
    """The queue of waiting borrowers is full (``max_waiting``)."""


class PoolClosed(PoolError, *_native("PoolClosed")):
    """The pool was closed; it hands out no more connections."""


class ServerUnavailable(PoolError):
    """The server is down: connects fail and the next attempt is not due yet."""
