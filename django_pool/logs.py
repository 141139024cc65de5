"""What a pool logs, and how often: at most one record of each kind per period.

A dead server or a stampede must not flood the log: each kind of record passes at most once
per ``PoolLog.EVERY`` seconds per pool, and the next one that passes says how many were held
back. Nothing here runs under the pool's lock.
"""

from __future__ import annotations

import logging
import threading
import traceback
from time import monotonic
from typing import Any

logger = logging.getLogger("django_pool")

# Where a connection was borrowed: (file, line number, function, None) per frame, outermost
# first, as StackSummary.from_list() takes them.
Stack = list[tuple[str, int, str, None]]


def describe(error: BaseException) -> str:
    """Return an error's message on one line (libpq puts hints on lines of their own)."""
    return " ".join(str(error).split()) or type(error).__name__


def _borrowed_at(stack: Stack | None) -> str:
    if stack is None:
        return ""
    return "; borrowed at:\n" + "".join(traceback.StackSummary.from_list(stack).format()).rstrip()


class PoolLog:
    """One pool's log records, each kind rate-limited on its own."""

    EVERY = 10.0

    __slots__ = ("label", "_lock", "_passed_at", "_held")

    def __init__(self, label: str) -> None:
        self.label = label
        self._lock = threading.Lock()
        self._passed_at: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def log(self, level: int, kind: str, message: str, *args: Any, exc_info: bool = False) -> None:
        """Log, unless a record of this kind was logged less than EVERY seconds ago."""
        if not logger.isEnabledFor(level):
            return
        admitted = self._admit(kind, monotonic())
        if admitted is None:
            return
        held, since = admitted
        if held:
            message += " (%d similar suppressed in the last %.0f s)"
            args += (held, since)
        # stacklevel: the record names the pool method that asked, not this class.
        logger.log(level, "%s: " + message, self.label, *args, exc_info=exc_info, stacklevel=3)

    def _admit(self, kind: str, now: float) -> tuple[int, float] | None:
        """Return (records held back, seconds since the last one passed), or None to hold."""
        with self._lock:
            passed_at = self._passed_at.get(kind)
            if passed_at is not None and now - passed_at < self.EVERY:
                self._held[kind] = self._held.get(kind, 0) + 1
                return None
            self._passed_at[kind] = now
            return self._held.pop(kind, 0), 0.0 if passed_at is None else now - passed_at

    # Borrowing

    def check_failed(self, age: float, idle: float, error: BaseException) -> None:
        self.log(
            logging.WARNING,
            "check",
            "dropping a connection (%.0f s old) that failed its check after %.1f s idle: %s",
            age,
            idle,
            error,
        )

    def slow_wait(self, waited: float, in_use: int, max_size: int, waiting: int) -> None:
        self.log(
            logging.INFO,
            "slow_wait",
            "a borrow waited %.0f ms for a connection (%d/%d in use, %d waiting)",
            waited * 1000.0,
            in_use,
            max_size,
            waiting,
        )

    def exhausted(self, kind: str, error: BaseException) -> None:
        # The error's message already starts with the pool's label.
        self.log(logging.WARNING, kind, "%s", str(error).removeprefix(self.label + ": "))

    # Returning

    def returned_broken(self) -> None:
        self.log(logging.WARNING, "broken", "closing a connection returned broken")

    def reset_failed(self, error: BaseException) -> None:
        self.log(logging.WARNING, "broken", "closing a connection that failed reset: %s", error)

    def late_return(self) -> None:
        self.log(
            logging.WARNING,
            "late_return",
            "a connection came back closed after the pool reclaimed it (its borrowing thread "
            "had exited); use inc_thread_sharing() on a wrapper whose connection another "
            "thread gives back",
        )

    # The server

    def connect_failed(self, error: BaseException, down_for: float | None, delay: float) -> None:
        if down_for is None:
            kind, what = "down", "connection failed, server marked down"
        else:
            kind, what = "reconnect", f"reconnect attempt failed, server down for {down_for:.1f} s"
        self.log(
            logging.WARNING, kind, "%s: %s; next attempt in %.2f s", what, describe(error), delay
        )

    def server_up(self, down_for: float) -> None:
        self.log(logging.INFO, "up", "server is back after %.1f s down", down_for)

    # Borrowers that never give back

    def reclaimed(self, held: float, thread_name: str, stack: Stack | None) -> None:
        self.log(
            logging.WARNING,
            "reclaim",
            "reclaiming a connection borrowed %.1f s ago by thread %r, which exited without "
            "returning it%s",
            held,
            thread_name,
            _borrowed_at(stack),
        )

    def leaked(self, held: float, thread_name: str, limit: float, stack: Stack | None) -> None:
        self.log(
            logging.WARNING,
            "leak",
            "a connection has been borrowed for %.1f s by thread %r, past leak_timeout=%s s%s",
            held,
            thread_name,
            limit,
            _borrowed_at(stack),
        )

    def receiver_failed(self, event: str) -> None:
        self.log(logging.ERROR, "on_event", "on_event(%r) failed", event, exc_info=True)
