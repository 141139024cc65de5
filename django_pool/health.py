"""A pool's health from its snapshot: ok, warning or critical, with reasons and the fix.

Pure functions over ``ConnectionPool.snapshot()`` (or a published copy of it), so any
process can judge any other's pool. They look at the last 5 minutes of history.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from typing import Any

from .connect_errors import diagnose
from .options import REQUEST

OK, WARNING, CRITICAL = "ok", "warning", "critical"
_RANK = {OK: 0, WARNING: 1, CRITICAL: 2}

# History points judged: 30 points of 10 s are the last 5 minutes.
WINDOW_POINTS = 30
WINDOW_TEXT = "the last 5 min"
# Borrowers waiting this long (p95) while every connection is in use need more connections.
SLOW_WAIT_P95_MS = 50.0
# A suggested max_size covers the busiest slot's concurrency times this.
HEADROOM = 1.25
# Connections held this many times longer than they run queries are held across other work
# (an external call, rendering): worth release="transaction", once enough were seen.
HELD_PER_QUERY = 4.0
MIN_HELD_SEEN = 20

# Share of the server's max_connections the processes of a pool may take together: the
# rest is for superusers, migrations, psql and other clients.
SERVER_SHARE = 0.9

# Counts in the history points of connections lost: (key, noun, what happened, advice).
_LOSSES = (
    (
        "lost",
        "connection",
        "failed the check on borrow",
        "connections die while idle: look for server restarts, idle_session_timeout, or a "
        "firewall or PgBouncer closing idle connections, and keep max_idle below that",
    ),
    (
        "returns_bad",
        "connection",
        "returned broken",
        "connections break while borrowed: look for server restarts and terminated backends "
        "in the server's log",
    ),
    (
        "reclaimed",
        "connection",
        "reclaimed from threads that exited without returning them",
        "some thread ends without giving its connection back: the WARNING 'reclaiming a "
        "connection' in the log says where it was borrowed",
    ),
    (
        "leaked",
        "borrow",
        "held past leak_timeout",
        "some code holds its connection too long: the WARNING 'past leak_timeout' in the "
        "log says where it was borrowed",
    ),
)


def verdict(
    snapshot: dict[str, Any], server: dict[str, int] | None = None, processes: int | None = None
) -> dict[str, Any]:
    """Judge a pool's snapshot; ``server`` and ``processes`` add the server-wide rules.

    ``server`` is ``{"max_connections": int, "connections": int}`` (connections in use on
    the whole server); ``processes`` is how many processes run this pool.
    """
    window = _Window(snapshot)
    findings = [
        *_server_down(snapshot),
        *_exhausted(window, server, processes),
        *_slow_waits(window, server, processes),
        *_oversubscribed(window, server, processes),
        *_losses(window),
        *_held_between_queries(window),
    ]
    if not findings:
        return {"status": OK, "reasons": [window.summary()], "recommendations": []}
    recommendations = []
    for _, _, recommendation in findings:
        if recommendation and recommendation not in recommendations:
            recommendations.append(recommendation)
    status = worst(status for status, _, _ in findings)
    reasons = [reason for _, reason, _ in findings]
    return {
        "status": status,
        "reasons": [window.summary(), *reasons] if status == OK else reasons,
        "recommendations": recommendations,
    }


def worst(verdicts: Iterable[dict[str, Any] | str]) -> str:
    """Return the worst status among verdicts (or statuses); "ok" when there are none."""
    statuses = [item if isinstance(item, str) else item["status"] for item in verdicts]
    return max(statuses, key=_RANK.__getitem__, default=OK)


class _Window:
    """The last 5 minutes of a snapshot's history, summed up."""

    def __init__(self, snapshot: dict[str, Any]) -> None:
        self.snapshot = snapshot
        self.max_size = snapshot["config"]["max_size"]
        self.points = snapshot["history"]["points"][-WINDOW_POINTS:]
        in_use = [point["in_use"] for point in self.points]
        self.peak_in_use = max(in_use, default=snapshot["stats"]["pool_in_use"])
        self.wait_p95_ms = _weighted_p95(self.points)
        # Little's law: connections busy at once = borrows per second × seconds held. The
        # busiest slot sizes the pool; failed borrows count, they are demand not served.
        self.concurrency = max(
            (p["borrows_per_s"] * p["hold_ms"] / 1000.0 for p in self.points if p["hold_ms"]),
            default=0.0,
        )

    def total(self, key: str) -> int:
        return sum(point[key] for point in self.points)

    def saturated(self) -> bool:
        return self.peak_in_use >= self.max_size

    def slow(self) -> bool:
        """Return whether borrowers waited long because every connection was in use."""
        return (
            self.wait_p95_ms is not None
            and self.wait_p95_ms >= SLOW_WAIT_P95_MS
            and self.saturated()
        )

    def usage(self) -> str:
        return f"{self.peak_in_use}/{self.max_size} in use"

    def summary(self) -> str:
        if not self.points:
            return f"no history yet, {self.usage()}"
        if self.wait_p95_ms is None:
            return f"no borrows over {WINDOW_TEXT}, peak {self.usage()}"
        return f"p95 wait {_ms(self.wait_p95_ms)} over {WINDOW_TEXT}, peak {self.usage()}"


def _weighted_p95(points: list[dict[str, Any]]) -> float | None:
    """Estimate the window's p95 wait from the slots' p95s, weighted by their borrows."""
    # Exact only within a slot; across slots, the p95 below which 95% of the borrows'
    # slots lie. A single slow slot among busy quiet ones does not raise it, a slow minute does.
    slots = sorted(
        (p["wait_p95_ms"], p["borrows_per_s"]) for p in points if p["wait_p95_ms"] is not None
    )
    if not slots:
        return None
    total = sum(weight for _, weight in slots)
    seen = 0.0
    for p95, weight in slots:
        seen += weight
        if seen >= 0.95 * total:
            return p95
    return slots[-1][0]


def _ms(value: float) -> str:
    return f"{value:.0f} ms" if value >= 1 or value == 0 else f"{value:.2f} ms"


# The rules: each returns a list of (status, reason, recommendation or None).


def _server_down(snapshot: dict[str, Any]) -> list[tuple[str, str, str | None]]:
    stats = snapshot["stats"]
    if not stats["server_down_ms"] and stats["last_connect_error"] is None:
        return []
    down_s = stats["server_down_ms"] / 1000.0
    since = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(snapshot["taken_at"] - down_s))
    error = stats["last_connect_error"]
    # The advice depends on the error: a refused login needs another password, not a restart.
    diagnosis = diagnose(error, where=snapshot.get("server") or "")
    reason = f"{diagnosis.what} for {down_s:.0f} s (since {since}); last error: {error}"
    return [(CRITICAL, reason, diagnosis.advice)]


def _exhausted(
    window: _Window, server: dict[str, int] | None, processes: int | None
) -> list[tuple[str, str, str | None]]:
    timeouts, refused = window.total("timeouts"), window.total("too_many")
    if not timeouts and not refused:
        return []
    failed = []
    if timeouts:
        failed.append(f"{timeouts} borrow{'s' * (timeouts != 1)} timed out")
    if refused:
        max_waiting = window.snapshot["config"]["max_waiting"]
        failed.append(f"{refused} refused (max_waiting={max_waiting})")
    reason = f"{' and '.join(failed)} over {WINDOW_TEXT}, peak {window.usage()}"
    if window.slow():
        recommendation = None  # the slow-wait rule's says it, with the p95
    elif window.saturated():
        recommendation = _raise_max_size(reason, window, server, processes)
    else:
        connect_p95 = window.snapshot["connect_ms"]["p95"]
        recommendation = (
            "connections are slow to open"
            + (f" (connect p95 {_ms(connect_p95)})" if connect_p95 is not None else "")
            + ": check the server's load and the network"
        )
    return [(CRITICAL, reason, recommendation)]


def _slow_waits(
    window: _Window, server: dict[str, int] | None, processes: int | None
) -> list[tuple[str, str, str | None]]:
    if not window.slow():
        return []
    reason = f"p95 wait {_ms(window.wait_p95_ms)} over {WINDOW_TEXT} with {window.usage()}"
    return [(WARNING, reason, _raise_max_size(reason, window, server, processes))]


def _raise_max_size(
    reason: str, window: _Window, server: dict[str, int] | None, processes: int | None
) -> str:
    """Recommend a max_size for the busiest slot, within what the server has room for."""
    size = max(math.ceil(window.concurrency * HEADROOM), window.max_size + 1)
    if server is None:
        return f"{reason}: raise max_size to ~{size}"
    allows = (
        f"the server allows {server['max_connections']} connections "
        f"and {server['connections']} are in use"
    )
    count = processes or 1
    room = (server["max_connections"] - server["connections"]) // count
    if (size - window.max_size) <= room:
        return f"{reason}: raise max_size to ~{size}; {allows}"
    shared = f" shared by {count} processes" if count > 1 else ""
    if room <= 0:
        return (
            f"{reason}: ~{size} connections would be needed, but {allows}{shared}: "
            "raise max_connections, or put PgBouncer in front"
        )
    return (
        f"{reason}: raise max_size to ~{window.max_size + room} (~{size} would be needed, but "
        f"{allows}{shared}); for more, raise max_connections or put PgBouncer in front"
    )


def _oversubscribed(
    window: _Window, server: dict[str, int] | None, processes: int | None
) -> list[tuple[str, str, str | None]]:
    if server is None:
        return []
    count = processes or 1
    total, limit = count * window.max_size, server["max_connections"]
    if total <= limit:
        return []
    reason = (
        f"{count} process{'es' * (count != 1)} × max_size {window.max_size} = {total} "
        f"exceeds the server's max_connections {limit}"
    )
    lower = max(math.floor(limit * SERVER_SHARE / count), 1)
    return [(WARNING, reason, f"{reason}: lower max_size to ~{lower}")]


def _losses(window: _Window) -> list[tuple[str, str, str | None]]:
    findings = []
    for key, noun, what, advice in _LOSSES:
        count = window.total(key)
        if count:
            reason = f"{count} {noun}{'s' * (count != 1)} {what} over {WINDOW_TEXT}"
            findings.append((WARNING, reason, advice))
    return findings


def _held_between_queries(window: _Window) -> list[tuple[str, str, str | None]]:
    """Suggest release="transaction" when connections are held far longer than they work.

    A warning when borrowers also waited (the held connections were missed), else advice.
    """
    if window.snapshot["config"].get("release", REQUEST) != REQUEST:
        return []
    held, busy = window.total("held_seen"), window.total("busy_seen")
    if held < MIN_HELD_SEEN or busy * HELD_PER_QUERY > held:
        return []
    reason = (
        f"borrowed connections were running a query in {busy} of {held} looks over "
        f"{WINDOW_TEXT} ({busy / held:.0%}): they are held across other work"
    )
    advice = (
        'set OPTIONS["pool"]["release"] = "transaction" to give connections back between '
        "transactions (see the README for what it does not carry between queries)"
    )
    return [(WARNING if window.slow() else OK, reason, advice)]
