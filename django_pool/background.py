"""The pools' background threads: a worker per pool, and one events thread per process.

A pool's **worker** does that pool's I/O: it opens connections, closes surplus and expired
ones, and runs the pool's timed maintenance round whenever ``time.monotonic()`` passes
``pool._due`` (and closes its history slots when it passes ``pool._next_sample``). Only pool
code and ``connect()`` run there: a server that never answers delays its own pool's connects
up to libpq's ``connect_timeout``, never another pool's, and nothing running there can wait
for a connection that only this thread would open. A worker holds its pool weakly and ends
with it, or when the pool is closed.

The process's **events** thread runs everything else that is not the pool's business:
``on_event`` receivers (Django signals) and periodic callbacks such as publishing snapshots
to a Django cache. Those may borrow connections; from there they wait like any borrower.
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

# Bounds on a thread's sleep between rounds: at least this often so that a forgotten pool
# is noticed, at most this often so that a pool whose deadline is near never turns the
# thread into a busy loop.
_MAX_WAIT = 1.0
_MIN_WAIT = 0.02

_STOP = object()


class WorkerThread(threading.Thread):
    """A pool's worker thread; the pool refuses to lend from it (that could deadlock)."""


class Worker:
    """One pool's background thread: its connects and closes, and its timed rounds."""

    def __init__(self, pool: Any) -> None:
        self._pool = weakref.ref(pool)
        self._tasks: SimpleQueue = SimpleQueue()
        self._thread = WorkerThread(
            target=self._run, name=f"django_pool worker {pool.name}", daemon=True
        )

    def start(self) -> None:
        """Start the thread (once)."""
        self._thread.start()
        _workers.add(self)

    def submit(self, task: Callable[[Any], None]) -> None:
        """Run ``task(pool)`` in the thread soon, after the tasks submitted before it."""
        self._tasks.put(task)

    def stop(self, timeout: float = 0.0) -> None:
        """End the thread after its current task; wait up to ``timeout`` seconds for it."""
        self._tasks.put(_STOP)
        if (
            timeout > 0
            and self._thread.is_alive()
            and threading.current_thread() is not self._thread
        ):
            self._thread.join(timeout)

    @property
    def thread(self) -> threading.Thread:
        """Return the worker's thread."""
        return self._thread

    def _run(self) -> None:
        while True:
            task = self._next_task()
            pool = self._pool()
            if task is _STOP or pool is None:
                return
            if task is not None:
                _call(pool, task)
            now = monotonic()
            if pool._due <= now:
                _call(pool, type(pool)._maintain)
            if pool._next_sample <= now:
                _call(pool, type(pool)._sample_history)
            del pool  # not held while waiting: a forgotten pool can be collected

    def _next_task(self) -> Any:
        """Wait for a task until the pool's next deadline (None if none came)."""
        pool = self._pool()
        if pool is None:
            return _STOP
        due = min(pool._due, pool._next_sample)
        del pool
        try:
            return self._tasks.get(timeout=min(max(due - monotonic(), _MIN_WAIT), _MAX_WAIT))
        except Empty:
            return None


def _call(pool: Any, task: Callable[[Any], None]) -> None:
    try:
        task(pool)
    except Exception:
        # A bug here must not stop the pool from ever growing again.
        logger.exception("pool %r: background task failed", pool.name)


class _Periodic:
    """A callback run every ``interval`` seconds, and when it is next due (monotonic)."""

    __slots__ = ("interval", "callback", "due")

    def __init__(self, interval: float, callback: Callable[[], None]) -> None:
        self.interval = interval
        self.callback = callback
        self.due = monotonic() + interval


class Events:
    """A daemon thread running dispatched calls in order, and periodic callbacks."""

    def __init__(self, periodic: list[_Periodic] | None = None) -> None:
        self._lock = threading.Lock()
        self._tasks: SimpleQueue = SimpleQueue()
        self._periodic: list[_Periodic] = periodic or []
        self._thread: threading.Thread | None = None

    def dispatch(self, callback: Callable[..., object], *args: Any) -> None:
        """Run ``callback(*args)`` in the thread soon; what it raises is logged."""
        self._tasks.put((callback, args))
        if self._thread is None:
            self._start()

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

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every call dispatched so far has run; return False on timeout."""
        done = threading.Event()
        self.dispatch(done.set)
        return done.wait(timeout)

    def stop(self, timeout: float) -> None:
        """Ask the thread to finish after its current call and wait up to ``timeout`` seconds."""
        thread = self._thread
        if thread is not None:
            self._tasks.put(_STOP)
            thread.join(timeout)

    def is_current(self) -> bool:
        """Return whether the caller runs in this thread."""
        return self._thread is threading.current_thread()

    def _start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="django_pool events", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        while True:
            task = self._next_task()
            if task is _STOP:
                return
            if task is not None:
                callback, args = task
                try:
                    callback(*args)
                except Exception:
                    logger.exception("django_pool: %r failed", callback)
            self._run_due_callbacks()

    def _next_task(self) -> Any:
        with self._lock:
            due = min((entry.due for entry in self._periodic), default=monotonic() + _MAX_WAIT)
        try:
            return self._tasks.get(timeout=min(max(due - monotonic(), _MIN_WAIT), _MAX_WAIT))
        except Empty:
            return None

    def _run_due_callbacks(self) -> None:
        now = monotonic()
        with self._lock:
            entries = list(self._periodic)
        for entry in entries:
            if entry.due <= now:
                # From this run, not from the missed deadline: a slow callback or a stopped
                # process never causes a burst of catch-up runs.
                entry.due = now + entry.interval
                try:
                    entry.callback()
                except Exception:
                    logger.exception("periodic callback %r failed", entry.callback)


# The workers started in this process, for stopping them at exit.
_workers: weakref.WeakSet[Worker] = weakref.WeakSet()
_events = Events()


def dispatch(callback: Callable[..., object], *args: Any) -> None:
    """Run ``callback(*args)`` in this process's events thread, in order of dispatch."""
    _events.dispatch(callback, *args)


def every(interval_s: float, callback: Callable[[], None]) -> None:
    """Run ``callback()`` in this process's events thread every ``interval_s`` seconds.

    The first run comes one interval from now; what it raises is logged. Forked children
    inherit the registrations: their own events thread runs them.
    """
    _events.every(interval_s, callback)


def flush(timeout: float = 5.0) -> bool:
    """Wait until every call dispatched so far to the events thread has run."""
    return _events.flush(timeout)


def in_events_thread() -> bool:
    """Return whether the caller is this process's events thread."""
    return _events.is_current()


def _restart_in_child() -> None:
    # The parent's threads do not exist in a forked child, and a lock may have been held at
    # the fork: start over. The child's pools start workers of their own; its events thread
    # runs the parent's periodic callbacks (read without the lock, for that reason).
    global _events
    _events = Events(periodic=list(_events._periodic))
    _workers.clear()


def _stop_at_exit() -> None:
    # Daemon threads are frozen at shutdown; stopping ours first means none is frozen in the
    # middle of closing a connection. A connect in progress is not waited for long.
    deadline = monotonic() + 0.5
    workers = list(_workers)
    for worker in workers:
        worker.stop()
    for worker in workers:
        worker.thread.join(max(deadline - monotonic(), 0.0))
    _events.stop(timeout=max(deadline - monotonic(), 0.0))


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_restart_in_child)
atexit.register(_stop_at_exit)
