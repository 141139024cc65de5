"""A thread-safe, observable PostgreSQL connection pool for Django."""

from .errors import PoolClosed, PoolError, PoolTimeout, TooManyRequests

__all__ = ["PoolClosed", "PoolError", "PoolTimeout", "TooManyRequests"]
__version__ = "0.1.0"
