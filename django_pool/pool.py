"""A thread-safe pool of DB-API connections: borrow, return, check, grow and shrink.

No Django here: the pool gets a ``connect()`` callable that opens one fully set-up
connection, and a driver adapter (``drivers.Driver``) for the few things it does to one.

Every physical connection has one ``_ConnectionRecord``, whose ``state`` (``State``) says
where it is: idle (on the idle stack), lent (in the lent map), parked (in the parked map,
under the ticket of the wrapper that parked it), or in the hands of the one thread that is
placing, checking, resetting or closing it. A claim moves a record from one state to another
by taking it out of its container, in one step under the pool's lock, or, for the wrapper
holding a parking ticket, in one atomic ``dict.pop`` without it: whoever takes it out owns it,
and a stale reference (an old ticket) simply finds nothing. ``_records`` holds every open
connection, whatever its state, for a forked child to detach; the counts are derived from the
containers. Decisions (which place, how many to open) are taken under one lock per pool;
connecting, pinging, rolling back, closing and waiting happen outside it. New connections are
opened, and idle, expired, orphaned and leaked ones looked after, by the pool's own worker
thread (``background.py``); ``on_event`` runs in the process's events thread, never in the
worker.

Around the pool: ``PoolStats`` (``stats.py``) keeps the counters, histograms and the last
hour, updated under the lock borrowing and returning already hold; ``Backoff``
(``backoff.py``) keeps the down state of the server and when to try it again.
"""

from __future__ import annotations

import itertools
import os
import random
import socket
import sys
import threading
import traceback
import weakref
from bisect import bisect_left
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from time import monotonic, perf_counter, time
from typing import Any

from . import background
from .backoff import Backoff
from .drivers import Driver, TxStatus
from .errors import PoolClosed, PoolError, PoolTimeout, ServerUnavailable, TooManyRequests
from .logs import PoolLog, Stack, describe
from .options import PoolConfig
from .stats import BOUNDS_MS, PoolStats

_TX_IDLE = TxStatus.IDLE
_TX_ACTIVE = TxStatus.ACTIVE
_TX_UNKNOWN = TxStatus.UNKNOWN


class State:
    """Where a connection is. A record is in exactly one state; the containers agree."""

    OPENING = "opening"  # connect() returned: being taken in, then placed (idle or to a waiter)
    IDLE = "idle"  # on the idle stack
    LENT = "lent"  # borrowed, in the lent map
    PARKED = "parked"  # kept for the wrapper that parked it, in the parked map by its ticket
    CHECKING = "checking"  # in a borrower's hands (or handed to a waiter), checked before use
    RESETTING = "resetting"  # in a thread's hands, rolled back and set back to its baseline
    CLOSING = "closing"  # in a thread's hands, being closed
    CLOSED = "closed"  # closed and forgotten


# The states as module globals, for the fast paths: one look-up instead of two.
_OPENING = State.OPENING
_IDLE = State.IDLE
_LENT = State.LENT
_PARKED = State.PARKED
_CHECKING = State.CHECKING
_RESETTING = State.RESETTING
_CLOSING = State.CLOSING
_CLOSED = State.CLOSED

# Parking tickets, unique in the process: a ticket names one parking of one connection by one
# wrapper, so a wrapper that parked on a pool since closed, or whose connection another
# borrower took (and maybe parked again), finds nothing under its old ticket.
_next_ticket = itertools.count(1).__next__

# Counter names the fast path uses, as module globals: one look-up instead of two.
_REQUESTS_NUM = PoolStats.REQUESTS_NUM
_REQUESTS_ERRORS = PoolStats.REQUESTS_ERRORS
_DJANGO_REQUESTS = PoolStats.DJANGO_REQUESTS
_REQUEST_BORROWS = PoolStats.REQUEST_BORROWS

# A pool's maintenance round (closing idle and expired connections, reclaiming those of
# exited threads, reporting leaks) comes at least this often, and at most this often so a
# tiny max_idle in tests does not turn the worker into a busy loop.
_MAX_TICK = 5.0
_MIN_TICK = 0.01

_WorkerThread = background.WorkerThread

# The options a snapshot reports, under their OPTIONS["pool"] names.
_CONFIG_KEYS = (
    "min_size",
    "max_size",
    "timeout",
    "max_waiting",
    "max_lifetime",
    "max_idle",
    "check",
    "reset",
    "release",
    "park",
    "leak_timeout",
)

# Fairness bends this much: while borrowers wait, a returned connection goes to the idle stack
# and the oldest waiter is woken to take it, unless the thread that returned it asks again
# within _AGAIN_S (a loop of borrows: no thread switch). Once the oldest waiter has waited
# _KEEP_FOR_S, it is handed to that waiter. A thread that comes back later (a web request's
# next one) queues like anybody else.
_KEEP_FOR_S = 0.001
_AGAIN_S = 0.00005
# A waiter also looks at the idle stack this often by itself, should a wake-up be missed.
_LOOK_S = 0.128

# os.getpid() is a system call; the fast path compares with this copy, kept current in
# forked children by register_at_fork.
_pid = os.getpid()

# Every pool made in this process (or inherited from its parent), for the fork hook.
_pools: weakref.WeakSet[ConnectionPool] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    global _pid
    _pid = os.getpid()
    for pool in list(_pools):
        pool._detach_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _borrower_stack() -> Stack:
    """Return the stack of getconn()'s caller (source lines are read only if it is logged)."""
    # Raw tuples: a few microseconds, where traceback.format_stack() takes tens.
    frames = traceback.walk_stack(sys._getframe(2))
    stack = [(frame.f_code.co_filename, line, frame.f_code.co_name, None) for frame, line in frames]
    stack.reverse()
    return stack


def _lent_now(lent: dict[int, _ConnectionRecord]) -> list[_ConnectionRecord]:
    """Return the lent records, copied in one step (take_back() adds to the map without the
    pool's lock: a loop over the map itself could see it change size)."""
    return list(lent.values())


# A borrow held past leak_timeout: the borrowing thread's name, seconds held, where borrowed.
_Leak = tuple[str, float, Stack | None]


class _ConnectionRecord:
    """One physical connection, its state, its times (monotonic seconds) and its checkout."""

    __slots__ = (
        "conn",
        "key",
        "baseline",
        "state",
        "created_at",
        "expires_at",
        "checked_at",
        "returned_at",
        "borrowed_at",
        "borrower",
        "stack",
        "shared",
        "leak_reported",
        "taken_back",
        "kept_for",
    )

    def __init__(
        self, conn: Any, baseline: tuple | None, created_at: float, expires_at: float
    ) -> None:
        self.conn = conn
        self.key = id(conn)  # in _records and _lent
        self.baseline = baseline  # the session state to restore on return
        self.state = _OPENING
        self.created_at = created_at
        self.expires_at = expires_at
        self.checked_at = created_at  # last known to work: opened or pinged
        self.returned_at = created_at
        self.borrowed_at = created_at
        # The checkout: the thread that holds it (its borrower while lent, the thread that
        # parked it while parked; None otherwise), from where it was borrowed (only with
        # leak_timeout), and whether other threads use it too (then it is never reclaimed).
        self.borrower: threading.Thread | None = None
        self.stack: Stack | None = None
        self.shared = False
        self.leak_reported: float | None = None  # borrowed_at of the borrow reported leaked
        # Lent by a take_back(), which takes no lock: its borrow is counted under the lock at
        # its return (or when reclaimed).
        self.taken_back = False
        # On the idle stack while borrowers wait: the thread that returned it, which may take
        # it straight back for _AGAIN_S (see _return_to_waiter_or_idle); else only waiters.
        self.kept_for: threading.Thread | None = None


class _Waiter:
    """A borrower queued for the next connection returned or created."""

    __slots__ = ("_ready", "_woken", "record", "error", "since")

    def __init__(self, since: float) -> None:
        self.since = since  # monotonic time it queued
        # A lock used as an event: cheaper than threading.Event, which has a Condition and a
        # lock of its own. Released once per wake-up (_woken says so, under the pool lock).
        self._ready = threading.Lock()
        self._ready.acquire()
        self._woken = False
        self.record: _ConnectionRecord | None = None
        self.error: BaseException | None = None

    def wait(self, timeout: float) -> None:
        """Block until woken (served, failed or nudged), or ``timeout`` seconds have passed."""
        self._ready.acquire(timeout=max(timeout, 0.0))

    def set(self, record: _ConnectionRecord) -> None:
        """Hand the waiter a connection (under the pool lock)."""
        self.record = record
        self._wake()

    def fail(self, error: BaseException) -> None:
        """Make the waiter raise ``error`` (under the pool lock)."""
        self.error = error
        self._wake()

    def nudge(self) -> None:
        """Wake the waiter to look at the idle stack (under the pool lock)."""
        self._wake()

    def _wake(self) -> None:
        if not self._woken:
            self._woken = True
            self._ready.release()

    def rearm(self) -> None:
        """Make the next wait block again, after a nudge (under the pool lock)."""
        if self._woken:
            # Taken back if the wait timed out before the wake-up came; else already taken.
            self._ready.acquire(blocking=False)
            self._woken = False


class ConnectionPool:
    """A fixed-capacity, thread-safe pool of connections made by ``connect()``."""

    # Slots keep attribute reads on the borrow/return fast path quick: past 30 attributes
    # CPython stops sharing an instance dict's keys, and every read gets slower.
    __slots__ = (
        "name",
        "config",
        "_connect",
        "_driver",
        "_label",
        "_server",
        "_pid",
        "_min_size",
        "_max_size",
        "_timeout",
        "_max_waiting",
        "_max_idle",
        "_check_after",
        "_discard_all",
        "_leak_timeout",
        "_tick",
        "_lock",
        "_settled",
        "_idle",
        "_lent",
        "_parked",
        "_records",
        "_waiting",
        "_requested",
        "_connecting",
        "_connect_started",
        "_closed",
        "_started",
        "_maintenance_requested",
        "_due",
        "_suspect_before",
        "_recycled_at",
        "_backoff",
        "_worker",
        "_stats",
        "_counts",
        "_waits",
        "_wait_counts",
        "_holds",
        "_next_sample",
        "_on_event",
        "_log",
        "_clock",
        "_current_thread",
        "__weakref__",
    )

    # A borrow that waited this long is logged (INFO).
    _SLOW_WAIT_MS = 100.0

    def __init__(
        self,
        connect: Callable[[], Any],
        config: PoolConfig,
        driver: Driver,
        *,
        server: str = "",
        on_event: Callable[[str, dict[str, Any]], None] | None = None,
        clock: Callable[[], float] | None = None,
        current_thread: Callable[[], Any] | None = None,
        worker: Callable[[ConnectionPool], background.Worker] | None = None,
    ) -> None:
        # clock, current_thread and worker are for tests that play several threads and move
        # time on one thread (a state machine): a monotonic clock, the borrowing thread (its
        # name and is_alive()), and what runs the pool's connects and maintenance rounds.
        self._clock = monotonic if clock is None else clock
        self._current_thread = (
            threading.current_thread if current_thread is None else current_thread
        )
        self.name = config.name or "pool"
        self.config = config
        self._connect = connect
        self._driver = driver
        self._label = f"pool {self.name!r}" + (f" ({server})" if server else "")
        self._server = server
        self._pid = os.getpid()
        self._min_size = config.min_size
        self._max_size = config.max_size
        self._timeout = config.timeout
        self._max_waiting = config.max_waiting
        self._max_idle = config.max_idle
        check_after = config.check_after()
        self._check_after = float("inf") if check_after is None else check_after
        self._discard_all = config.reset == "discard"
        self._leak_timeout = config.leak_timeout
        shortest = min(config.max_idle, config.max_lifetime, config.leak_timeout or float("inf"))
        self._tick = min(max(shortest / 2, _MIN_TICK), _MAX_TICK)

        self._lock = threading.Lock()
        # Notified when the last connect under way ends, for close() to wait on.
        self._settled = threading.Condition(self._lock)
        # LIFO: the most recently returned connection is lent first, so under steady light
        # load the ones at the bottom stay untouched, pass max_idle and get closed, and the
        # pool shrinks after a spike. A FIFO would lend them in turn and keep every one of
        # them "recently used" forever.
        self._idle: list[_ConnectionRecord] = []
        # Lent connections by id() of the connection. take_back() adds to it without the lock:
        # loops go over a copy (_lent_now()).
        self._lent: dict[int, _ConnectionRecord] = {}
        # Connections parked at a request's end (see park()), by ticket. Taking one out is the
        # claim: for the wrapper holding the ticket without the lock (take_back(), unpark()),
        # under it for a borrower who found none idle, or for the pool's maintenance.
        self._parked: dict[int, _ConnectionRecord] = {}
        # Every open connection by id(), whatever its state, from the moment connect() returns
        # until it is closed: its size is the number of connections the server sees.
        self._records: dict[int, _ConnectionRecord] = {}
        self._waiting: deque[_Waiter] = deque()
        self._requested = 0  # asked of the worker, not yet opened or given up
        self._connecting = 0  # of those, the connect under way (0 or 1: one worker)
        self._connect_started: float | None = None  # when the connect under way began
        self._closed = False
        self._started = False
        self._maintenance_requested = False
        self._due = float("inf")  # the next maintenance round (monotonic), read by the worker
        # A connection last known to work before this moment is checked on its next
        # borrow: one turned out dead, so the server may have restarted under them all.
        self._suspect_before = float("-inf")
        # recycle() replaces every connection open at this moment, and those whose connect
        # began before it (psycopg_pool's drain() keeps the like).
        self._recycled_at = float("-inf")
        self._backoff = Backoff()
        self._worker = (background.Worker if worker is None else worker)(self)
        self._stats = PoolStats(clock=self._clock, wall=time)
        # The fast path's direct references into the stats.
        self._counts = self._stats.counts
        self._waits = self._stats.waits
        self._wait_counts = self._waits.counts  # for the fast path's zero waits
        self._holds = self._stats.holds
        self._next_sample = self._stats.history.next_due
        self._on_event = on_event
        self._log = PoolLog(self._label)
        _pools.add(self)

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{self.in_use()}/{self.size()} in use"
        return f"<{type(self).__name__} {self.name!r} {state}>"

    # Borrowing

    def getconn(self, timeout: float | None = None) -> Any:
        """Borrow a connection, waiting up to ``timeout`` seconds (default: config.timeout)."""
        if self._pid != _pid:
            raise self._other_process_error()
        if not self._started:
            self._start()
        # Read, then called: self._clock() would be a slow method look-up on every borrow.
        current_thread, clock = self._current_thread, self._clock
        borrower = current_thread()
        if borrower.__class__ is _WorkerThread:
            raise self._worker_thread_error()
        stack = None if self._leak_timeout is None else _borrower_stack()
        now = clock()
        lock = self._lock
        lock.acquire()  # not ``with``: that costs twice as much, on every borrow and return
        try:
            if self._closed:
                self._counts[_REQUESTS_ERRORS] += 1
                raise self._closed_error()
            if now >= self._next_sample:
                self._sample(now)
            self._counts[_REQUESTS_NUM] += 1
            idle = self._idle
            # While borrowers wait, the slow path says who may take it (_may_take_top()).
            record = idle.pop() if idle and not self._waiting else None
            if record is not None:
                if (  # _is_usable(), inlined: not expired, not due its check
                    now < record.expires_at
                    and now - record.returned_at < self._check_after
                    and record.checked_at > self._suspect_before
                ):
                    # _mark_borrowed(), inlined, with a zero wait and _note_in_use().
                    record.state = _LENT
                    record.borrowed_at = now
                    record.borrower = borrower
                    record.stack = stack
                    self._lent[record.key] = record
                    self._wait_counts[0] += 1
                    in_use = len(self._records) - len(idle) - len(self._parked)
                    if in_use > self._stats.peak_in_use:
                        self._stats.peak_in_use = in_use
                    return record.conn
                record.state = _CHECKING  # to check or replace, outside the lock
        finally:
            lock.release()
        timeout = self._timeout if timeout is None else timeout
        return self._getconn_slow(record, now, timeout, borrower, stack)

    @contextmanager
    def connection(self, timeout: float | None = None) -> Iterator[Any]:
        """Borrow a connection for a ``with`` block and give it back at its end."""
        conn = self.getconn(timeout)
        try:
            yield conn
        finally:
            self.putconn(conn)

    def set_shared(self, conn: Any, shared: bool) -> None:
        """Say whether threads besides its borrower use ``conn`` (then it is never reclaimed).

        Django's wrappers share a connection between threads with ``inc_thread_sharing()``
        (``LiveServerTestCase`` does): the borrowing thread may end while another still uses
        the connection and gives it back later.
        """
        with self._lock:
            record = self._lent.get(id(conn))
            if record is not None:
                record.shared = shared

    def in_transaction(self, conn: Any) -> bool:
        """Return True if ``conn`` has a transaction open, or a query running (no round trip).

        False for a broken connection: giving it back is how it gets replaced.
        """
        return self._driver.status(conn) not in (_TX_IDLE, _TX_UNKNOWN)

    def note_request(self, borrows: int) -> None:
        """Count a Django request that ended having borrowed ``borrows`` times."""
        with self._lock:
            self._count_request(borrows)

    def describe_lent(self, conn: Any) -> dict[str, float] | None:
        """Return the times (monotonic seconds) of a lent ``conn``, or None if not lent.

        ``created_at``: opened; ``checked_at``: last known to work (opened or pinged). Read by
        the toolbar panel's borrow records, never on the fast path.
        """
        with self._lock:
            record = self._lent.get(id(conn))
            if record is None:
                return None
            return {
                "created_at": record.created_at,
                "checked_at": record.checked_at,
            }

    def describe_return(self, conn: Any) -> dict[str, bool]:
        """Say what giving back ``conn`` now will do, with no round trip.

        ``rollback``: a transaction is open and will be rolled back; ``broken``: the connection
        is unusable and will be closed; ``restore``: session settings the server reports
        changed and will be set back (known only outside a transaction).
        """
        status = self._driver.status(conn)
        with self._lock:
            record = self._lent.get(id(conn))
        restore = (
            status == _TX_IDLE
            and record is not None
            and self._driver.session_state(conn) != record.baseline
        )
        return {
            "rollback": status not in (_TX_IDLE, _TX_UNKNOWN),
            "broken": status == _TX_UNKNOWN,
            "restore": restore,
        }

    def _getconn_slow(
        self,
        record: _ConnectionRecord | None,
        now: float,
        timeout: float,
        borrower: threading.Thread,
        stack: Stack | None,
    ) -> Any:
        """Check the connection in hand, or get another, until a usable one is borrowed."""
        started = now
        deadline = now + timeout
        while True:
            if record is not None and self._is_usable(record, now):
                lent = self._clock()
                if self._mark_borrowed(record, lent, borrower, stack, (lent - started) * 1000.0):
                    break
                self._discard(record)  # recycled, or the pool closed, while it was checked
            record = self._pop_idle_or_wait(deadline, timeout, borrower)
            now = self._clock()
        if lent - started >= self._SLOW_WAIT_MS / 1000.0:
            self._log.slow_wait(lent - started, self.in_use(), self._max_size, self.waiting())
        return record.conn

    def _is_usable(self, record: _ConnectionRecord, now: float) -> bool:
        """Close the connection in hand and return False if it expired or fails its check."""
        if record.state is _RESETTING:  # from another thread's parking: reset as on any return
            if not self._reset(record, self._driver.status(record.conn)):
                self._discard(record, PoolStats.RETURNS_BAD)
                return False
            record.state = _CHECKING
        if now >= record.expires_at:
            self._discard(record)
            return False
        return self._passes_check(record, now)

    def _passes_check(self, record: _ConnectionRecord, now: float) -> bool:
        """Ping the connection in hand if the check rule says so; close it if that fails."""
        if (
            now - record.returned_at < self._check_after
            and record.checked_at > self._suspect_before
        ):
            return True
        try:
            self._driver.ping(record.conn)
        except Exception as error:  # noqa: BLE001 - any driver error means the connection is gone
            self._log.check_failed(now - record.created_at, now - record.returned_at, error)
            self._distrust_older()
            self._discard(record, PoolStats.CONNECTIONS_LOST)
            self._emit("connection_lost", {"reason": "check"})
            return False
        record.checked_at = now
        return True

    def _mark_borrowed(
        self,
        record: _ConnectionRecord,
        now: float,
        borrower: threading.Thread,
        stack: Stack | None,
        waited_ms: float,
    ) -> bool:
        """Lend a connection in hand and count how long its borrower waited.

        Return False, and leave it to be closed, if it was recycled or the pool closed
        while it was in hand.
        """
        with self._lock:
            if now >= record.expires_at or self._closed:
                record.state = _CLOSING
                return False
            if now >= self._next_sample:
                self._sample(now)
            record.state = _LENT
            record.borrowed_at = now
            record.borrower = borrower
            record.stack = stack
            self._lent[record.key] = record
            self._waits.add(waited_ms)
            self._note_in_use()
            return True

    def _note_in_use(self) -> None:
        """Keep the peak of connections in use since the last history sample (under the lock)."""
        in_use = len(self._records) - len(self._idle) - len(self._parked)
        if in_use > self._stats.peak_in_use:
            self._stats.peak_in_use = in_use

    def _pop_idle_or_wait(
        self, deadline: float, timeout: float, borrower: threading.Thread
    ) -> _ConnectionRecord:
        """Take the top idle connection, or queue up and wait for one until the deadline."""
        now = self._clock()
        with self._lock:
            if self._closed:
                self._counts[_REQUESTS_ERRORS] += 1
                raise self._closed_error()
            if self._idle and (not self._waiting or self._may_take_top(borrower, now)):
                record = self._take_idle()
            else:
                record = self._steal_parked()
            if record is not None:
                self._note_in_use()
                return record
            if self._backoff.down:
                self._backoff.hurry(now)
                if self._nothing_can_come(now):
                    # Waiting would only run out the timeout.
                    self._counts[_REQUESTS_ERRORS] += 1
                    raise self._unavailable_error(now)
            refusal = self._refuse_if_queue_full()
            if refusal is None:
                waiter = self._enqueue_waiter(now)
                orphans = self._pop_orphans()
        if refusal is not None:
            self._report_exhausted(*refusal)
            raise refusal[0]
        self._reclaim(orphans)
        return self._wait(waiter, now, deadline, timeout)

    def _take_idle(self) -> _ConnectionRecord:
        """Claim the top idle connection, to check before it is lent (under the lock)."""
        record = self._idle.pop()
        record.state = _CHECKING
        return record

    def _may_take_top(self, borrower: threading.Thread, now: float) -> bool:
        """Whether ``borrower`` may take the top idle connection while others wait (under lock).

        Only the thread that returned it, asking again at once: the oldest waiter is woken to
        take it otherwise.
        """
        top = self._idle[-1]
        return top.kept_for is borrower and now - top.returned_at < _AGAIN_S

    def _nothing_can_come(self, now: float) -> bool:
        """Return whether no connection can reach a waiter: none open, no connect to come."""
        # Anything open (borrowed, or being checked or reset) may come back; one connect
        # under way or due may succeed. Only when neither holds is the server's error final.
        return not (self._records or self._connecting or self._backoff.due(now))

    def _refuse_if_queue_full(self) -> tuple[TooManyRequests, dict[str, Any]] | None:
        """Count and return the refusal of a waiter past max_waiting, if full (under the lock)."""
        if not self._max_waiting or len(self._waiting) < self._max_waiting:
            return None
        self._counts[_REQUESTS_ERRORS] += 1
        self._counts[PoolStats.REQUESTS_TOO_MANY] += 1
        error = TooManyRequests(
            f"{self._label}: too many requests waiting ({len(self._waiting)} waiting, "
            f"max_waiting={self._max_waiting}, {self.in_use()}/{self.size()} in use)"
        )
        return error, self._exhaustion("too_many")

    def _enqueue_waiter(self, now: float) -> _Waiter:
        """Queue a new waiter and have connections opened for it if needed (under the lock)."""
        waiter = _Waiter(now)
        self._waiting.append(waiter)
        self._counts[PoolStats.REQUESTS_QUEUED] += 1
        if len(self._waiting) > self._stats.peak_waiting:
            self._stats.peak_waiting = len(self._waiting)
        self._grow_for_waiters()
        return waiter

    def _wait(
        self, waiter: _Waiter, since: float, deadline: float, timeout: float
    ) -> _ConnectionRecord:
        """Wait for a hand-off; raise the waiter's error, or PoolTimeout at the deadline."""
        self._wait_for_hand_off(waiter, deadline)
        now = self._clock()
        exhausted = None
        with self._lock:
            if now >= self._next_sample:
                self._sample(now)
            self._counts[PoolStats.REQUESTS_WAIT_MS] += (now - since) * 1000.0
            if waiter.record is None and waiter.error is None:
                self._waiting.remove(waiter)
                if self._idle and self._waiting:  # it was nudged to take one: the next may
                    self._waiting[0].nudge()
                self._counts[PoolStats.REQUESTS_TIMEOUTS] += 1
                self._waits.add((now - (deadline - timeout)) * 1000.0)  # since getconn()
                waiter.error = self._timeout_error(timeout, now)
                exhausted = self._exhaustion("timeout")
            if waiter.error is not None:
                self._counts[_REQUESTS_ERRORS] += 1
        if exhausted is not None:
            self._report_exhausted(waiter.error, exhausted)
        if waiter.error is not None:
            raise waiter.error
        return waiter.record

    def _wait_for_hand_off(self, waiter: _Waiter, deadline: float) -> None:
        """Wait until served, failed or the deadline; look at the idle stack when nudged.

        A returned connection may go to the idle stack while waiters queue, and the oldest is
        nudged (see _return_to_waiter_or_idle): unless its borrower took it back first, the
        waiter takes it. Else it waits on, first in line.
        """
        # Counted down by the waits' own time, not read from the pool's clock again: the
        # caller reads that for the deadline anyway (and tests run it on a fake one).
        left = deadline - self._clock()
        while left > 0:
            started = perf_counter()
            waiter.wait(min(left, _LOOK_S))
            left -= perf_counter() - started
            with self._lock:
                if waiter.record is not None or waiter.error is not None:
                    return
                waiter.rearm()
                # First come, first served. Nothing is parked while borrowers wait: a borrower
                # takes a parked connection before it queues, and park() refuses while any do.
                if self._waiting[0] is not waiter or not self._idle:
                    continue
                self._waiting.popleft()
                waiter.record = self._take_idle()
                while self._idle and self._waiting:  # any more left there: to the next
                    self._waiting.popleft().set(self._take_idle())
                self._note_in_use()
                return

    def _exhaustion(self, error: str) -> dict[str, Any]:
        """Describe the pool for a borrower refused with ``error`` (under the lock)."""
        return {
            "error": error,
            "in_use": self.in_use(),
            "max_size": self._max_size,
            "waiting": len(self._waiting),
        }

    def _report_exhausted(self, error: PoolError, exhausted: dict[str, Any]) -> None:
        """Log a borrower's PoolTimeout or TooManyRequests and tell on_event (outside the lock)."""
        self._log.exhausted(exhausted["error"], error)
        self._emit("pool_exhausted", exhausted)

    # Returning

    def putconn(self, conn: Any, request_borrows: int = 0) -> None:
        """Give back a borrowed connection: reuse it, reset it, or close it.

        ``request_borrows``, if not 0, counts the Django request that ends with this return,
        under the same lock (see ``note_request()``).
        """
        if self._pid != _pid:
            # A forked child must not close the parent's connection (that would end the
            # parent's session); the fork hook has detached it, the parent returns it.
            return
        # The session state is read only when idle: a rollback may change it, and a broken
        # connection may not know it. Else this is the transaction status.
        state = self._driver.idle_session_state(conn)
        clock = self._clock  # read, then called: see getconn()
        now = clock()
        lock = self._lock
        lock.acquire()  # not ``with``: see getconn()
        try:
            if now >= self._next_sample:
                self._sample(now)
            if request_borrows:
                self._count_request(request_borrows)
            record = self._lent.pop(id(conn), None)
            if record is None:
                if not self._closed and state != _TX_UNKNOWN:
                    raise self._not_lent_error(conn)
            else:
                if record.taken_back:
                    self._count_take_back(record)
                held_ms = (now - record.borrowed_at) * 1000.0
                holds = self._holds  # self._holds.add(held_ms), inlined
                holds.counts[bisect_left(BOUNDS_MS, held_ms)] += 1
                holds.sum_ms += held_ms
                if (
                    state == record.baseline  # so the status is IDLE, too
                    and now < record.expires_at
                    and not self._closed
                    and not self._discard_all
                ):
                    self._return_to_waiter_or_idle(record, now)
                    return
                record.state = _RESETTING  # or closed, by _putconn_slow()
        finally:
            lock.release()
        status = _TX_IDLE if state.__class__ is tuple else state
        self._putconn_slow(conn, record, status, now)

    # Parking (HikariCP's ConcurrentBag, in Django's terms): at a request's end the wrapper keeps
    # a ticket for its connection, and its next request takes it straight back with it; a
    # borrower that finds no connection idle takes a parked one instead, reset as on any return.
    # Whoever takes a record out of _parked has claimed it: the ticket's holder without the
    # lock (dict.pop is atomic), anyone else under it.

    def park(self, conn: Any, request_borrows: int = 0) -> int | None:
        """At a request's end, keep ``conn`` for its borrower's next request; return a ticket.

        Parked only with no transaction open and nobody waiting; it stays as its borrower left
        it (session settings included) until another borrower takes it. Only the ticket takes
        it back (``take_back()``), once. Return None when it was given back as by
        ``putconn()`` instead: with borrowers waiting, the oldest gets it. ``request_borrows``
        counts the request that ends (see ``note_request()``).
        """
        # In a forked child the pool is closed: putconn() leaves the parent's connection alone.
        if self._driver.status(conn) != _TX_IDLE:
            self.putconn(conn, request_borrows)
            return None
        key = id(conn)
        clock = self._clock  # read, then called: see getconn()
        now = clock()
        lock = self._lock
        lock.acquire()  # not ``with``: see getconn()
        try:
            record = self._lent.pop(key, None)
            if (
                record is not None
                and not self._waiting
                and now < record.expires_at
                and not self._closed
                and not self._discard_all
            ):
                if now >= self._next_sample:
                    self._sample(now)
                # Inlined, once per request: _count_request(), _count_take_back() and
                # self._holds.add(held_ms).
                counts = self._counts
                if request_borrows:
                    counts[_DJANGO_REQUESTS] += 1
                    counts[_REQUEST_BORROWS] += request_borrows
                if record.taken_back:
                    record.taken_back = False
                    counts[_REQUESTS_NUM] += 1
                    self._wait_counts[0] += 1
                held_ms = (now - record.borrowed_at) * 1000.0
                holds = self._holds
                holds.counts[bisect_left(BOUNDS_MS, held_ms)] += 1
                holds.sum_ms += held_ms
                record.state = _PARKED
                record.returned_at = now
                ticket = _next_ticket()
                self._parked[ticket] = record
                return ticket
            if record is not None:
                self._lent[key] = record  # for putconn()
        finally:
            lock.release()
        self.putconn(conn, request_borrows)
        return None

    def take_back(self, ticket: int) -> Any | None:
        """Lend the connection parked under ``ticket`` again, to the wrapper that parked it.

        Return None if it is no longer parked there (another borrower took it, the pool
        closed or replaced it), or if it failed its check: then borrow with ``getconn()``.
        Like a borrow, it is checked first when ``check`` says so, and never lent expired.
        Its borrower stays the thread that parked it: a ticket is its wrapper's, and a
        wrapper its thread's.
        """
        # Without the lock: popping it is the claim, putting it in _lent lends it (both atomic
        # dict operations). The borrow is counted under the lock at its return (taken_back).
        record = self._parked.pop(ticket, None)
        if record is None:
            return None
        clock = self._clock  # read, then called: see getconn()
        now = clock()
        if (  # _is_usable(), inlined, as in getconn()
            now < record.expires_at
            and now - record.returned_at < self._check_after
            and record.checked_at > self._suspect_before
        ):
            record.state = _LENT
            record.borrowed_at = now
            if self._leak_timeout is not None:
                record.stack = _borrower_stack()
            record.taken_back = True
            lent = self._lent
            lent[record.key] = record
            # _note_in_use() without the lock, counting the lent ones only (those in a thread's
            # hands are few and brief): a store lost to a borrow at the same moment would only
            # lower one history point's peak.
            if len(lent) > self._stats.peak_in_use:
                self._stats.peak_in_use = len(lent)
            return record.conn
        record.state = _CHECKING
        return self._take_back_slow(record, now)

    def _take_back_slow(self, record: _ConnectionRecord, now: float) -> Any | None:
        """Check a claimed parked connection as a borrow would, then lend it or close it."""
        if now >= record.expires_at:
            self._discard(record)
            return None
        if not self._passes_check(record, now):
            return None
        stack = None if self._leak_timeout is None else _borrower_stack()
        if not self._mark_borrowed(record, self._clock(), record.borrower, stack, 0.0):
            self._discard(record)
            return None
        self._count(_REQUESTS_NUM)
        return record.conn

    def unpark(self, ticket: int) -> None:
        """Give the connection parked under ``ticket`` back for good, if it is still parked."""
        record = self._parked.pop(ticket, None)  # the claim, as in take_back()
        if record is not None:
            record.state = _RESETTING
            self._reset_and_give_back(record)

    def _count_request(self, borrows: int) -> None:
        """Count a Django request that borrowed ``borrows`` times (under the lock)."""
        self._counts[_DJANGO_REQUESTS] += 1
        self._counts[_REQUEST_BORROWS] += borrows

    def _count_take_back(self, record: _ConnectionRecord) -> None:
        """Count the borrow a take_back() made, lent at once (under the lock)."""
        record.taken_back = False
        self._counts[_REQUESTS_NUM] += 1
        self._wait_counts[0] += 1

    def _steal_parked(self) -> _ConnectionRecord | None:
        """Claim a parked connection for a borrower that found none idle (under the lock)."""
        try:
            _, record = self._parked.popitem()
        except KeyError:  # none parked, or its wrapper took the last one back meanwhile
            return None
        record.state = _RESETTING  # reset before it is lent (_is_usable)
        return record

    def _claim_stale_parked(
        self, now: float
    ) -> tuple[list[_ConnectionRecord], list[_ConnectionRecord]]:
        """Claim parked connections past their lifetime, and those whose thread exited or that
        were parked past max_idle (under the lock): the first to close, the others to reset.

        Reset, the others go back on the idle stack, where the usual rules close them.
        """
        stale_since = now - self._max_idle
        expired, stale = [], []
        for ticket, record in list(self._parked.items()):
            if now >= record.expires_at:
                claimed = expired
            elif record.returned_at < stale_since or not record.borrower.is_alive():
                claimed = stale
            else:
                continue
            if self._parked.pop(ticket, None) is not None:  # unless taken back meanwhile
                record.state = _CLOSING if claimed is expired else _RESETTING
                claimed.append(record)
        return expired, stale

    def _claim_idle_and_parked(self) -> list[_ConnectionRecord]:
        """Claim every idle and parked connection, to close them (under the lock)."""
        claimed, self._idle = self._idle, []
        while (record := self._steal_parked()) is not None:
            claimed.append(record)
        for record in claimed:
            record.state = _CLOSING
        return claimed

    def _putconn_slow(
        self, conn: Any, record: _ConnectionRecord | None, status: TxStatus, now: float
    ) -> None:
        """Close, reset or retire a connection that cannot go straight back."""
        if record is None:
            self._close_unknown(conn, status)
        elif self._closed or now >= record.expires_at:
            self._discard(record)
        elif not self._reset(record, status):
            self._discard(record, PoolStats.RETURNS_BAD)
            self._emit("connection_lost", {"reason": "broken"})
        else:
            self._give_back(record)

    def _close_unknown(self, conn: Any, status: TxStatus) -> None:
        """Close a connection returned that the pool no longer knows, quietly."""
        if status == _TX_UNKNOWN and not self._closed:
            # Already closed: reclaimed after its borrowing thread exited, while another
            # thread still had it. Nothing is lost by accepting it; the log says why.
            self._log.late_return()
        self._driver.close(conn)  # returned to a closed pool, which forgot it

    def _reset_and_give_back(self, record: _ConnectionRecord) -> None:
        """Reset a claimed connection and put it back, or close it if the reset fails."""
        if self._reset(record, self._driver.status(record.conn)):
            self._give_back(record)
        else:
            self._discard(record, PoolStats.RETURNS_BAD)

    def _reset(self, record: _ConnectionRecord, status: TxStatus) -> bool:
        """Roll back and/or discard or restore session state; return False if it failed."""
        if status == _TX_UNKNOWN:
            self._log.returned_broken()
            self._distrust_older()
            return False
        try:
            if status != _TX_IDLE:
                self._driver.rollback(record.conn)
            if self._discard_all:
                self._driver.discard_all(record.conn)
            self._restore_session(record)
        except Exception as error:  # noqa: BLE001 - any driver error means the connection is bad
            self._log.reset_failed(error)
            return False
        return True

    def _restore_session(self, record: _ConnectionRecord) -> None:
        """Set back the session parameters the borrower changed (one round trip, if any)."""
        if self._driver.session_state(record.conn) == record.baseline:
            return
        self._driver.restore_session(record.conn, record.baseline)
        self._count(PoolStats.SESSIONS_RESTORED)

    def _give_back(self, record: _ConnectionRecord) -> None:
        """Put a reset connection back, or close it if it was recycled or the pool closed."""
        now = self._clock()
        with self._lock:
            if not self._closed and now < record.expires_at:
                self._return_to_waiter_or_idle(record, now)
                return
            record.state = _CLOSING
        self._discard(record)

    def _return_to_waiter_or_idle(
        self, record: _ConnectionRecord, now: float, returned: bool = True
    ) -> None:
        """Hand a connection to the oldest waiter, else push it on the idle stack (under lock).

        A connection its borrower ``returned`` goes on the stack while the oldest waiter has
        waited less than _KEEP_FOR_S, and that waiter is woken to take it: a thread that
        borrows again at once (in a loop) takes it first, with no thread switch. Past that,
        the oldest waiter is handed it, so nobody starves.
        """
        record.returned_at = now
        returner = record.borrower
        # Forgotten, not kept until the next borrow: they would pin an exited thread.
        record.borrower = record.stack = None
        record.shared = False
        waiting = self._waiting
        if waiting:
            if not returned or now - waiting[0].since >= _KEEP_FOR_S:
                record.state = _CHECKING  # in the waiter's hands
                waiting.popleft().set(record)
                return
            record.kept_for = returner
            record.state = _IDLE
            self._idle.append(record)
            waiting[0].nudge()
            return
        record.kept_for = None
        record.state = _IDLE
        self._idle.append(record)
        # Cheap look at the bottom of the stack; the worker does the closing.
        if len(self._records) > self._min_size and self._idle[0].returned_at < now - self._max_idle:
            self._request_maintenance()

    def _discard(self, record: _ConnectionRecord, counter: str | None = None) -> None:
        """Close a connection in hand, then free its slot (maybe for a replacement)."""
        record.state = _CLOSING
        # Closed before the slot is freed, so the server never sees more than max_size.
        self._driver.close(record.conn)
        now = self._clock()
        with self._lock:
            del self._records[record.key]
            record.state = _CLOSED
            self._counts[PoolStats.CONNECTIONS_CLOSED] += 1
            if counter is not None:
                self._counts[counter] += 1
            self._maybe_grow()
            self._fail_waiters_if_nothing_can_come(now)

    def _distrust_older(self) -> None:
        """Have every connection last known to work before now checked on its next borrow."""
        now = self._clock()
        with self._lock:
            self._suspect_before = max(self._suspect_before, now)

    # Growing (decisions under the lock, connects in the worker)

    def _start(self) -> None:
        """Start the worker and its rounds on first use, and open min_size connections."""
        with self._lock:
            if self._started or self._closed:
                return
            self._started = True
            self._due = self._clock() + self._tick
            self._maybe_grow()
        self._worker.start()

    def _maybe_grow(self) -> None:
        """Request connections for waiters and up to min_size (under the lock)."""
        if self._closed:
            return
        self._grow_for_waiters()
        self._request_connections(
            min(self._min_size - len(self._records) - self._requested, self._room())
        )

    def _grow_for_waiters(self) -> None:
        """Request a connection for each waiter not covered by one on its way (under the lock)."""
        # The worker opens them one at a time, giving up on those nobody waits for any
        # more: a burst of 50 borrowers is served by returns and a few new connections,
        # not by 50 connects.
        self._request_connections(min(len(self._waiting) - self._requested, self._room()))

    def _room(self) -> int:
        return self._max_size - len(self._records) - self._requested

    def _request_connections(self, count: int) -> None:
        """Ask the worker for ``count`` connections (under the lock)."""
        if count > 0 and self._backoff.down:
            # While the server is down: one attempt at a time, none before it is due.
            count = 0 if self._requested or not self._backoff.due(self._clock()) else 1
        for _ in range(count):
            self._requested += 1
            self._worker.submit(ConnectionPool._add_connection)

    def _add_connection(self) -> None:
        """Open one connection for the oldest waiter or the idle stack (worker)."""
        started = self._clock()
        with self._lock:
            if not self._wants_connection(started):
                self._requested -= 1
                self._fail_waiters_if_nothing_can_come(started)
                return
            self._connecting += 1
            self._connect_started = self._backoff.tried_at = started
        try:
            conn = self._connect()
        except Exception as error:  # noqa: BLE001 - the driver's error goes to a waiter
            self._fail_connect(error)
        else:
            self._add_record(conn, started)

    def _wants_connection(self, now: float) -> bool:
        """Return whether a requested connection is still needed and may be opened now."""
        if self._closed or not (self._waiting or len(self._records) < self._min_size):
            return False
        # A request made before the last failed connect waits for the next attempt.
        return self._backoff.due(now)

    def _add_record(self, conn: Any, started: float) -> None:
        """Take a new connection into the pool; close it if the pool closed or was recycled
        since the connect began."""
        now = self._clock()
        lifetime = self.config.max_lifetime * (1.0 - random.uniform(0.0, 0.1))
        connect_ms = (now - started) * 1000.0
        record = _ConnectionRecord(conn, None, now, now + lifetime)
        with self._lock:
            self._records[id(conn)] = record  # from now on a forked child detaches it
            self._requested -= 1  # and it counts as open
        record.baseline = self._driver.session_state(conn)
        with self._lock:
            down_since = self._backoff.succeeded()
            self._end_connect()
            self._counts[PoolStats.CONNECTIONS_NUM] += 1
            self._stats.connects.add(connect_ms)
            stale = self._closed or started < self._recycled_at
            if stale:
                record.state = _CLOSING
            else:
                # Queued before the hand-off, so that its borrower's next dispatch comes after.
                self._emit("connection_created", {"connect_ms": connect_ms})
                self._return_to_waiter_or_idle(record, now, returned=False)
                self._note_in_use()
                self._maybe_grow()
        if down_since is not None:
            self._log.server_up(now - down_since)
        if stale:
            self._discard(record)  # and, unless closed, open another in its place

    def _fail_connect(self, error: Exception) -> None:
        """Mark the server down; fail the waiters only if nothing else can reach them."""
        now = self._clock()
        with self._lock:
            down_since = self._backoff.failed(error, now)
            delay = self._backoff.retry_at - now
            # Idle connections may be dead too, if the server restarted.
            self._suspect_before = max(self._suspect_before, now)
        # Logged before the waiters fail, so the log explains the errors that follow it.
        self._log.connect_failed(error, None if down_since is None else now - down_since, delay)
        with self._lock:
            self._requested -= 1
            self._end_connect()
            self._counts[PoolStats.CONNECTIONS_ERRORS] += 1
            self._fail_waiters_if_nothing_can_come(now, error)
            self._plan_retry(now)

    def _fail_waiters_if_nothing_can_come(self, now: float, error: Exception | None = None) -> None:
        """Fail every waiter, rather than let them time out, if none can be served (under lock).

        The oldest gets the failed connect's own ``error`` ("password authentication
        failed"), when there is one, and the others ``ServerUnavailable``.
        """
        if not self._waiting or not self._backoff.down:
            return
        if error is None:
            # Not straight after a failed attempt: the waiters may have one made for them.
            self._backoff.hurry(now)
            self._grow_for_waiters()
        if not self._nothing_can_come(now):
            return
        if error is not None:
            self._waiting.popleft().fail(error)
        while self._waiting:
            self._waiting.popleft().fail(self._unavailable_error(now))

    def _end_connect(self) -> None:
        """Count the connect under way as done, for close() to know (under the lock)."""
        self._connecting -= 1
        self._connect_started = None
        if not self._connecting:
            self._settled.notify_all()

    def _plan_retry(self, now: float) -> None:
        """Bring the next round forward to the next attempt if anyone needs a connection."""
        if (
            self._backoff.down
            and self._backoff.retry_at > now
            and (self._waiting or len(self._records) + self._requested < self._min_size)
        ):
            self._due = min(self._due, self._backoff.retry_at)

    # Maintenance rounds (worker)

    def _request_maintenance(self) -> None:
        if not self._maintenance_requested:
            self._maintenance_requested = True
            self._worker.submit(ConnectionPool._maintain)

    def _maintain(self) -> None:
        """Close expired, surplus and orphaned connections, report leaks, refill to min_size."""
        now = self._clock()
        self._due = now + self._tick
        with self._lock:
            self._maintenance_requested = False
            if self._closed:
                return
            doomed = self._pop_idle_to_close(now)
            orphans = self._pop_orphans()
            expired, unparked = self._claim_stale_parked(now)
            leaks = self._note_leaks(now)
            self._maybe_grow()
            self._plan_retry(now)
        self._warn_of_leaks(leaks)
        self._reclaim(orphans)
        for record in unparked:
            self._reset_and_give_back(record)
        for record in doomed + expired:
            self._discard(record)

    def _pop_idle_to_close(self, now: float) -> list[_ConnectionRecord]:
        """Take out idle connections past their lifetime or above min_size for too long."""
        doomed = [record for record in self._idle if now >= record.expires_at]
        if doomed:
            self._idle = [record for record in self._idle if now < record.expires_at]
        surplus = len(self._records) - len(doomed) - self._min_size
        stale = now - self._max_idle
        while surplus > 0 and self._idle and self._idle[0].returned_at < stale:
            doomed.append(self._idle.pop(0))
            surplus -= 1
        for record in doomed:
            record.state = _CLOSING
        return doomed

    def _pop_orphans(self) -> list[_ConnectionRecord]:
        """Claim lent connections whose borrowing thread has exited, to close (under the lock)."""
        orphans = [
            record
            for record in _lent_now(self._lent)
            if not record.shared and not record.borrower.is_alive()
        ]
        for record in orphans:
            del self._lent[record.key]
            record.state = _CLOSING
            if record.taken_back:
                self._count_take_back(record)
        return orphans

    def _reclaim(self, orphans: list[_ConnectionRecord]) -> None:
        """Close connections never given back by their exited threads, freeing their slots."""
        for record in orphans:
            held = self._clock() - record.borrowed_at
            self._log.reclaimed(held, record.borrower.name, record.stack)
            # Its state is unknown (maybe mid-transaction): closed, never reused.
            self._discard(record, PoolStats.CONNECTIONS_RECLAIMED)
            self._emit("connection_lost", {"reason": "reclaimed"})

    def _note_leaks(self, now: float) -> list[_Leak]:
        """Count borrows held past leak_timeout, once per borrow, for logging (under the lock)."""
        if self._leak_timeout is None:
            return []
        leaks = []
        for record in _lent_now(self._lent):
            held = now - record.borrowed_at
            if held >= self._leak_timeout and record.leak_reported != record.borrowed_at:
                record.leak_reported = record.borrowed_at
                leaks.append((record.borrower.name, held, record.stack))
        self._counts[PoolStats.CONNECTIONS_LEAKED] += len(leaks)
        return leaks

    def _warn_of_leaks(self, leaks: list[_Leak]) -> None:
        for thread_name, held, stack in leaks:
            self._log.leaked(held, thread_name, self._leak_timeout, stack)

    # Closing

    def close(self, timeout: float = 5.0) -> None:
        """Fail waiters, close idle connections (borrowed ones on return), await connects."""
        if self._pid != _pid:
            return  # an inherited pool: its connections are the parent's to close
        with self._lock:
            if self._closed:
                return
            self._closed = True
            doomed = self._claim_idle_and_parked()
            while self._waiting:
                self._waiting.popleft().fail(self._closed_error())
        self._worker.stop()
        for record in doomed:
            self._discard(record)
        # Up to ``timeout`` seconds: a connect under way closes its connection when it lands
        # in the closed pool, so that afterwards the server sees none of this pool's.
        with self._lock:
            self._settled.wait_for(lambda: not self._connecting, timeout)

    def close_idle(self) -> int:
        """Close the idle (and parked) connections now (the pool refills to min_size).

        Return how many it closed.
        """
        with self._lock:
            doomed = self._claim_idle_and_parked()
        for record in doomed:
            self._discard(record)
        return len(doomed)

    def recycle(self) -> int:
        """Replace every connection: idle and parked ones now, the others when they come back.

        Return how many open connections it concerns, each once. Useful after a change on
        the server (a failover, new settings for new sessions) that existing sessions do not
        see. A connection in a thread's hands at this moment (being checked or reset) is
        never lent again, nor is one whose connect began before it.
        """
        now = self._clock()
        with self._lock:
            self._recycled_at = now
            # Expired, whatever their state: whoever has one closes it instead of lending it
            # or putting it back, with no new check on the fast paths.
            for record in self._records.values():
                record.expires_at = min(record.expires_at, now)
            count = len(self._records)
            doomed = self._claim_idle_and_parked()
        for record in doomed:
            self._discard(record)
        return count

    def _detach_in_child(self) -> None:
        """Make the inherited connections harmless in a forked child, and this pool unusable."""
        # Without the lock: a thread that does not exist in the child may have held it at
        # the fork. The child has one thread at this point; give it a lock of its own.
        self._lock = threading.Lock()
        self._settled = threading.Condition(self._lock)
        self._log = PoolLog(self._label)
        self._closed = True
        self._parked = {}  # never taken back here: the parent's
        # Every one, whatever its state: idle, lent, parked, and those in a thread's hands at
        # the fork (being placed, checked or reset), which that thread's objects may still
        # reference.
        for record in list(self._records.values()):
            self._driver.detach(record.conn)

    @property
    def closed(self) -> bool:
        """Return True once ``close()`` was called."""
        return self._closed

    def serves_here(self) -> bool:
        """Return True if the pool is open and belongs to this process (not a fork's parent's)."""
        return not self._closed and self._pid == _pid

    # Status

    def size(self) -> int:
        """Return the number of connections open or being opened."""
        return len(self._records) + self._requested

    def available(self) -> int:
        """Return the number of idle connections, parked ones included."""
        return len(self._idle) + len(self._parked)

    def in_use(self) -> int:
        """Return the number of open connections that are not idle (nor parked)."""
        return len(self._records) - len(self._idle) - len(self._parked)

    def waiting(self) -> int:
        """Return the number of borrowers waiting for a connection."""
        return len(self._waiting)

    def stats(self) -> dict[str, Any]:
        """Return a fresh JSON-ready dict of gauges and counters (times in integer ms)."""
        now = self._clock()
        with self._lock:
            return self._read_stats(now)

    def _read_stats(self, now: float) -> dict[str, Any]:
        """Return the dict stats() returns (under the lock)."""
        down_since, error = self._backoff.down_since, self._backoff.error
        return {
            "name": self.name,
            "pool_min": self._min_size,
            "pool_max": self._max_size,
            "pool_size": self.size(),
            "pool_available": self.available(),
            "pool_in_use": self.in_use(),
            "requests_waiting": self.waiting(),
            "server_down_ms": 0 if down_since is None else int((now - down_since) * 1000.0),
            "last_connect_error": None if error is None else describe(error),
            **self._stats.counters(),
        }

    def snapshot(self) -> dict[str, Any]:
        """Return a fresh JSON-ready dict: config, stats, latency histograms, last hour."""
        now = self._clock()
        with self._lock:
            if now >= self._next_sample:
                self._sample(now)
            stats = self._read_stats(now)
            # Copies: the percentiles and dicts are worked out after the lock is released.
            copies = self._stats.copy()
        return {
            "name": self.name,
            "pid": self._pid,
            "host": socket.gethostname(),
            "server": self._server,
            "taken_at": time(),
            "config": {key: getattr(self.config, key) for key in _CONFIG_KEYS},
            "stats": stats,
            **self._stats.sections(copies),
        }

    def _count(self, counter: str) -> None:
        with self._lock:
            self._counts[counter] += 1

    # History (sampled lazily: by borrows, returns, snapshots and the worker)

    def _sample_history(self) -> None:
        """Close the history slots that have ended (worker)."""
        now = self._clock()
        with self._lock:
            if now >= self._next_sample:
                self._sample(now)

    def _sample(self, now: float) -> None:
        """Close the history slots ended by ``now`` (under the lock, past _next_sample)."""
        self._see_busy()
        self._next_sample = self._stats.sample(
            now, self.in_use(), self.available(), len(self._waiting)
        )

    def _see_busy(self) -> None:
        """Count the borrowed connections, and those running a query right now (libpq's status).

        Sampled once a slot, these tell how much of the time connections are held they work:
        a low share means borrowers hold connections while doing something else.
        """
        held = busy = 0
        for record in _lent_now(self._lent):
            held += 1
            busy += self._driver.status(record.conn) == _TX_ACTIVE
        self._counts[PoolStats.HELD_SEEN] += held
        self._counts[PoolStats.BUSY_SEEN] += busy

    # Events (dispatched to the events thread)

    def _emit(self, event: str, info: dict[str, Any]) -> None:
        """Have on_event called in the events thread: never in the worker, which it could stall.

        Only a queue put: cheap enough to do under the lock where the order matters.
        """
        if self._on_event is not None:
            background.dispatch(self._deliver, event, info)

    def _deliver(self, event: str, info: dict[str, Any]) -> None:
        """Call on_event; log what it raises (events thread)."""
        try:
            self._on_event(event, info)
        except Exception:  # noqa: BLE001 - a receiver's bug is logged, and the next one runs
            self._log.receiver_failed(event)

    # Errors

    def _closed_error(self) -> PoolClosed:
        return PoolClosed(f"{self._label} is closed")

    def _timeout_error(self, timeout: float, now: float) -> PoolTimeout:
        message = (
            f"{self._label}: couldn't get a connection after {timeout:.2f} s "
            f"({self.in_use()}/{self.size()} in use, {len(self._waiting)} waiting, "
            f"max_size={self._max_size})"
        )
        if self._connect_started is not None and now - self._connect_started >= timeout / 2:
            # A server that accepts TCP but never answers: say so, not just "busy".
            message += (
                f"; a connect has been waiting {now - self._connect_started:.2f} s for the "
                "server to answer (connect_timeout in OPTIONS bounds it)"
            )
        elif self._backoff.error is not None:
            message += f"; last connect error: {describe(self._backoff.error)}"
        return PoolTimeout(message)

    def _unavailable_error(self, now: float) -> ServerUnavailable:
        backoff = self._backoff
        return ServerUnavailable(
            f"{self._label}: server unavailable for {now - backoff.down_since:.1f} s "
            f"(last connect error: {describe(backoff.error)}); "
            f"next attempt in {max(backoff.retry_at - now, 0.0):.2f} s"
        )

    def _not_lent_error(self, conn: Any) -> PoolError:
        return PoolError(
            f"{self._label}: putconn() got a {type(conn).__name__} this pool did not lend, "
            "or one already returned"
        )

    def _worker_thread_error(self) -> PoolError:
        return PoolError(
            f"{self._label}: getconn() called from the pool's own worker thread, which opens "
            "its connections: a borrow there could wait for itself forever. Run Django code "
            "from your own threads, or from django_pool.background.dispatch()"
        )

    def _other_process_error(self) -> PoolError:
        return PoolError(
            f"{self._label} belongs to process {self._pid}, not to this process "
            f"({os.getpid()}): a forked child must create its own pool"
        )
