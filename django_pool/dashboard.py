"""What the admin dashboard shows, worked out from snapshots: cards, gauges, charts, tables.

Pure functions: no request, no database, no clock of their own. The page renders what
``build()`` returns and the JSON endpoint returns the same dict, so the page's script only
redraws what the server computed, and the page without script shows the same.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import datetime, tzinfo
from typing import Any

from .health import OK, WARNING, verdict

# The charts' coordinate system (SVG viewBox units); the page scales it to its width.
WIDTH, HEIGHT = 320, 120
# The plot area inside it: room on the left for the value labels, below for the times.
LEFT, RIGHT, TOP, BOTTOM = 34, WIDTH - 6, 8, HEIGHT - 18
# The charts cover the last hour, and at least 10 minutes so a young pool's first points
# are not squeezed against the right edge.
LONGEST_SPAN_S, SHORTEST_SPAN_S = 3600, 600
# Time axis steps, the first that gives at most this many labels.
_TIME_STEPS_S = (60, 120, 300, 600, 900, 1200, 1800)
_MAX_TIME_LABELS = 6
# Half the width of an "HH:MM" label in viewBox units, at the page's 10-unit font.
_LABEL_HALF_WIDTH = 14

# (chart, title, unit, what the last point is, series): series are (key, label); "max" is
# the pool's max_size. The last point is the last closed history slot, not this moment: its
# caption says so, or a peak of 4 beside "2 in use" would read as a contradiction.
CHARTS: tuple[tuple[str, str, str, str, tuple[tuple[str, str], ...]], ...] = (
    (
        "in_use",
        "In use against max",
        "",
        "peak, last {interval} s",
        (("in_use", "in use"), ("max", "max_size")),
    ),
    ("waiting", "Waiting borrowers", "", "peak, last {interval} s", (("waiting", "waiting"),)),
    ("wait_p95_ms", "Wait p95 (ms)", "ms", "last {interval} s", (("wait_p95_ms", "wait p95"),)),
    (
        "borrows_per_s",
        "Borrows per second",
        "/s",
        "last {interval} s",
        (("borrows_per_s", "borrows/s"),),
    ),
    ("errors", "Failed borrows", "", "last {interval} s", (("errors", "errors"),)),
)

# The counters a card shows: (field, label, key in snapshot["stats"]).
COUNTERS = (
    ("requests_num", "borrows", "requests_num"),
    ("timeouts", "timeouts", "requests_timeouts"),
    ("errors", "failed borrows", "requests_errors"),
    ("connect_errors", "connect errors", "connections_errors"),
    ("lost", "lost", "connections_lost"),
    ("returns_bad", "returned broken", "returns_bad"),
    ("reclaimed", "reclaimed", "connections_reclaimed"),
    ("leaked", "leaked", "connections_leaked"),
    ("sessions_restored", "sessions restored", "sessions_restored"),
    # Django requests that borrowed, and their borrows: one each unless release="transaction".
    ("django_requests", "requests", "django_requests"),
    ("request_borrows", "request borrows", "request_borrows"),
)

# The latency histograms a card shows, and their percentiles.
LATENCIES = (("wait", "wait_ms"), ("hold", "hold_ms"), ("connect", "connect_ms"))
PERCENTILES = ("p50", "p95", "p99")

PROCESS_COLUMNS = ("host", "pid", "alias", "in use / max", "waiting", "wait p95", "health", "age")
SERVER_COLUMNS = (
    "host",
    "pid",
    "alias / application",
    "database",
    "user",
    "connections",
    "states",
    "longest",
)


def build(
    local: dict[str, dict[str, Any]],
    *,
    processes: list[dict[str, Any]] | None,
    servers: list[dict[str, Any]] | None,
    now: float,
    tz: tzinfo,
    host: str,
    pid: int,
    have: frozenset[str] = frozenset(),
) -> dict[str, Any]:
    """Return everything the dashboard shows, JSON-ready.

    ``have`` lists the ``charts_key`` of the charts the page already shows: those cards come
    without ``charts``, which only change when a history slot closes.

    ``local`` is this process's snapshots by alias; ``processes`` what
    ``publish.process_snapshots()`` returns (None without a cache); ``servers`` one
    ``{"where", "aliases", "view"}`` per server, ``view`` from ``server.server_view()`` or
    ``{"error": text}`` (None when the server view was not asked for).
    """
    counts = process_counts(processes) if processes is not None else {}
    loads = {}
    for server in servers or ():
        view = server["view"]
        if "error" not in view:
            load = {"max_connections": view["max_connections"], "connections": view["connections"]}
            loads.update(dict.fromkeys(server["aliases"], load))
    cards = []
    for alias, snapshot in sorted(local.items()):
        health = verdict(snapshot, server=loads.get(alias), processes=counts.get(alias))
        cards.append(card(alias, snapshot, health, tz, have))
    return {
        "taken_at": now,
        "updated": clock(now, tz, seconds=True),
        "time_zone": str(tz),
        "host": host,
        "pid": pid,
        "chart_box": {
            "width": WIDTH,
            "height": HEIGHT,
            "left": LEFT,
            "right": RIGHT,
            "top": TOP,
            "bottom": BOTTOM,
            "middle_x": (LEFT + RIGHT) / 2,
            "middle_y": (TOP + BOTTOM) / 2,
        },
        "cards": cards,
        "processes": None if processes is None else process_table(processes, now, host, pid),
        "servers": None if servers is None else [server_section(s, local, counts) for s in servers],
    }


def card(
    alias: str,
    snapshot: dict[str, Any],
    health: dict[str, Any],
    tz: tzinfo,
    have: frozenset[str] = frozenset(),
) -> dict:
    """Return one pool's card: health, numbers, gauges, server state, options and charts."""
    key = charts_key(alias, snapshot)
    stats, config = snapshot["stats"], snapshot["config"]
    server = server_state(snapshot, tz)
    server_fields = {
        "server": server["text"],
        "server_since": server["since"] or "–",
        "server_error": server["last_error"] or "–",
    }
    fields = {
        "in_use": stats["pool_in_use"],
        "idle": stats["pool_available"],
        "size": stats["pool_size"],
        "min_size": stats["pool_min"],
        "max_size": stats["pool_max"],
        "waiting": stats["requests_waiting"],
        **{field: stats[key] for field, _, key in COUNTERS},
        **{f"{name}_{p}": ms(snapshot[key][p]) for name, key in LATENCIES for p in PERCENTILES},
    }
    return {
        "alias": alias,
        "counters": [
            {"field": field, "label": label, "value": str(stats[key])}
            for field, label, key in COUNTERS
        ],
        "latencies": [
            {
                "name": name,
                "cells": [
                    {"field": f"{name}_{p}", "value": fields[f"{name}_{p}"]} for p in PERCENTILES
                ],
            }
            for name, _ in LATENCIES
        ],
        "health": {
            "status": health["status"],
            "reasons": list(health["reasons"]),
            "recommendations": list(health["recommendations"]),
        },
        "fields": {name: str(value) for name, value in {**fields, **server_fields}.items()},
        "gauges": gauges(stats, config),
        "server": server,
        "config": [[key, _option(value)] for key, value in config.items()],
        "charts_key": key,
        # Left out when the page already draws these: the polylines are most of a poll.
        "charts": {} if key and key in have else charts(snapshot, tz),
    }


def charts_key(alias: str, snapshot: dict[str, Any]) -> str:
    """Return what names a pool's charts: they change only when a history slot closes."""
    points = snapshot["history"]["points"]
    if not points:
        return ""  # drawn up to this moment: never the same twice
    max_size = snapshot["config"]["max_size"]
    return f"{alias}:{points[0]['t']}:{points[-1]['t']}:{len(points)}:{max_size}"


def gauges(stats: dict[str, Any], config: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Return the bars' extents in percent: in use then idle out of max_size, and waiting."""
    size = max(stats["pool_max"], 1)
    in_use = _percent(stats["pool_in_use"], size)
    idle = min(_percent(stats["pool_available"], size), 100.0 - in_use)
    # Waiting has no ceiling unless max_waiting sets one; against max_size, a queue as
    # long as the pool is wide fills the bar.
    queue = max(config.get("max_waiting") or stats["pool_max"], stats["requests_waiting"], 1)
    return {
        "in_use": {"x": 0.0, "width": in_use},
        "idle": {"x": in_use, "width": idle},
        "waiting": {"x": 0.0, "width": _percent(stats["requests_waiting"], queue)},
    }


def server_state(snapshot: dict[str, Any], tz: tzinfo) -> dict[str, Any]:
    """Return whether the pool reaches its server, since when it does not, and the error."""
    stats = snapshot["stats"]
    down_ms, error = stats["server_down_ms"], stats["last_connect_error"]
    down = bool(down_ms) or error is not None
    since = None
    if down_ms:
        since = _datetime(snapshot["taken_at"] - down_ms / 1000.0, tz).strftime("%Y-%m-%d %H:%M:%S")
    return {
        "up": not down,
        "text": "down" if down else "up",
        "since": since or "",
        "last_error": error or "",
        # "host=... port=... dbname=... user=...": what the pool connects to, never a password.
        "where": snapshot.get("server") or "",
    }


# Charts end with the last closed history slot, so they change only when one closes (every
# 10 s): the polls in between, from however many open dashboards, reuse them. Keyed by pool
# and by the slots shown; closed slots never change.
_charts_memo: dict[tuple, dict[str, dict[str, Any]]] = {}
_MEMO_SIZE = 64


def charts(snapshot: dict[str, Any], tz: tzinfo) -> dict[str, dict[str, Any]]:
    """Return every chart of the snapshot's history, keyed by chart name."""
    history = snapshot["history"]
    points = history["points"]
    if not points:
        return _charts(snapshot, tz, snapshot["taken_at"])
    key = (
        snapshot.get("name"),
        snapshot.get("pid"),
        points[0]["t"],
        points[-1]["t"],
        len(points),
        snapshot["config"]["max_size"],
        history["interval_s"],
        str(tz),
    )
    memo = _charts_memo.get(key)
    if memo is None:
        if len(_charts_memo) >= _MEMO_SIZE:
            _charts_memo.clear()
        memo = _charts_memo[key] = _charts(snapshot, tz, points[-1]["t"] + history["interval_s"])
    return memo


def _charts(snapshot: dict[str, Any], tz: tzinfo, now: float) -> dict[str, dict[str, Any]]:
    """Return the charts of the snapshot's history up to ``now``."""
    points = snapshot["history"]["points"]
    oldest = points[0]["t"] if points else now
    span = min(max(now - oldest, SHORTEST_SPAN_S), LONGEST_SPAN_S)
    start = now - span
    shown = [point for point in points if point["t"] >= start]
    x_ticks = time_ticks(start, now, tz)
    max_size = snapshot["config"]["max_size"]
    interval = snapshot["history"]["interval_s"]
    # Each point stands for a whole slot (a peak, a rate over it): drawn as a step from the
    # slot's start to its end, a single point is a visible line and a spike has its width.
    times = [edge for p in shown for edge in (p["t"], min(p["t"] + interval, now))]
    result = {}
    for name, title, unit, latest, series in CHARTS:
        values = {key: _series(shown, key, max_size) for key, _ in series}
        top = nice_ceiling(max((v for vs in values.values() for v in vs), default=0.0))
        result[name] = {
            "title": title,
            "unit": unit,
            "latest": _latest(values[series[0][0]], unit, latest.format(interval=interval)),
            "empty": not shown,
            "y_ticks": value_ticks(top),
            "x_ticks": x_ticks,
            "series": [
                {
                    "key": key,
                    "label": label,
                    "points": polyline(
                        # The max line spans the whole chart, data or not.
                        [start, now] if key == "max" else times,
                        [max_size, max_size]
                        if key == "max"
                        else [v for v in values[key] for _ in (0, 1)],
                        start,
                        now,
                        top,
                    ),
                }
                for key, label in series
            ],
        }
    return result


def polyline(times: list[float], values: list[float], start: float, end: float, top: float) -> str:
    """Return an SVG ``points`` attribute for values at times, in the plot area."""
    span = max(end - start, 1e-9)
    coords = (
        (
            LEFT + (RIGHT - LEFT) * (t - start) / span,
            BOTTOM - (BOTTOM - TOP) * min(value / top, 1.0),
        )
        for t, value in zip(times, values, strict=True)
    )
    return " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)


def nice_ceiling(value: float) -> float:
    """Return the smallest of 1, 2, 2.5, 5 times a power of ten that is >= value (at least 1)."""
    if value <= 1:
        return 1.0
    power = 10.0 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * power:
            return step * power
    return 10 * power  # not reached: value <= 10 * power by the choice of power


def value_ticks(top: float) -> list[dict[str, Any]]:
    """Return the value axis: 0, half and the top, at their heights (the title has the unit)."""
    ticks = []
    for value in (0.0, top / 2, top):
        y = BOTTOM - (BOTTOM - TOP) * value / top
        ticks.append({"y": round(y, 1), "label": _short_number(value)})
    return ticks


def time_ticks(start: float, end: float, tz: tzinfo) -> list[dict[str, Any]]:
    """Return the time axis: wall-clock minutes at a round step, as HH:MM at their x."""
    span = max(end - start, 1e-9)
    step = next((s for s in _TIME_STEPS_S if span / s <= _MAX_TIME_LABELS), _TIME_STEPS_S[-1])
    # Round minutes of the wall clock in the shown time zone, so labels read 10:15, 10:20.
    offset = _datetime(start, tz).utcoffset()
    shift = offset.total_seconds() if offset else 0.0
    first = math.ceil((start + shift) / step) * step - shift
    ticks = []
    t = first
    while t <= end:
        x = LEFT + (RIGHT - LEFT) * (t - start) / span
        ticks.append({"x": round(x, 1), "label": clock(t, tz), "anchor": _anchor(x)})
        t += step
    return ticks


def _anchor(x: float) -> str:
    """Return how a time label at x aligns, so that one at an edge stays inside the chart."""
    if x > RIGHT - _LABEL_HALF_WIDTH:
        return "end"
    if x < LEFT + _LABEL_HALF_WIDTH:
        return "start"
    return "middle"


def process_counts(processes: Iterable[dict[str, Any]]) -> dict[str, int]:
    """Return how many processes publish a pool for each alias."""
    counts: dict[str, int] = {}
    for entry in processes:
        for alias in entry["pools"]:
            counts[alias] = counts.get(alias, 0) + 1
    return counts


def process_table(
    processes: list[dict[str, Any]], now: float, host: str, pid: int
) -> dict[str, Any]:
    """Return one row per published pool of every process, this process's marked."""
    rows = []
    for entry in processes:
        me = (entry["host"], entry["pid"]) == (host, pid)
        age = "now" if me else f"{max(now - entry['published_at'], 0.0):.0f} s"
        for alias, snapshot in entry["pools"].items():
            stats = snapshot["stats"]
            # Judged by its publisher (publish.local_entry), or here for an older one's entry.
            status = snapshot.get("status") or verdict(snapshot)["status"]
            rows.append(
                {
                    "me": me,
                    "cells": [
                        _cell(entry["host"]),
                        _cell(f"{entry['pid']} (this one)" if me else entry["pid"]),
                        _cell(alias),
                        _cell(f"{stats['pool_in_use']}/{stats['pool_max']}", numeric=True),
                        _cell(stats["requests_waiting"], numeric=True),
                        _cell(ms(snapshot["wait_ms"]["p95"]), numeric=True),
                        {**_cell(status), "status": status},
                        _cell(age, numeric=True),
                    ],
                }
            )
    return {"columns": list(PROCESS_COLUMNS), "rows": rows}


def server_section(
    server: dict[str, Any], local: dict[str, dict[str, Any]], counts: dict[str, int]
) -> dict[str, Any]:
    """Return one server's connections by process, and whether the pools fit in it."""
    view = server["view"]
    section: dict[str, Any] = {"where": server["where"], "aliases": list(server["aliases"])}
    if "error" in view:
        return {**section, "error": view["error"]}
    capacity = []
    for alias in server["aliases"]:
        if alias in local:
            max_size = local[alias]["config"]["max_size"]
            capacity.append(_capacity(alias, max_size, counts.get(alias), view))
    rows = [_connection_row(process) for process in view["processes"]]
    return {
        **section,
        "error": "",
        "summary": (
            f"max_connections {view['max_connections']} ({view['reserved']} reserved), "
            f"client connections in use {view['connections']}"
        ),
        "capacity": capacity,
        "table": {"columns": list(SERVER_COLUMNS), "rows": rows},
    }


def _capacity(
    alias: str, max_size: int, processes: int | None, view: dict[str, Any]
) -> dict[str, Any]:
    """Return the line "processes × max_size against max_connections" of one alias."""
    count = processes or 1
    total, limit = count * max_size, view["max_connections"]
    who = f"{count} process{'es' * (count != 1)}" if processes else "this process alone"
    text = (
        f"{alias}: {who} × max_size {max_size} = {total} "
        f"{'exceeds' if total > limit else 'within'} max_connections {limit}"
    )
    return {"text": text, "status": WARNING if total > limit else OK}


def _connection_row(process: dict[str, Any]) -> dict[str, Any]:
    ours = process["pid"] is not None
    states = process["states"]
    # Idle in a transaction holds locks and a snapshot, and blocks vacuum: the one state
    # that needs somebody's attention whatever its age.
    stuck = any(state.startswith("idle in transaction") for state in states)
    longest = process["longest"]
    # pg_stat_activity is cluster-wide: other databases' clients are listed too.
    databases = sorted({backend["database"] or "" for backend in process["backends"]})
    users = sorted({backend["user"] or "" for backend in process["backends"]})
    return {
        "flagged": stuck,
        "cells": [
            _cell(process["host"]),
            _cell("" if process["pid"] is None else process["pid"]),
            _cell(process["alias"] if ours else process["application_name"]),
            _cell(", ".join(databases)),
            _cell(", ".join(users)),
            _cell(process["connections"], numeric=True),
            {
                **_cell(", ".join(f"{state} {n}" for state, n in states.items())),
                **({"status": WARNING} if stuck else {}),
            },
            _cell(f"{longest['state']} {longest['seconds']:.1f} s" if longest else ""),
        ],
    }


def clock(timestamp: float, tz: tzinfo, *, seconds: bool = False) -> str:
    """Return a wall-clock time of day, HH:MM (or HH:MM:SS)."""
    return _datetime(timestamp, tz).strftime("%H:%M:%S" if seconds else "%H:%M")


def ms(value: float | None) -> str:
    """Return milliseconds as people read them ("–" for none)."""
    if value is None:
        return "–"
    return f"{value:.0f} ms" if value >= 10 else f"{value:.1f} ms"


def _datetime(timestamp: float, tz: tzinfo) -> datetime:
    return datetime.fromtimestamp(timestamp, tz)


def _series(points: list[dict[str, Any]], key: str, max_size: int) -> list[float]:
    if key == "max":
        return [float(max_size)]
    # A slot without borrows has no wait p95: on the chart it waited for nothing.
    return [float(point[key] or 0) for point in points]


def _latest(values: list[float], unit: str, what: str) -> str:
    if not values:
        return ""
    return f"{what}: {_number(values[-1])}" + (" " + unit if unit else "")


def _number(value: float) -> str:
    if value == int(value):
        return str(int(value))
    return f"{value:.1f}"


def _short_number(value: float) -> str:
    # The value axis has room for about five characters: 2500 reads as 2.5k.
    if value >= 1000:
        return _number(value / 1000) + "k"
    return _number(value)


def _percent(part: float, whole: float) -> float:
    return round(min(max(part / whole, 0.0), 1.0) * 100.0, 1)


def _option(value: Any) -> str:
    return "None" if value is None else str(value)


def _cell(value: Any, *, numeric: bool = False) -> dict[str, Any]:
    return {"text": str(value), "numeric": numeric}
