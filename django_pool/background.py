"""One background thread per process doing every pool's I/O: connects, closes, scans.

A pool hands this thread two kinds of work: tasks (``submit``: open a connection now,
maintain now) and a timed round (``register``: the thread calls ``pool._maintain()``
whenever ``time.monotonic()`` passes ``pool._due``, a deadline the pool keeps current, and
``pool._sample_history()`` whenever it passes ``pool._next_sample``, so that a pool nobody
uses still closes its history slots on time). Pools are held only weakly, so a forgotten
pool is collected and its pending work dropped.

Others may have a callback run periodically in the thread (``every``): the Django side
publishes snapshots this way.

The thread runs one thing at a time: a slow connect for one pool (a server that does not
answer) delays the other pools' work until it times out. Borrowers never wait on this
thread for returned connections, only for new ones, so that is an acceptable price for
one thread per process.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import weakref
from collections.abc import Callable
from queue import Empty, SimpleQueue
from time import monotonic
from typing import Any

logger = logging.getLogger("django_pool")

# Bounds on the thread's sleep between rounds: at least this often so a pool registered
# meanwhile is looked at, at most this often so a pool whose deadline is near never turns
# the thread into a busy loop.
_MAX_WAIT = 1.0
_MIN_WAIT = 0.02

_STOP = object()


class _Periodic:
    """A callback run every ``interval`` seconds, and when it is next due (monotonic)."""

    __slots__ = ("interval", "callback", "due")

    def __init__(self, interval: float, callback: Callable[[], None]) -> None:
        self.interval = interval
        self.callback = callback
        self.due = monotonic() + interval


class Maintenance:
    """A daemon thread running pools' tasks and timed maintenance, holding pools weakly."""

    def __init__(self, periodic: list[_Periodic] | None = None) -> None:
        self._lock = threading.Lock()
        self._tasks: SimpleQueue = SimpleQueue()
        self._pools: weakref.WeakSet[Any] = weakref.WeakSet()
        self._periodic: list[_Periodic] = periodic or []
        self._thread: threading.Thread | None = None

    def register(self, pool: Any) -> None:
        """Give ``pool`` timed maintenance rounds from now on."""
        with self._lock:
            self._pools.add(pool)
        self._start()
        self._tasks.put(None)  # wake up to plan with the new pool's deadline

    def unregister(self, pool: Any) -> None:
        """Stop the timed rounds of ``pool`` (tasks already submitted still run)."""
        with self._lock:
            self._pools.discard(pool)

    def every(self, interval: float, callback: Callable[[], None]) -> None:
        """Run ``callback()`` every ``interval`` seconds from now on, first after one interval.

        Registering the same callback again only changes its interval: a Django app's
        ready() that runs twice must not publish twice as often.
        """
        if not interval > 0:
            raise ValueError(f"interval must be greater than 0 seconds, got {interval!r}")
        with self._lock:
            self._periodic = [entry for entry in self._periodic if entry.callback != callback]
            self._periodic.append(_Periodic(interval, callback))
        self._start()
        self._tasks.put(None)  # wake up to plan with the new deadline

    def submit(self, pool: Any, task: Callable[[Any], None]) -> None:
        """Run ``task(pool)`` in the thread soon, unless the pool is collected first."""
        self._tasks.put((weakref.ref(pool), task))
        if self._thread is None:
            self._start()

    def stop(self, timeout: float) -> None:
        """Ask the thread to finish after its current task and wait up to ``timeout`` seconds."""
        thread = self._thread
        if thread is not None:
            self._tasks.put(_STOP)
            thread.join(timeout)

    def _start(self) -> None:
        """Start the thread on first use."""
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="django_pool maintenance", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        while True:
            task = self._next_task()
            if task is _STOP:
                return
            if task is not None:
                self._run_task(*task)
            self._run_due_rounds()
            self._run_due_callbacks()

    def _next_task(self) -> Any:
        """Wait for a task until the earliest deadline (None if none came)."""
        pools = self._registered()
        deadlines = [pool._due for pool in pools] + [pool._next_sample for pool in pools]
        deadlines += [entry.due for entry in self._callbacks()]
        due = min(deadlines, default=monotonic() + _MAX_WAIT)
        try:
            return self._tasks.get(timeout=min(max(due - monotonic(), _MIN_WAIT), _MAX_WAIT))
        except Empty:
            return None

    def _registered(self) -> list[Any]:
        # A copy: pools come and go in other threads while this one iterates.
        with self._lock:
            return list(self._pools)

    def _callbacks(self) -> list[_Periodic]:
        with self._lock:
            return list(self._periodic)

    def _run_task(self, pool_ref: weakref.ref, task: Callable[[Any], None]) -> None:
        # A separate frame, so the pool is referenced only while its task runs.
        pool = pool_ref()
        if pool is not None:
            self._call(pool, task)

    def _run_due_rounds(self) -> None:
        now = monotonic()
        for pool in self._registered():
            if pool._due <= now:
                self._call(pool, type(pool)._maintain)
            if pool._next_sample <= now:
                self._call(pool, type(pool)._sample_history)

    def _run_due_callbacks(self) -> None:
        now = monotonic()
        for entry in self._callbacks():
            if entry.due <= now:
                # From this run, not from the missed deadline: a slow callback or a stopped
                # process never causes a burst of catch-up runs.
                entry.due = now + entry.interval
                try:
                    entry.callback()
                except Exception:
                    # A failing publisher must not stop the pools' maintenance.
                    logger.exception("periodic callback %r failed", entry.callback)

    @staticmethod
    def _call(pool: Any, task: Callable[[Any], None]) -> None:
        try:
            task(pool)
        except Exception:
            # A bug here must not stop every pool of the process from ever growing again.
            logger.exception("pool %r: background task failed", pool.name)


_maintenance = Maintenance()


def register(pool: Any) -> None:
    """Give ``pool`` timed rounds in this process's maintenance thread."""
    _maintenance.register(pool)


def unregister(pool: Any) -> None:
    """Stop the timed rounds of ``pool``."""
    _maintenance.unregister(pool)


def submit(pool: Any, task: Callable[[Any], None]) -> None:
    """Run ``task(pool)`` in this process's maintenance thread."""
    _maintenance.submit(pool, task)


def every(interval_s: float, callback: Callable[[], None]) -> None:
    """Run ``callback()`` in this process's maintenance thread every ``interval_s`` seconds.

    The first run comes one interval from now; what it raises is logged. Forked children
    inherit the registrations: their own thread, started by their first pool, runs them.
    """
    _maintenance.every(interval_s, callback)


def _restart_in_child() -> None:
    # The parent's thread does not exist in a forked child, and its lock may have been
    # held at the fork: start over; the first pool used in the child starts a new thread,
    # which runs the parent's periodic callbacks (read without the lock, for that reason).
    global _maintenance
    _maintenance = Maintenance(periodic=list(_maintenance._periodic))


def _stop_at_exit() -> None:
    # Daemon threads are frozen at shutdown; stopping ours first means it is never frozen
    # in the middle of closing a connection. A connect in progress is not waited for long.
    _maintenance.stop(timeout=0.5)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_restart_in_child)
atexit.register(_stop_at_exit)
