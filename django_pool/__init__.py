"""A thread-safe, observable PostgreSQL connection pool for Django."""

from .errors import PoolClosed, PoolError, PoolTimeout, ServerUnavailable, TooManyRequests

__all__ = ["PoolClosed", "PoolError", "PoolTimeout", "ServerUnavailable", "TooManyRequests"]
__version__ = "0.1.0"
