"""A thread-safe, observable PostgreSQL connection pool for Django."""

from typing import Any

from .errors import PoolClosed, PoolError, PoolTimeout, ServerUnavailable, TooManyRequests

__all__ = [
    "PoolClosed",
    "PoolError",
    "PoolTimeout",
    "ServerUnavailable",
    "TooManyRequests",
    "hold",
]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # hold() needs Django's connections; the pool core imports this package without Django.
    if name == "hold":
        from .release import hold

        return hold
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
