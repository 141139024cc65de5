"""The pooled ENGINE: Django's PostgreSQL backend, borrowing connections from a shared pool.

Django's own backend is used for everything; only its pooling hooks are overridden, so it
works with whichever driver Django picked (psycopg 3 when importable, else psycopg2).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace

from django.core.exceptions import ImproperlyConfigured
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.backends.base.base import NO_DB_ALIAS
from django.db.backends.postgresql import base as postgresql
from django.db.backends.signals import connection_created
from django.utils.asyncio import async_unsafe
from django.utils.connection import ConnectionDoesNotExist

from ... import borrows, registry
from ...drivers import driver_for
from ...options import TRANSACTION, PoolConfig
from ...pool import ConnectionPool
from ...release import LentConnection, ReleasingCursorDebugWrapper, ReleasingCursorWrapper
from ...signals import EventSender
from .creation import DatabaseCreation

# The request's borrow recorder while the toolbar panel instruments it, else None. A bound
# ContextVar.get: the only cost the panel adds to a borrow when the toolbar is off.
_recording = borrows._recorder.get

# Seconds libpq waits for the server to answer a connect, unless OPTIONS["connect_timeout"]
# says otherwise. Without one, a host that accepts TCP but never answers (a hung server, a
# firewall that drops) keeps the pool's worker in connect() for good.
DEFAULT_CONNECT_TIMEOUT = 5


def without_pool(settings_dict: dict) -> dict:
    """Return ``settings_dict`` without ``OPTIONS["pool"]``, for wrappers that connect directly."""
    # Django reads OPTIONS["pool"] as psycopg_pool's options: on psycopg 3 it would build its
    # own pool, on psycopg2 it refuses to connect. Wrappers that connect directly must not see it.
    options = {key: value for key, value in settings_dict["OPTIONS"].items() if key != "pool"}
    return {**settings_dict, "OPTIONS": options}


def application_name(alias: str) -> str:
    """Name server connections after alias, pid and host, within PostgreSQL's 63 bytes."""
    return f"django_pool:{alias}:{os.getpid()}@{socket.gethostname()}"[:63]


def describe_server(settings_dict: dict) -> str:
    """Say where connections go, for error messages (never the password)."""
    host = settings_dict.get("HOST") or "localhost"
    port = settings_dict.get("PORT") or 5432
    name, user = settings_dict.get("NAME"), settings_dict.get("USER")
    return f"host={host} port={port} dbname={name} user={user}"


class PhysicalConnector:
    """Open one server connection and set it up once, as Django's own backend would."""

    def __init__(self, settings_dict: dict, alias: str) -> None:
        # A private snapshot: a pool never mixes connections to two databases, even when
        # test set-up later switches NAME in the shared settings.
        self.wrapper = postgresql.DatabaseWrapper(without_pool(settings_dict), alias)

    def __call__(self):
        """Connect; set isolation level, JSON adapters, cursor factory, time zone and role."""
        wrapper = self.wrapper
        params = wrapper.get_connection_params()
        # Lets pg_stat_activity tell whose connection this is, on every host (unless the
        # user named it). Read at connect time: a forked child has another pid.
        params.setdefault("application_name", application_name(wrapper.alias))
        params.setdefault("connect_timeout", DEFAULT_CONNECT_TIMEOUT)
        connection = wrapper.get_new_connection(params)
        try:
            connection.autocommit = True
            self.setup(connection)
        except Exception:
            connection.close()
            raise
        return connection

    def setup(self, connection) -> None:
        """Set time zone and role (also again after DISCARD ALL), in autocommit mode."""
        self.wrapper._configure_timezone(connection)
        # Django's _configure_role quotes the role through the wrapper's own connection,
        # which this wrapper never opens (and may not use from the pool's worker thread).
        role = self.wrapper.settings_dict["OPTIONS"].get("assume_role")
        if role:
            with connection.cursor() as cursor:
                cursor.execute("SELECT set_config('role', %s, false)", [role])


class DatabaseWrapper(postgresql.DatabaseWrapper):
    """A PostgreSQL ``DatabaseWrapper`` whose connections come from a process-level pool."""

    creation_class = DatabaseCreation

    def __init__(self, settings_dict: dict, alias: str = DEFAULT_DB_ALIAS) -> None:
        if alias == NO_DB_ALIAS:
            # Django's maintenance connections (CREATE/DROP DATABASE) are never pooled.
            settings_dict = without_pool(settings_dict)
        super().__init__(settings_dict, alias)
        self._borrowed_from: ConnectionPool | None = None
        self._borrow: borrows.Borrow | None = None  # the panel's record of the current borrow
        # release="transaction": the connection went back at a transaction's end and the next
        # query borrows again, keeping the wrapper's state (autocommit, on_commit hooks).
        self._released = False
        self._holds = 0  # open hold() blocks
        self._request_borrows = 0  # borrows since the last request boundary, for the stats
        self._pool: ConnectionPool | None = None  # the pool last resolved, while it serves
        # The pool's ticket for the connection parked at the last request's end, for the next
        # request to take it back without Django's close() and connect() (see _park()).
        self._ticket: int | None = None
        # Given back clean at a request's end without parking (borrowers waited): the next
        # borrow skips connect(), which would set what is already so.
        self._gave_back = False
        # Set at the first request's end: a thread that serves more than one request parks.
        # One made for a single request (runserver's, the ASGI handler's per-request thread)
        # never comes back for its connection, so it gives it back instead.
        self._serves_requests = False

    @property
    def pool_options(self):
        """Return ``OPTIONS["pool"]``: True (defaults), False (no pooling) or a dict."""
        return self.settings_dict["OPTIONS"].get("pool", True)

    @property
    def pool(self) -> ConnectionPool | None:
        """Return this process's pool for the alias (None when pooling is off)."""
        # Read several times per borrow (Django's own code asks too): kept while it serves,
        # resolved again once it is closed (close_pool(), tests) or in a forked child.
        pool = self._pool
        if pool is not None and pool.serves_here():
            return pool
        if self.pool_options is False or self.alias == NO_DB_ALIAS:
            return None
        pool = self._pool = registry.get_pool(self.alias, self._create_pool)
        return pool

    def _create_pool(self) -> ConnectionPool:
        if self.settings_dict["CONN_MAX_AGE"] != 0:
            raise ImproperlyConfigured(
                # Django's own sentence first, as its native pool says it.
                "Pooling doesn't support persistent connections. "
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
        driver = driver_for(self.Database, setup=connector.setup)
        return ConnectionPool(
            connector,
            config,
            driver,
            server=describe_server(self.settings_dict),
            on_event=EventSender(type(self), self.alias),
        )

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
        recorder = _recording()
        connection = pool.getconn() if recorder is None else self._borrow_recorded(pool, recorder)
        self._borrowed_from = pool
        self._request_borrows += 1
        if self.allow_thread_sharing:
            pool.set_shared(connection, True)
        if pool.config.release == TRANSACTION:
            return LentConnection(connection, self.alias)
        return connection

    def _borrow_recorded(self, pool: ConnectionPool, recorder: borrows.BorrowRecorder):
        """Borrow, noting the wait, how the pool lent it, and the queries run on it."""
        borrow = recorder.borrow(self.alias, self._is_threads_own())
        if borrow is None:
            return pool.getconn()
        borrow.asking(pool)
        try:
            connection = pool.getconn()
        except Exception as error:
            borrow.failed(error)
            raise
        borrow.lent_by(pool, connection)
        # First, so that a user's execute_wrapper() block, which pops the last one, keeps working.
        self.execute_wrappers.insert(0, borrow)
        self._borrow = borrow
        return connection

    def _is_threads_own(self) -> bool:
        """Return True if this is the thread's ``connections[alias]``, closed at request end."""
        try:
            return connections[self.alias] is self
        except ConnectionDoesNotExist:  # a wrapper made by hand, for an alias not in settings
            return False

    def inc_thread_sharing(self) -> None:
        """Share the wrapper between threads; its connection is then never reclaimed."""
        super().inc_thread_sharing()
        self._tell_pool_about_sharing()

    def dec_thread_sharing(self) -> None:
        """Stop sharing the wrapper; its borrowing thread alone owns the connection again."""
        super().dec_thread_sharing()
        self._tell_pool_about_sharing()

    def _tell_pool_about_sharing(self) -> None:
        # A shared connection may outlive the thread that borrowed it (LiveServerTestCase):
        # the pool must not reclaim it when that thread exits.
        if self._borrowed_from is not None and self.connection is not None:
            self._borrowed_from.set_shared(self._driver_connection(), self.allow_thread_sharing)

    def _driver_connection(self):
        """Return the driver's connection, also when it is lent as a LentConnection."""
        conn = self.connection
        return conn._conn if conn.__class__ is LentConnection else conn

    def _close(self) -> None:
        """Give the connection back to the pool it came from."""
        pool, self._borrowed_from = self._borrowed_from, None
        if pool is None or self.connection is None:
            return super()._close()
        connection, self.connection = self.connection, None
        if connection.__class__ is LentConnection:
            connection = connection.let_go()
        if self._borrow is not None:
            self._end_recorded_borrow(pool, connection)
        with self.wrap_database_errors:
            pool.putconn(connection)

    def _end_recorded_borrow(self, pool: ConnectionPool, connection) -> None:
        borrow, self._borrow = self._borrow, None
        borrow.returning(pool, connection)
        if borrow in self.execute_wrappers:
            self.execute_wrappers.remove(borrow)

    # Release at transaction end (release="transaction"): every way out of a transaction, and
    # every cursor's close, asks release_if_free(); the next ensure_connection() borrows again.

    def release_if_free(self) -> None:
        """With release="transaction", give the connection back if nothing still needs it."""
        lent = self.connection
        if (
            lent.__class__ is LentConnection
            and not self.in_atomic_block
            and not self._holds
            and not lent.has_open_cursor()
            and not self._borrowed_from.in_transaction(lent._conn)
            and not self.allow_thread_sharing  # last: it takes a lock
        ):
            if not lent.autocommit and not lent.closed:
                # Manual transaction management between transactions: pool connections are
                # in autocommit mode; the next borrow sets the wrapper's mode on its own.
                lent.autocommit = True
            self._close()
            self._released = True

    @contextmanager
    def hold(self) -> Iterator[None]:
        """Keep the server connection from the block's first query to its end."""
        self._holds += 1
        try:
            yield
        finally:
            self._holds -= 1
            if not self._holds:
                self.release_if_free()

    @async_unsafe
    def ensure_connection(self) -> None:
        """Take back a parked connection, borrow again after a release, else connect."""
        if self.connection is not None:
            return
        ticket = self._ticket
        if ticket is not None:
            if _recording() is not None or self._thread_sharing_count:
                # The toolbar records a borrow from the pool; a wrapper shared since it parked
                # borrows as one (get_new_connection() tells the pool, so it is never reclaimed).
                self._unpark()
            else:
                # Taking back the connection parked at the last request's end: inlined, as it
                # is what most requests' first query does.
                self._ticket = None
                pool = self._pool  # the pool that parked it; closed or inherited, it says no
                connection = pool.take_back(ticket)
                if connection is not None:
                    # What connect() sets, where parking did not leave it so: no transaction.
                    self.connection = connection
                    self._borrowed_from = pool
                    self._request_borrows += 1
                    self.health_check_done = True  # the pool checks one before lending it
                    return
        if self._released or self._gave_back:
            with self.wrap_database_errors:
                self._borrow_again()
            return
        self._holds += 1  # connect() turns autocommit on: that ends no transaction
        try:
            super().ensure_connection()
        finally:
            self._holds -= 1

    def _borrow_again(self) -> None:
        # Not connect(): that would reset what the wrapper keeps between transactions (manual
        # autocommit mode, on_commit hooks waiting for set_autocommit(True)), and what it
        # would set is as a clean request's end left it.
        self.connection = self.get_new_connection({})
        self._released = self._gave_back = False
        self.health_check_done = True  # the pool checks a connection before lending it
        self._set_autocommit(self.autocommit)
        # Per-connection set-up (a receiver's SET) runs on every connection the wrapper uses.
        connection_created.send(sender=self.__class__, connection=self)

    def _set_autocommit(self, autocommit: bool) -> None:
        # Pooled connections are lent in autocommit mode, which Django sets again on every
        # borrow: psycopg 3 runs even a no-op change through a generator and its wait loop.
        if self.connection.autocommit != autocommit:
            super()._set_autocommit(autocommit)

    def get_autocommit(self) -> bool:
        """Return the autocommit mode, without borrowing just to read it after a release."""
        if self._released:
            return self.autocommit
        return super().get_autocommit()

    def set_autocommit(
        self, autocommit: bool, force_begin_transaction_with_broken_autocommit: bool = False
    ) -> None:
        """Set the mode; after a release only note it, for the next borrow to set."""
        if not self._released:
            super().set_autocommit(autocommit, force_begin_transaction_with_broken_autocommit)
            if autocommit:
                self.release_if_free()
            return
        # Nothing borrowed: an atomic block ending must not wait for a connection to run its
        # on_commit hooks, and one starting borrows at its first query.
        self.validate_no_atomic_block()
        self.autocommit = autocommit
        if autocommit and self.run_commit_hooks_on_set_autocommit_on:
            self.run_and_clear_commit_hooks()
            self.run_commit_hooks_on_set_autocommit_on = False

    def commit(self) -> None:
        """Commit, then release the connection if it is free."""
        super().commit()
        self.release_if_free()

    def rollback(self) -> None:
        """Roll back, then release the connection if it is free."""
        super().rollback()
        self.release_if_free()

    def chunked_cursor(self):
        """Return a server-side cursor; a lent connection stays lent while it is open."""
        cursor = super().chunked_cursor()
        if self.connection.__class__ is LentConnection:
            self.connection.note_cursor(cursor.cursor)  # psycopg 3 makes it without cursor()
        return cursor

    def make_cursor(self, cursor):
        """Wrap a cursor; on a lent connection, one that releases it once closed."""
        if self.connection.__class__ is LentConnection:
            return ReleasingCursorWrapper(cursor, self)
        return super().make_cursor(cursor)

    def make_debug_cursor(self, cursor):
        """Wrap a logging cursor; on a lent connection, one that releases it once closed."""
        if self.connection.__class__ is LentConnection:
            return ReleasingCursorDebugWrapper(cursor, self)
        return super().make_debug_cursor(cursor)

    def close(self) -> None:
        """Close (give back) the connection; the next query connects afresh."""
        self._released = self._gave_back = False
        if self._ticket is not None:
            self._unpark()
        super().close()

    def close_if_unusable_or_obsolete(self) -> None:
        """At a request's start and end: count the request's borrows, then park or close."""
        borrows, self._request_borrows = self._request_borrows, 0
        self._released = False
        if self.connection is not None:
            if self._serves_requests and self._park(borrows):
                return
            self._serves_requests = True
        if borrows:
            pool = self.pool
            if pool is not None:
                pool.note_request(borrows)
        super().close_if_unusable_or_obsolete()

    # Parking: at a request's end a clean connection is parked in the pool and the wrapper keeps
    # its ticket; the thread's next request takes it straight back, with no close() and
    # connect() (HikariCP's ConcurrentBag does the like with a thread-local list). A borrower
    # that finds no connection idle takes a parked one, reset as on any return, and the ticket
    # then finds nothing: the wrapper borrows anew.

    def _park(self, request_borrows: int) -> bool:
        """Park or give back the connection at a request's end; False if Django must close it."""
        pool = self._borrowed_from
        if (
            pool is None
            or not pool.config.park
            or self.connection.__class__ is LentConnection  # release="transaction"
            or self._borrow is not None  # the toolbar records this borrow's end
            or self.in_atomic_block
            or self.errors_occurred
            or self.autocommit != self.settings_dict["AUTOCOMMIT"]
            # allow_thread_sharing without its lock: only this thread changes it while the
            # wrapper is not shared.
            or self._thread_sharing_count
        ):
            return False
        connection, self.connection = self.connection, None
        self._borrowed_from = None
        if self.run_on_commit:  # what connect() would empty; outside atomic(), empty already
            self.run_on_commit = []
        # No wrap_database_errors: park() and putconn() raise no driver error (a failed reset
        # closes the connection).
        self._ticket = pool.park(connection, request_borrows)
        self._gave_back = self._ticket is None
        return True

    def _unpark(self) -> None:
        """Give the parked connection back for good (if no other borrower took it meanwhile)."""
        ticket, self._ticket = self._ticket, None
        self._pool.unpark(ticket)


def _abandon_borrowed_after_fork() -> None:
    # The forking thread's wrappers may hold a connection borrowed from the parent's pool
    # (gunicorn --preload, a query at import time). The pool has already made it harmless in
    # the child; forget it so that the next query borrows from the child's own pool.
    for wrapper in connections.all(initialized_only=True):
        if not isinstance(wrapper, DatabaseWrapper):
            continue
        wrapper._ticket = None
        wrapper._gave_back = False
        if wrapper._borrowed_from is not None:
            wrapper._borrowed_from = wrapper._borrow = None
            wrapper.connection = None
            wrapper._released = False


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_abandon_borrowed_after_fork)
