"""The pooled ENGINE: Django's PostgreSQL backend, borrowing connections from a shared pool.

Django's own backend is used for everything; only its pooling hooks are overridden, so it
works with whichever driver Django picked (psycopg 3 when importable, else psycopg2).
"""

from __future__ import annotations

from dataclasses import replace

from django.core.exceptions import ImproperlyConfigured
from django.db import DEFAULT_DB_ALIAS
from django.db.backends.base.base import NO_DB_ALIAS
from django.db.backends.postgresql import base as postgresql

from ... import registry
from ...config import PoolConfig
from ...drivers import driver_for
from ...pool import ConnectionPool
from .creation import DatabaseCreation


def _without_pool(settings_dict: dict) -> dict:
    # Django reads OPTIONS["pool"] as psycopg_pool's options: on psycopg 3 it would build its
    # own pool, on psycopg2 it refuses to connect. Wrappers that connect directly must not see it.
    options = {key: value for key, value in settings_dict["OPTIONS"].items() if key != "pool"}
    return {**settings_dict, "OPTIONS": options}


class PhysicalConnector:
    """Open one server connection and set it up once, as Django's own backend would."""

    def __init__(self, settings_dict: dict, alias: str) -> None:
        # A private snapshot: a pool never mixes connections to two databases, even when
        # test set-up later switches NAME in the shared settings.
        self.wrapper = postgresql.DatabaseWrapper(_without_pool(settings_dict), alias)

    def __call__(self):
        """Connect; set isolation level, JSON adapters, cursor factory, time zone and role."""
        wrapper = self.wrapper
        connection = wrapper.get_new_connection(wrapper.get_connection_params())
        try:
            connection.autocommit = True
            wrapper._configure_connection(connection)
        except Exception:
            connection.close()
            raise
        return connection


class DatabaseWrapper(postgresql.DatabaseWrapper):
    """A PostgreSQL ``DatabaseWrapper`` whose connections come from a process-level pool."""

    creation_class = DatabaseCreation

    def __init__(self, settings_dict: dict, alias: str = DEFAULT_DB_ALIAS) -> None:
        if alias == NO_DB_ALIAS:
            # Django's maintenance connections (CREATE/DROP DATABASE) are never pooled.
            settings_dict = _without_pool(settings_dict)
        super().__init__(settings_dict, alias)
        self._borrowed_from: ConnectionPool | None = None

    @property
    def pool_options(self):
        """Return ``OPTIONS["pool"]``: True (defaults), False (no pooling) or a dict."""
        return self.settings_dict["OPTIONS"].get("pool", True)

    @property
    def pool(self) -> ConnectionPool | None:
        """Return this process's pool for the alias (None when pooling is off)."""
        if self.pool_options is False or self.alias == NO_DB_ALIAS:
            return None
        return registry.get_pool(self.alias, self._create_pool)

    def _create_pool(self) -> ConnectionPool:
        if self.settings_dict["CONN_MAX_AGE"] != 0:
            raise ImproperlyConfigured(
                f"DATABASES[{self.alias!r}] sets CONN_MAX_AGE="
                f"{self.settings_dict['CONN_MAX_AGE']!r}, but the pool owns connection "
                "lifetime: set CONN_MAX_AGE to 0 (use OPTIONS['pool']['max_lifetime'])."
            )
        try:
            config = PoolConfig.from_options(self.pool_options, name=self.alias)
        except ValueError as error:
            raise ImproperlyConfigured(
                f"DATABASES[{self.alias!r}]['OPTIONS']['pool']: {error}"
            ) from error
        explicit = isinstance(self.pool_options, dict) and "check" in self.pool_options
        if self.settings_dict["CONN_HEALTH_CHECKS"] and not explicit:
            config = replace(config, check="always")
        connector = PhysicalConnector(self.settings_dict, self.alias)
        return ConnectionPool(connector, config, driver_for(self.Database))

    def close_pool(self) -> None:
        """Close this process's pool for the alias; safe to call twice."""
        registry.close_pool(self.alias)

    def get_connection_params(self) -> dict:
        """Return no parameters when pooled: the pool's connector builds them per connection."""
        if self.pool is not None:
            return {}
        return super().get_connection_params()

    def get_new_connection(self, conn_params: dict):
        """Borrow a connection from the pool (set up when the pool created it)."""
        pool = self.pool
        if pool is None:
            return super().get_new_connection(conn_params)
        connection = pool.getconn()
        self._borrowed_from = pool
        return connection

    def _close(self) -> None:
        """Give the connection back to the pool it came from."""
        pool, self._borrowed_from = self._borrowed_from, None
        if pool is None or self.connection is None:
            return super()._close()
        connection, self.connection = self.connection, None
        with self.wrap_database_errors:
            pool.putconn(connection)
