"""A thread-safe pool of DB-API connections: borrow, return, check, grow and shrink.

No Django here: the pool gets a ``connect()`` callable that opens one fully set-up
connection, and a driver adapter (``drivers.Driver``) for the few things it does to one.

Every physical connection has one ``_ConnectionRecord`` and is, at any moment, in exactly
one place: the idle stack, the borrowed map, or the hands of the one thread that is
checking, resetting or closing it. Decisions (which place, how many to open) are taken
under one lock per pool; connecting, pinging, rolling back, closing and waiting happen
outside it. New connections are opened by one background worker thread per pool.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import weakref
from collections import Counter, deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from queue import Empty, SimpleQueue
from time import monotonic
from typing import Any

from .config import PoolConfig
from .drivers import Driver, TxStatus
from .errors import PoolClosed, PoolError, PoolTimeout, TooManyRequests

logger = logging.getLogger("django_pool")

_IDLE = TxStatus.IDLE
_UNKNOWN = TxStatus.UNKNOWN

# The worker wakes at least this often to close idle connections (and at most this often,
# so a tiny max_idle in tests does not turn it into a busy loop).
_MAX_TICK = 30.0
_MIN_TICK = 0.01

# os.getpid() is a system call; the fast path compares with this copy, kept current in
# forked children by register_at_fork.
_pid = os.getpid()


def _remember_pid() -> None:
    global _pid
    _pid = os.getpid()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_remember_pid)


class _ConnectionRecord:
    """One physical connection, its times (monotonic seconds) and its current checkout."""

    __slots__ = ("conn", "created_at", "expires_at", "returned_at", "borrowed_at")

    def __init__(self, conn: Any, created_at: float, expires_at: float) -> None:
        self.conn = conn
        self.created_at = created_at
        self.expires_at = expires_at
        self.returned_at = created_at
        self.borrowed_at = created_at


class _Waiter:
    """A borrower queued for the next connection returned or created."""

    __slots__ = ("_ready", "record", "error")

    def __init__(self) -> None:
        # A lock used as a one-shot event: cheaper than threading.Event, which has a
        # Condition and a lock of its own.
        self._ready = threading.Lock()
        self._ready.acquire()
        self.record: _ConnectionRecord | None = None
        self.error: BaseException | None = None

    def wait(self, timeout: float) -> None:
        """Block until served or failed, or until ``timeout`` seconds have passed."""
        self._ready.acquire(timeout=max(timeout, 0.0))

    def set(self, record: _ConnectionRecord) -> None:
        """Hand the waiter a connection (under the pool lock)."""
        self.record = record
        self._ready.release()

    def fail(self, error: BaseException) -> None:
        """Make the waiter raise ``error`` (under the pool lock)."""
        self.error = error
        self._ready.release()


_STOP = object()


def _run_worker(pool_ref: weakref.ref[ConnectionPool], tasks: SimpleQueue, tick: float) -> None:
    """Run the pool's tasks one at a time until it is closed or garbage-collected."""
    while True:
        try:
            task = tasks.get(timeout=tick)
        except Empty:
            task = ConnectionPool._maintain
        if task is _STOP:
            return
        # Hold the pool only while working for it, so a forgotten pool can be collected.
        pool = pool_ref()
        if pool is None:
            return
        try:
            task(pool)
        except Exception:
            # A bug here must not silently stop the pool from ever growing again.
            logger.exception("pool %r: background task failed", pool.name)
        del pool


class ConnectionPool:
    """A fixed-capacity, thread-safe pool of connections made by ``connect()``."""

    _REQUESTS_NUM = "requests_num"
    _REQUESTS_QUEUED = "requests_queued"
    _REQUESTS_WAIT_MS = "requests_wait_ms"
    _REQUESTS_ERRORS = "requests_errors"
    _REQUESTS_TIMEOUTS = "requests_timeouts"
    _REQUESTS_TOO_MANY = "requests_too_many"
    _CONNECTIONS_NUM = "connections_num"
    _CONNECTIONS_MS = "connections_ms"
    _CONNECTIONS_ERRORS = "connections_errors"
    _CONNECTIONS_LOST = "connections_lost"
    _CONNECTIONS_CLOSED = "connections_closed"
    _RETURNS_BAD = "returns_bad"
    _USAGE_MS = "usage_ms"
    _COUNTERS = (
        _REQUESTS_NUM,
        _REQUESTS_QUEUED,
        _REQUESTS_WAIT_MS,
        _REQUESTS_ERRORS,
        _REQUESTS_TIMEOUTS,
        _REQUESTS_TOO_MANY,
        _CONNECTIONS_NUM,
        _CONNECTIONS_MS,
        _CONNECTIONS_ERRORS,
        _CONNECTIONS_LOST,
        _CONNECTIONS_CLOSED,
        _RETURNS_BAD,
        _USAGE_MS,
    )

    def __init__(self, connect: Callable[[], Any], config: PoolConfig, driver: Driver) -> None:
        self.name = config.name or "pool"
        self.config = config
        self._connect = connect
        self._driver = driver
        self._pid = os.getpid()
        self._min_size = config.min_size
        self._max_size = config.max_size
        self._timeout = config.timeout
        self._max_waiting = config.max_waiting
        self._max_idle = config.max_idle
        check_after = config.check_after()
        self._check_after = float("inf") if check_after is None else check_after
        self._discard_all = config.reset == "discard"
        self._tick = min(max(min(config.max_idle, config.max_lifetime) / 2, _MIN_TICK), _MAX_TICK)

        self._lock = threading.Lock()
        # LIFO: the most recently returned connection is lent first, so under steady light
        # load the ones at the bottom stay untouched, pass max_idle and get closed, and the
        # pool shrinks after a spike. A FIFO would lend them in turn and keep every one of
        # them "recently used" forever.
        self._idle: list[_ConnectionRecord] = []
        self._borrowed: dict[int, _ConnectionRecord] = {}
        self._waiting: deque[_Waiter] = deque()
        self._nconns = 0  # open: idle, borrowed, or in a thread's hands
        self._connecting = 0  # requested from the worker and not yet opened or given up
        self._closed = False
        self._maintenance_requested = False
        self._stats: Counter[str] = Counter()

        self._tasks: SimpleQueue = SimpleQueue()
        self._worker: threading.Thread | None = None
        # Stops the worker when the pool is closed or collected; holds the queue, not the pool.
        self._stop_worker = weakref.finalize(self, self._tasks.put, _STOP)

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{self.in_use()}/{self.size()} in use"
        return f"<{type(self).__name__} {self.name!r} {state}>"

    # Borrowing

    def getconn(self, timeout: float | None = None) -> Any:
        """Borrow a connection, waiting up to ``timeout`` seconds (default: config.timeout)."""
        if self._pid != _pid:
            raise self._other_process_error()
        if self._worker is None:
            self._start_worker()
        now = monotonic()
        with self._lock:
            if self._closed:
                self._stats[self._REQUESTS_ERRORS] += 1
                raise self._closed_error()
            self._stats[self._REQUESTS_NUM] += 1
            record = self._idle.pop() if self._idle else None
            if (
                record is not None
                and now < record.expires_at
                and now - record.returned_at < self._check_after
            ):
                record.borrowed_at = now
                self._borrowed[id(record.conn)] = record
                return record.conn
        return self._getconn_slow(record, now, self._timeout if timeout is None else timeout)

    @contextmanager
    def connection(self, timeout: float | None = None) -> Iterator[Any]:
        """Borrow a connection for a ``with`` block and give it back at its end."""
        conn = self.getconn(timeout)
        try:
            yield conn
        finally:
            self.putconn(conn)

    def _getconn_slow(self, record: _ConnectionRecord | None, now: float, timeout: float) -> Any:
        """Check the connection in hand, or get another, until a usable one is borrowed."""
        deadline = now + timeout
        while True:
            if record is not None and self._is_usable(record, now):
                return self._mark_borrowed(record, now)
            record = self._pop_idle_or_wait(deadline, timeout)
            now = monotonic()

    def _is_usable(self, record: _ConnectionRecord, now: float) -> bool:
        """Close the connection and return False if it expired or fails its check."""
        if now >= record.expires_at:
            self._discard(record)
            return False
        if now - record.returned_at < self._check_after:
            return True
        try:
            self._driver.ping(record.conn)
        except Exception as error:  # noqa: BLE001 - any driver error means the connection is gone
            logger.warning(
                "pool %r: dropping a connection (%.0f s old) that failed its check "
                "after %.1f s idle: %s",
                self.name,
                now - record.created_at,
                now - record.returned_at,
                error,
            )
            self._discard(record, self._CONNECTIONS_LOST)
            return False
        return True

    def _mark_borrowed(self, record: _ConnectionRecord, now: float) -> Any:
        """Record the checkout of a connection in hand and return the connection."""
        with self._lock:
            record.borrowed_at = now
            self._borrowed[id(record.conn)] = record
        return record.conn

    def _pop_idle_or_wait(self, deadline: float, timeout: float) -> _ConnectionRecord:
        """Take the top idle connection, or queue up and wait for one until the deadline."""
        now = monotonic()
        with self._lock:
            if self._closed:
                self._stats[self._REQUESTS_ERRORS] += 1
                raise self._closed_error()
            if self._idle:
                return self._idle.pop()
            waiter = self._enqueue_waiter()
        return self._wait(waiter, now, deadline, timeout)

    def _enqueue_waiter(self) -> _Waiter:
        """Queue a new waiter, or refuse it if max_waiting already wait (under the lock)."""
        if self._max_waiting and len(self._waiting) >= self._max_waiting:
            self._stats[self._REQUESTS_ERRORS] += 1
            self._stats[self._REQUESTS_TOO_MANY] += 1
            raise TooManyRequests(
                f"pool {self.name!r}: too many requests waiting ({len(self._waiting)} waiting, "
                f"max_waiting={self._max_waiting}, {self.in_use()}/{self.size()} in use)"
            )
        waiter = _Waiter()
        self._waiting.append(waiter)
        self._stats[self._REQUESTS_QUEUED] += 1
        self._grow_for_waiters()
        return waiter

    def _wait(
        self, waiter: _Waiter, since: float, deadline: float, timeout: float
    ) -> _ConnectionRecord:
        """Wait for a hand-off; raise the waiter's error, or PoolTimeout at the deadline."""
        waiter.wait(deadline - since)
        waited = monotonic() - since
        with self._lock:
            self._stats[self._REQUESTS_WAIT_MS] += waited * 1000.0
            if waiter.record is None and waiter.error is None:
                self._waiting.remove(waiter)
                self._stats[self._REQUESTS_TIMEOUTS] += 1
                waiter.error = self._timeout_error(timeout)
            if waiter.error is not None:
                self._stats[self._REQUESTS_ERRORS] += 1
        if waiter.error is not None:
            raise waiter.error
        return waiter.record

    # Returning

    def putconn(self, conn: Any) -> None:
        """Give back a borrowed connection: reuse it, reset it, or close it."""
        if self._pid != _pid:
            # A forked child must not close the parent's connection (that would end the
            # parent's session), nor drop the last reference to it (same, on collection):
            # it stays in this inherited pool's borrowed map.
            return
        status = self._driver.status(conn)
        now = monotonic()
        with self._lock:
            record = self._borrowed.pop(id(conn), None)
            if record is None and not self._closed:
                raise self._not_lent_error(conn)
            if record is not None:
                self._stats[self._USAGE_MS] += (now - record.borrowed_at) * 1000.0
                if (
                    status == _IDLE
                    and now < record.expires_at
                    and not self._closed
                    and not self._discard_all
                ):
                    self._return_to_waiter_or_idle(record, now)
                    return
        self._putconn_slow(conn, record, status, now)

    def _putconn_slow(
        self, conn: Any, record: _ConnectionRecord | None, status: TxStatus, now: float
    ) -> None:
        """Close, reset or retire a connection that cannot go straight back."""
        if record is None:
            self._driver.close(conn)  # returned to a closed pool, which forgot it
        elif self._closed or now >= record.expires_at:
            self._discard(record)
        elif not self._reset(conn, status):
            self._discard(record, self._RETURNS_BAD)
        else:
            self._give_back(record)

    def _reset(self, conn: Any, status: TxStatus) -> bool:
        """Roll back and/or discard session state; return False if the connection is bad."""
        if status == _UNKNOWN:
            logger.warning("pool %r: closing a connection returned broken", self.name)
            return False
        try:
            if status != _IDLE:
                self._driver.rollback(conn)
            if self._discard_all:
                self._driver.discard_all(conn)
        except Exception as error:  # noqa: BLE001 - any driver error means the connection is bad
            logger.warning("pool %r: closing a connection that failed reset: %s", self.name, error)
            return False
        return True

    def _give_back(self, record: _ConnectionRecord) -> None:
        """Put a reset connection back, or close it if the pool closed meanwhile."""
        now = monotonic()
        with self._lock:
            if not self._closed:
                self._return_to_waiter_or_idle(record, now)
                return
        self._discard(record)

    def _return_to_waiter_or_idle(self, record: _ConnectionRecord, now: float) -> None:
        """Hand a connection to the oldest waiter, else push it on the idle stack (under lock)."""
        record.returned_at = now
        if self._waiting:
            self._waiting.popleft().set(record)
            return
        self._idle.append(record)
        # Cheap look at the bottom of the stack; the worker does the closing.
        if self._nconns > self._min_size and self._idle[0].returned_at < now - self._max_idle:
            self._request_maintenance()

    def _discard(self, record: _ConnectionRecord, counter: str | None = None) -> None:
        """Close a connection in hand, then free its slot (maybe for a replacement)."""
        # Closed before the slot is freed, so the server never sees more than max_size.
        self._driver.close(record.conn)
        with self._lock:
            self._nconns -= 1
            self._stats[self._CONNECTIONS_CLOSED] += 1
            if counter is not None:
                self._stats[counter] += 1
            self._maybe_grow()

    # Growing and shrinking (decisions under the lock, work in the worker thread)

    def _start_worker(self) -> None:
        """Start the worker on first use and ask it to open min_size connections."""
        with self._lock:
            if self._worker is not None or self._closed:
                return
            worker = self._worker = threading.Thread(
                target=_run_worker,
                args=(weakref.ref(self), self._tasks, self._tick),
                name=f"django_pool[{self.name}]",
                daemon=True,
            )
            self._maybe_grow()
        worker.start()

    def _maybe_grow(self) -> None:
        """Request connections for waiters and up to min_size (under the lock)."""
        if self._closed:
            return
        self._grow_for_waiters()
        missing = min(self._min_size - self._nconns - self._connecting, self._room())
        for _ in range(missing):
            self._request_connection()

    def _grow_for_waiters(self) -> None:
        """Request one connection if waiters outnumber connections on their way (under the lock)."""
        # One per waiter not already covered, and the worker opens them one at a time,
        # giving up on those nobody waits for any more: a burst of 50 borrowers is served
        # by returns and a few new connections, not by 50 connects.
        if len(self._waiting) > self._connecting and self._room() > 0:
            self._request_connection()

    def _room(self) -> int:
        return self._max_size - self._nconns - self._connecting

    def _request_connection(self) -> None:
        self._connecting += 1
        self._tasks.put(ConnectionPool._add_connection)

    def _request_maintenance(self) -> None:
        if not self._maintenance_requested:
            self._maintenance_requested = True
            self._tasks.put(ConnectionPool._maintain)

    def _add_connection(self) -> None:
        """Open one connection for the oldest waiter or the idle stack (worker thread)."""
        with self._lock:
            if self._closed or not (self._waiting or self._nconns < self._min_size):
                self._connecting -= 1
                return
        started = monotonic()
        try:
            conn = self._connect()
        except Exception as error:  # noqa: BLE001 - the driver's error goes to a waiter
            self._fail_connect(error)
        else:
            self._add_record(conn, started)

    def _add_record(self, conn: Any, started: float) -> None:
        """Take a new connection into the pool, or close it if the pool closed meanwhile."""
        now = monotonic()
        lifetime = self.config.max_lifetime * (1.0 - random.uniform(0.0, 0.1))
        record = _ConnectionRecord(conn, now, now + lifetime)
        with self._lock:
            self._connecting -= 1
            self._stats[self._CONNECTIONS_NUM] += 1
            self._stats[self._CONNECTIONS_MS] += (now - started) * 1000.0
            if not self._closed:
                self._nconns += 1
                self._return_to_waiter_or_idle(record, now)
                return
            self._stats[self._CONNECTIONS_CLOSED] += 1
        self._driver.close(conn)

    def _fail_connect(self, error: Exception) -> None:
        """Count a failed connect and fail the oldest waiter with it rather than a timeout."""
        logger.warning("pool %r: connection failed: %s", self.name, error)
        with self._lock:
            self._connecting -= 1
            self._stats[self._CONNECTIONS_ERRORS] += 1
            if self._waiting:
                self._waiting.popleft().fail(error)
            # Not _maybe_grow: refilling min_size right away would retry a dead server in a
            # tight loop; the worker's tick retries it.
            self._grow_for_waiters()

    def _maintain(self) -> None:
        """Close expired and surplus idle connections, then refill to min_size (worker thread)."""
        now = monotonic()
        with self._lock:
            self._maintenance_requested = False
            doomed = [] if self._closed else self._pop_idle_to_close(now)
            self._maybe_grow()
        for record in doomed:
            self._discard(record)

    def _pop_idle_to_close(self, now: float) -> list[_ConnectionRecord]:
        """Take out idle connections past their lifetime or above min_size for too long."""
        doomed = [record for record in self._idle if now >= record.expires_at]
        if doomed:
            self._idle = [record for record in self._idle if now < record.expires_at]
        surplus = self._nconns - len(doomed) - self._min_size
        stale = now - self._max_idle
        while surplus > 0 and self._idle and self._idle[0].returned_at < stale:
            doomed.append(self._idle.pop(0))
            surplus -= 1
        return doomed

    # Closing

    def close(self, timeout: float = 5.0) -> None:
        """Fail waiters, close idle connections, stop the worker; borrowed ones close on return."""
        if self._pid != _pid:
            return  # an inherited pool: its connections are the parent's to close
        with self._lock:
            if self._closed:
                return
            self._closed = True
            idle, self._idle = self._idle, []
            self._nconns -= len(idle)
            self._stats[self._CONNECTIONS_CLOSED] += len(idle)
            while self._waiting:
                self._waiting.popleft().fail(self._closed_error())
        self._stop_worker()
        for record in idle:
            self._driver.close(record.conn)
        if self._worker is not None and self._worker.is_alive():
            self._worker.join(timeout)

    @property
    def closed(self) -> bool:
        """Return True once ``close()`` was called."""
        return self._closed

    # Status

    def size(self) -> int:
        """Return the number of connections open or being opened."""
        return self._nconns + self._connecting

    def available(self) -> int:
        """Return the number of idle connections."""
        return len(self._idle)

    def in_use(self) -> int:
        """Return the number of open connections that are not idle."""
        return self._nconns - len(self._idle)

    def waiting(self) -> int:
        """Return the number of borrowers waiting for a connection."""
        return len(self._waiting)

    def stats(self) -> dict[str, Any]:
        """Return a fresh JSON-ready dict of gauges and counters (times in integer ms)."""
        with self._lock:
            snapshot = {
                "name": self.name,
                "pool_min": self._min_size,
                "pool_max": self._max_size,
                "pool_size": self.size(),
                "pool_available": self.available(),
                "pool_in_use": self.in_use(),
                "requests_waiting": self.waiting(),
            }
            for key in self._COUNTERS:
                snapshot[key] = int(self._stats[key])
        return snapshot

    # Errors

    def _closed_error(self) -> PoolClosed:
        return PoolClosed(f"pool {self.name!r} is closed")

    def _timeout_error(self, timeout: float) -> PoolTimeout:
        return PoolTimeout(
            f"pool {self.name!r}: couldn't get a connection after {timeout:.2f} s "
            f"({self.in_use()}/{self.size()} in use, {len(self._waiting)} waiting, "
            f"max_size={self._max_size})"
        )

    def _not_lent_error(self, conn: Any) -> PoolError:
        return PoolError(
            f"pool {self.name!r}: putconn() got a {type(conn).__name__} this pool did not lend, "
            "or one already returned"
        )

    def _other_process_error(self) -> PoolError:
        return PoolError(
            f"pool {self.name!r} belongs to process {self._pid}, not to this process "
            f"({os.getpid()}): a forked child must create its own pool"
        )
