"""A pool's counters, latency histograms and last hour of activity (no I/O, no Django).

The pool updates these under its own lock, so nothing here locks. Reading them (a snapshot)
copies under the pool's lock and does the arithmetic outside it.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections import Counter, deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

# Upper bounds (ms, inclusive) of the histogram buckets, roughly log-spaced. The first
# bucket holds exact zeros: a borrow served from the idle stack did not wait at all.
BOUNDS_MS: tuple[float, ...] = (
    0.0,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    25.0,
    50.0,
    100.0,
    250.0,
    500.0,
    1000.0,
    2500.0,
    5000.0,
    10000.0,
    30000.0,
    float("inf"),
)


def quantile(counts: Sequence[int], q: float) -> float | None:
    """Estimate the ``q``-quantile (0..1) of values counted per bucket of ``BOUNDS_MS``.

    Linear interpolation inside the bucket where the quantile falls, as Prometheus's
    ``histogram_quantile()`` does, so the numbers shown here match a Grafana panel built on
    the exported buckets. The zero bucket gives 0; the +Inf bucket gives the last finite
    bound. None when nothing was counted.
    """
    total = sum(counts)
    if not total:
        return None
    rank = q * total
    index = seen = 0
    while not counts[index] or seen + counts[index] < rank:
        seen += counts[index]
        index += 1
    if index == 0:
        return 0.0
    lower, upper = BOUNDS_MS[index - 1], BOUNDS_MS[index]
    if upper == float("inf"):
        return lower
    return lower + (upper - lower) * (rank - seen) / counts[index]


def subtract(later: Sequence[int], earlier: Sequence[int]) -> list[int]:
    """Return the counts added between two copies of the same histogram's counts."""
    return [after - before for after, before in zip(later, earlier, strict=True)]


class Histogram:
    """Counts of values (ms) per bucket of ``BOUNDS_MS``, and their sum."""

    # ``counts[0]`` counts zeros: a hot path may increment it directly instead of add(0).
    __slots__ = ("counts", "sum_ms")

    def __init__(self) -> None:
        self.counts = [0] * len(BOUNDS_MS)
        self.sum_ms = 0.0

    def add(self, ms: float) -> None:
        """Count one value, in milliseconds."""
        self.counts[bisect_left(BOUNDS_MS, ms)] += 1
        self.sum_ms += ms

    @property
    def count(self) -> int:
        """Return how many values were counted."""
        return sum(self.counts)

    def percentile(self, q: float, since: Sequence[int] | None = None) -> float | None:
        """Estimate the ``q``-quantile, of every value or of those counted after ``since``.

        ``since`` is an earlier ``counts_copy()``: the quantile of one interval needs no
        second histogram on the hot path.
        """
        return quantile(self.counts if since is None else subtract(self.counts, since), q)

    def counts_copy(self) -> list[int]:
        """Return a copy of the per-bucket counts."""
        return list(self.counts)

    def copy(self) -> Histogram:
        """Return an independent copy (to summarise outside the lock that guards this one)."""
        other = Histogram()
        other.counts = self.counts_copy()
        other.sum_ms = self.sum_ms
        return other

    def buckets(self) -> list[tuple[float, int]]:
        """Return ``(upper bound in ms, cumulative count)`` per bucket, ending with +inf."""
        cumulative = 0
        pairs = []
        for bound, count in zip(BOUNDS_MS, self.counts, strict=True):
            cumulative += count
            pairs.append((bound, cumulative))
        return pairs

    def summary(self) -> dict[str, Any]:
        """Return a JSON-ready dict: count, sum, p50, p95, p99 and cumulative buckets."""
        return {
            "count": self.count,
            "sum": round(self.sum_ms, 3),
            "p50": _rounded(self.percentile(0.5)),
            "p95": _rounded(self.percentile(0.95)),
            "p99": _rounded(self.percentile(0.99)),
            "buckets": [
                ["+Inf" if bound == float("inf") else bound, count]
                for bound, count in self.buckets()
            ],
        }


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


# What each history point holds, in this order; to_points() names them.
POINT_KEYS = (
    "t",  # wall-clock start of the slot, whole seconds, a multiple of the interval
    "in_use",  # most connections in use at once during the slot
    "idle",  # idle connections at its end
    "waiting",  # most borrowers waiting at once during the slot
    "borrows_per_s",  # getconn() calls per second, served or not
    "wait_p95_ms",  # p95 of the slot's waits, None without any
    "hold_ms",  # mean time a connection returned in the slot was held, None without any
    "timeouts",  # PoolTimeout
    "too_many",  # TooManyRequests
    "errors",  # every failed getconn() (timeouts and too_many included)
    "lost",  # connections that failed their check on borrow
    "returns_bad",  # connections returned broken, or that failed their reset
    "reclaimed",  # connections of threads that exited without returning them
    "leaked",  # borrows held past leak_timeout
    "django_requests",  # Django requests that borrowed (counted at the request's end)
    "request_borrows",  # borrows those requests made: one each, unless release="transaction"
    "held_seen",  # borrowed connections seen when the slot closed ...
    "busy_seen",  # ... and of those, how many were running a query: held time vs query time
)

# The points' counts of events, each the difference of a cumulative total over the slot.
_COUNTED = POINT_KEYS[7:]
# The cumulative totals a pool hands to History.sample(): those, plus getconn() calls and
# returns with the sum of their hold times, for the rates and means.
TOTALS = ("requests", *_COUNTED, "returns", "hold_ms")


class Activity(NamedTuple):
    """What a pool reads, under its lock, to close a history slot."""

    in_use_peak: int
    waiting_peak: int
    in_use: int
    idle: int
    waiting: int
    totals: Mapping[str, float]  # cumulative, keyed by TOTALS
    waits: Sequence[int]  # the wait histogram's cumulative counts


class History:
    """A ring of the last ``size`` slots of ``interval_s`` seconds of a pool's activity.

    Slots start at wall-clock multiples of the interval, so that the points of several
    processes line up. Sampling is lazy: the pool calls ``sample()`` when its monotonic
    clock passes ``next_due``; slots that ended without a sample become quiet points, so the
    series has no holes.
    """

    __slots__ = ("interval_s", "next_due", "_rows", "_wall", "_t", "_start", "_last", "_waits")

    def __init__(
        self,
        interval_s: int = 10,
        size: int = 360,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.interval_s = interval_s
        self._rows: deque[tuple] = deque(maxlen=size)
        self._wall = wall
        now, wall_now = clock(), wall()
        self._t = int(wall_now // interval_s * interval_s)  # the current slot's start
        self._start = now - (wall_now - self._t)  # the same moment on the monotonic clock
        self.next_due = self._start + interval_s
        self._last: dict[str, float] = dict.fromkeys(TOTALS, 0)
        self._waits: Sequence[int] = [0] * len(BOUNDS_MS)

    def sample(self, now: float, activity: Activity) -> None:
        """Close every slot that ended by ``now`` (monotonic); do nothing before ``next_due``."""
        if now < self.next_due:
            return
        self._rows.append(self._close_slot(activity))
        missed = int((now - self.next_due) // self.interval_s)
        # Nothing was sampled during those slots, so nothing happened: the state held.
        quiet = (activity.in_use, activity.idle, activity.waiting, 0.0, None, None)
        quiet += (0,) * len(_COUNTED)
        first = max(missed - self._rows.maxlen, 0) + 1  # older ones would roll out at once
        for slot in range(first, missed + 1):
            self._rows.append((self._t + slot * self.interval_s, *quiet))
        self._start += (missed + 1) * self.interval_s
        self.next_due = self._start + self.interval_s
        # From the wall clock again, so that a step of the system time shows in ``t``.
        since_start = now - self._start
        self._t = int(round((self._wall() - since_start) / self.interval_s) * self.interval_s)

    def _close_slot(self, activity: Activity) -> tuple:
        """Return the current slot's row and remember the totals it ends with."""
        totals = activity.totals
        delta = {key: totals[key] - self._last[key] for key in self._last}
        waits = subtract(activity.waits, self._waits)
        self._last = {key: totals[key] for key in TOTALS}
        self._waits = list(activity.waits)
        returns = delta["returns"]
        return (
            self._t,
            activity.in_use_peak,
            activity.idle,
            activity.waiting_peak,
            round(delta["requests"] / self.interval_s, 3),
            _rounded(quantile(waits, 0.95)),
            round(delta["hold_ms"] / returns, 3) if returns else None,
            *(int(delta[key]) for key in _COUNTED),
        )

    def rows(self) -> list[tuple]:
        """Return the points as tuples in ``POINT_KEYS`` order, oldest first (a cheap copy)."""
        return list(self._rows)

    def points(self) -> list[dict[str, Any]]:
        """Return the points as fresh dicts, oldest first."""
        return to_points(self.rows())


def to_points(rows: list[tuple]) -> list[dict[str, Any]]:
    """Turn ``History.rows()`` into JSON-ready dicts keyed by ``POINT_KEYS``."""
    return [dict(zip(POINT_KEYS, row, strict=True)) for row in rows]


class PoolStats:
    """A pool's counters, histograms, peaks and history, updated under the pool's lock.

    Names follow psycopg_pool's ``get_stats()`` where they overlap. The pool's fast path
    keeps direct references to ``counts`` and to the histograms' counts, so that a borrow
    costs no more attribute look-ups than it did before these lived here.
    """

    REQUESTS_NUM = "requests_num"
    REQUESTS_QUEUED = "requests_queued"
    REQUESTS_WAIT_MS = "requests_wait_ms"
    REQUESTS_ERRORS = "requests_errors"
    REQUESTS_TIMEOUTS = "requests_timeouts"
    REQUESTS_TOO_MANY = "requests_too_many"
    CONNECTIONS_NUM = "connections_num"
    CONNECTIONS_ERRORS = "connections_errors"
    CONNECTIONS_LOST = "connections_lost"
    CONNECTIONS_CLOSED = "connections_closed"
    CONNECTIONS_RECLAIMED = "connections_reclaimed"
    CONNECTIONS_LEAKED = "connections_leaked"
    RETURNS_BAD = "returns_bad"
    SESSIONS_RESTORED = "sessions_restored"
    DJANGO_REQUESTS = "django_requests"
    REQUEST_BORROWS = "request_borrows"
    HELD_SEEN = "held_seen"
    BUSY_SEEN = "busy_seen"
    COUNTERS = (
        REQUESTS_NUM,
        REQUESTS_QUEUED,
        REQUESTS_WAIT_MS,
        REQUESTS_ERRORS,
        REQUESTS_TIMEOUTS,
        REQUESTS_TOO_MANY,
        CONNECTIONS_NUM,
        CONNECTIONS_ERRORS,
        CONNECTIONS_LOST,
        CONNECTIONS_CLOSED,
        CONNECTIONS_RECLAIMED,
        CONNECTIONS_LEAKED,
        RETURNS_BAD,
        SESSIONS_RESTORED,
        DJANGO_REQUESTS,
        REQUEST_BORROWS,
        HELD_SEEN,
        BUSY_SEEN,
    )

    __slots__ = ("counts", "waits", "holds", "connects", "history", "peak_in_use", "peak_waiting")

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.counts: Counter[str] = Counter()
        self.waits = Histogram()  # getconn() until lent, or until PoolTimeout
        self.holds = Histogram()  # lent until returned; its sum is usage_ms
        self.connects = Histogram()  # connect() of each new connection; its sum is connections_ms
        self.history = History(clock=clock, wall=wall)
        self.peak_in_use = 0  # since the last history sample
        self.peak_waiting = 0

    def sample(self, now: float, in_use: int, idle: int, waiting: int) -> float:
        """Close the history slots ended by ``now``; return when the next one ends."""
        activity = Activity(
            in_use_peak=max(self.peak_in_use, in_use),
            waiting_peak=max(self.peak_waiting, waiting),
            in_use=in_use,
            idle=idle,
            waiting=waiting,
            totals=self._totals(),
            waits=self.waits.counts,
        )
        self.history.sample(now, activity)
        self.peak_in_use, self.peak_waiting = in_use, waiting
        return self.history.next_due

    def _totals(self) -> dict[str, float]:
        """Return the cumulative counts History.sample() takes."""
        counts = self.counts
        return {
            "requests": counts[self.REQUESTS_NUM],
            "timeouts": counts[self.REQUESTS_TIMEOUTS],
            "too_many": counts[self.REQUESTS_TOO_MANY],
            "errors": counts[self.REQUESTS_ERRORS],
            "lost": counts[self.CONNECTIONS_LOST],
            "returns_bad": counts[self.RETURNS_BAD],
            "reclaimed": counts[self.CONNECTIONS_RECLAIMED],
            "leaked": counts[self.CONNECTIONS_LEAKED],
            "django_requests": counts[self.DJANGO_REQUESTS],
            "request_borrows": counts[self.REQUEST_BORROWS],
            "held_seen": counts[self.HELD_SEEN],
            "busy_seen": counts[self.BUSY_SEEN],
            "returns": self.holds.count,
            "hold_ms": self.holds.sum_ms,
        }

    def counters(self) -> dict[str, int]:
        """Return the counters and the connect and hold time sums, in whole numbers."""
        counters = {
            "connections_ms": round(self.connects.sum_ms),
            "usage_ms": round(self.holds.sum_ms),
        }
        for key in self.COUNTERS:
            counters[key] = round(self.counts[key])
        return counters

    def copy(self) -> tuple[Histogram, Histogram, Histogram, list[tuple]]:
        """Return copies of what a snapshot summarises, to work on outside the pool's lock."""
        return self.waits.copy(), self.holds.copy(), self.connects.copy(), self.history.rows()

    def sections(
        self, copies: tuple[Histogram, Histogram, Histogram, list[tuple]]
    ) -> dict[str, Any]:
        """Return the snapshot's latency and history sections from ``copy()``'s result."""
        waits, holds, connects, rows = copies
        return {
            "wait_ms": waits.summary(),
            "hold_ms": holds.summary(),
            "connect_ms": connects.summary(),
            "history": {"interval_s": self.history.interval_s, "points": to_points(rows)},
        }
