"""Per-request borrow records, kept while the debug toolbar's panel instruments a request.

The ENGINE asks :func:`current` on each borrow. Outside an instrumented request it returns None
and the borrow goes on as before: one ``ContextVar.get()`` is all the hook costs. Inside one,
the wrapper notes each borrow and return in the request's :class:`BorrowRecorder`.

The recorder lives in a ``ContextVar``, not a global: requests served at the same time by
threads (gthread workers) or async tasks (ASGI) each see only their own. ``sync_to_async``
copies the context into the thread it runs in, so the async ORM's borrows are recorded too.
"""

from __future__ import annotations

import linecache
import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from time import monotonic
from typing import Any

from . import registry
from .drivers import backend_pid
from .health import verdict
from .options import REQUEST, TRANSACTION

_recorder: ContextVar[BorrowRecorder | None] = ContextVar("django_pool_borrows", default=None)

# Frames of these packages are skipped to find the line of code that borrowed a connection.
_LIBRARY = ("django.", "django_pool.", "asgiref.", "debug_toolbar.", "concurrent.", "asyncio.")
_LIBRARY_MODULES = frozenset({"django", "threading", "contextlib", "asyncio", "functools"})


def current() -> BorrowRecorder | None:
    """Return the recorder of the request this code runs for, if the panel instruments it."""
    return _recorder.get()


def start(recorder: BorrowRecorder) -> Token:
    """Record this context's borrows (and those of contexts copied from it) in ``recorder``."""
    return _recorder.set(recorder)


def stop(token: Token) -> None:
    """Stop recording; the context sees what it saw before :func:`start`."""
    try:
        _recorder.reset(token)
    except ValueError:
        # Reset from another context than the one that started: recording stops here anyway.
        _recorder.set(None)


@contextmanager
def paused() -> Iterator[None]:
    """Record nothing of this block: the panel's own queries are not the request's."""
    token = _recorder.set(None)
    try:
        yield
    finally:
        _recorder.reset(token)


def pool_states() -> dict[str, dict[str, int]]:
    """Return in use, open, max, waiting and release mode of this process's pools (no I/O)."""
    return {
        alias: {
            "in_use": pool.in_use(),
            "size": pool.size(),
            "max_size": pool.config.max_size,
            "waiting": pool.waiting(),
            "release": pool.config.release,
        }
        for alias, pool in registry.pools().items()
    }


def borrowing_line() -> dict[str, Any] | None:
    """Return file, line, function and code of the innermost frame outside the libraries."""
    frame = sys._getframe(2)
    while frame is not None:
        module = frame.f_globals.get("__name__", "")
        if module not in _LIBRARY_MODULES and not module.startswith(_LIBRARY):
            filename, line = frame.f_code.co_filename, frame.f_lineno
            return {
                "file": _short(filename),
                "line": line,
                "function": frame.f_code.co_name,
                "code": linecache.getline(filename, line).strip(),
            }
        frame = frame.f_back
    return None


class Borrow:
    """One borrow of a connection during the request, from the wait to the return."""

    __slots__ = (
        "alias",
        "thread_name",
        "request_thread",
        "started",
        "lent",
        "returned",
        "how",
        "pid",
        "queries",
        "query_seconds",
        "rollback",
        "restore",
        "broken",
        "error",
        "where",
        "in_use_asked",
        "in_use",
        "max_size",
        "waiting",
    )

    def __init__(self, alias: str, request_thread: bool, started: float) -> None:
        self.alias = alias
        self.thread_name = threading.current_thread().name
        self.request_thread = request_thread  # Django gives it back when the request ends
        self.started = started
        self.lent: float | None = None
        self.returned: float | None = None
        self.how = "?"
        self.pid: int | None = None
        self.queries = 0
        self.query_seconds = 0.0
        self.rollback = self.restore = self.broken = False
        self.error: str | None = None
        self.where = borrowing_line()
        self.in_use_asked = self.in_use = self.max_size = self.waiting = 0

    def __call__(self, execute, sql, params, many, context):
        """Time the queries run on the borrowed connection (a Django execute wrapper)."""
        started = monotonic()
        try:
            return execute(sql, params, many, context)
        finally:
            self.queries += 1
            self.query_seconds += monotonic() - started

    def asking(self, pool: Any) -> None:
        """Note how busy ``pool`` is as the borrow asks it for a connection."""
        self.in_use_asked, self.waiting = pool.in_use(), pool.waiting()
        self.max_size = pool.config.max_size

    def lent_by(self, pool: Any, conn: Any) -> None:
        """Note how ``pool`` lent ``conn``: reused idle, newly opened, or checked first."""
        self.lent = monotonic()
        times = pool.describe_lent(conn)
        if times is not None:
            if times["created_at"] >= self.started:
                self.how = "opened"
            elif times["checked_at"] >= self.started:
                self.how = "checked"
            else:
                self.how = "reused"
        self.pid = backend_pid(conn)
        self.in_use = pool.in_use()

    def failed(self, error: BaseException) -> None:
        """Note a borrow that got no connection (a timeout, the server down)."""
        self.returned = monotonic()
        self.error = f"{type(error).__name__}: {error}"

    def returning(self, pool: Any, conn: Any) -> None:
        """Note what giving ``conn`` back will do, just before it is given back."""
        self.returned = monotonic()
        what = pool.describe_return(conn)
        self.rollback, self.restore, self.broken = what["rollback"], what["restore"], what["broken"]

    def as_dict(self, now: float) -> dict[str, Any]:
        """Return the borrow as JSON-ready values (times in ms, rounded to 0.1 ms)."""
        lent = self.lent
        end = self.returned if self.returned is not None else now
        return {
            "alias": self.alias,
            "thread": self.thread_name,
            "request_thread": self.request_thread,
            "waited_ms": _ms((lent if lent is not None else end) - self.started),
            "held_ms": None if lent is None else _ms(end - lent),
            "returned": self.returned is not None,
            "how": self.how,
            "pid": self.pid,
            "queries": self.queries,
            "query_ms": _ms(self.query_seconds),
            "rollback": self.rollback,
            "restore": self.restore,
            "broken": self.broken,
            "error": self.error,
            "where": self.where,
            "in_use_asked": self.in_use_asked,
            "in_use": self.in_use,
            "max_size": self.max_size,
            "waiting": self.waiting,
        }


class BorrowRecorder:
    """The borrows of one request, in order, and the pools' state when it started."""

    # Enough for any page; a runaway loop keeps a count of the rest instead of their records.
    LIMIT = 500

    def __init__(self) -> None:
        self.borrows: list[Borrow] = []
        self.dropped = 0
        self.request_thread = threading.get_ident()
        self.before = pool_states()

    def borrow(self, alias: str, in_request_wrapper: bool) -> Borrow | None:
        """Start a record of a borrow on this thread (None past LIMIT)."""
        if len(self.borrows) >= self.LIMIT:
            self.dropped += 1
            return None
        request_thread = in_request_wrapper and threading.get_ident() == self.request_thread
        borrow = Borrow(alias, request_thread, monotonic())
        self.borrows.append(borrow)  # list.append is atomic: threads of one request may share it
        return borrow


def _short(filename: str) -> str:
    """Return ``filename`` relative to the working directory when it lies below it."""
    try:
        relative = os.path.relpath(filename)
    except ValueError:  # another drive, on Windows
        return filename
    return filename if relative.startswith("..") else relative


def _ms(seconds: float) -> float:
    return round(seconds * 1000.0, 1)


def report(
    recorder: BorrowRecorder,
    *,
    slow_wait_ms: float,
    hold_outside_ms: float,
    many_borrows: int,
    near_exhaustion: float,
) -> dict[str, Any]:
    """Return the request's borrows by alias, with totals, pool states and warnings (JSON-ready)."""
    now = monotonic()
    after = pool_states()
    by_alias: dict[str, list[dict[str, Any]]] = {}
    for borrow in list(recorder.borrows):
        by_alias.setdefault(borrow.alias, []).append(borrow.as_dict(now))
    aliases = []
    for alias, items in by_alias.items():
        state = after.get(alias)
        release = state["release"] if state else REQUEST
        warnings = []
        for number, item in enumerate(items, 1):
            warnings += _borrow_warnings(number, item, slow_wait_ms, hold_outside_ms, release)
        # With release="transaction" a borrow per transaction is the point, not a mistake.
        if len(items) >= many_borrows and release == REQUEST:
            warnings.append(
                f"{len(items)} borrows in one request: each one goes through the pool and "
                "resets the connection. Is connection.close() called inside a loop?"
            )
        warnings += _exhaustion_warnings(items, state, near_exhaustion)
        aliases.append(
            {
                "alias": alias,
                "release": release,
                "borrows": items,
                "totals": _totals(items),
                "before": recorder.before.get(alias),
                "after": state,
                "health": _health(alias),
                "warnings": warnings,
            }
        )
    return {
        "aliases": aliases,
        "dropped": recorder.dropped,
        "warnings": sum(len(alias["warnings"]) for alias in aliases),
        "subtitle": "; ".join(_subtitle(alias) for alias in aliases) or "no borrows",
        "thresholds": {
            "slow_wait_ms": slow_wait_ms,
            "hold_outside_ms": hold_outside_ms,
            "many_borrows": many_borrows,
            "near_exhaustion": near_exhaustion,
        },
    }


def _borrow_warnings(
    number: int, item: dict[str, Any], slow_wait_ms: float, hold_outside_ms: float, release: str
) -> list[str]:
    warnings = []
    where = item["where"]
    at = f" Borrowed at {where['file']}:{where['line']} ({where['function']})." if where else ""
    if item["error"]:
        warnings.append(
            f"Borrow {number} got no connection after {item['waited_ms']} ms: {item['error']}"
        )
    elif item["waited_ms"] >= slow_wait_ms:
        waiting = f" and {item['waiting']} waiting" if item["waiting"] else ""
        warnings.append(
            f"Borrow {number} waited {item['waited_ms']} ms for a connection "
            f"(over {slow_wait_ms:g} ms): {item['in_use_asked']} of {item['max_size']} were "
            f"in use{waiting} when it asked.{at}"
        )
    held = item["held_ms"]
    if held is not None:
        outside = round(held - item["query_ms"], 1)
        if outside >= hold_outside_ms and held >= 2 * item["query_ms"]:
            fix = (
                ' With OPTIONS["pool"]["release"] = "transaction" the connection would go back '
                "after each query outside a transaction."
                if release == REQUEST
                else " Is it held by an atomic block, hold() or an open cursor?"
            )
            warnings.append(
                f"Borrow {number}: held {held:g} ms, queries {item['query_ms']:g} ms: "
                f"{outside:g} ms outside the database — a slow call while holding the "
                f"connection?{fix}{at}"
            )
    if item["rollback"]:
        warnings.append(
            f"Borrow {number} was given back with a transaction open: the pool rolled it back, "
            f"so its uncommitted changes are lost.{at}"
        )
    if item["restore"] and release == TRANSACTION:
        warnings.append(
            f"Borrow {number} changed session settings, which the pool set back when it took "
            'the connection back: with release="transaction" they do not carry to the next '
            "query. Use SET LOCAL inside transaction.atomic(), or django_pool.hold()."
            f"{at}"
        )
    if not item["returned"] and not item["request_thread"]:
        warnings.append(
            f"Borrow {number} (thread {item['thread']}) was still borrowed when the response "
            "left: Django gives back only the request thread's connections when a request "
            f"ends. Call connection.close() in that thread when it is done.{at}"
        )
    return warnings


def _exhaustion_warnings(
    items: list[dict[str, Any]], state: dict[str, int] | None, near_exhaustion: float
) -> list[str]:
    lent = [item for item in items if item["max_size"]]
    if not lent and state is None:
        return []
    max_size = lent[0]["max_size"] if lent else state["max_size"]
    peak = max(
        [max(item["in_use_asked"], item["in_use"]) for item in lent]
        + [state["in_use"] if state else 0]
    )
    waiting = max([item["waiting"] for item in lent] + [state["waiting"] if state else 0])
    if peak < near_exhaustion * max_size and not waiting:
        return []
    also = f", {waiting} waiting" if waiting else ""
    return [
        f"The pool was near exhaustion: up to {peak} of {max_size} connections in use{also} "
        "during this request. Raise max_size, or hold connections for less time."
    ]


def _totals(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "borrows": len(items),
        "waited_ms": round(sum(item["waited_ms"] for item in items), 1),
        "held_ms": round(sum(item["held_ms"] or 0 for item in items), 1),
        "queries": sum(item["queries"] for item in items),
        "query_ms": round(sum(item["query_ms"] for item in items), 1),
        "open": sum(not item["returned"] for item in items),
    }


def _subtitle(alias: dict[str, Any]) -> str:
    totals = alias["totals"]
    plural = "" if totals["borrows"] == 1 else "s"
    return (
        f"{alias['alias']}: {totals['borrows']} borrow{plural}, held {totals['held_ms']:.0f} ms, "
        f"waited {totals['waited_ms']:.0f} ms"
    )


def _health(alias: str) -> dict[str, Any] | None:
    pool = registry.pools().get(alias)
    if pool is None:
        return None
    judged = verdict(pool.snapshot())
    return {"status": judged["status"], "reasons": judged["reasons"][:3]}
