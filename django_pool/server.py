"""Who is connected to the server, cluster-wide: every process's connections and their states.

django_pool names each server connection it opens ``django_pool:<alias>:<pid>@<host>``
(``backends.postgresql.base.application_name``), so ``pg_stat_activity`` tells which pool
of which process on which host holds it. Other clients are grouped by address and
application name. Query texts are never read.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections

from .logs import describe

_SETTINGS_SQL = """
SELECT current_setting('max_connections')::int,
       current_setting('superuser_reserved_connections')::int,
       coalesce(current_setting('reserved_connections', true)::int, 0)
"""

# Client backends only: autovacuum, WAL senders and the like are not anybody's pool.
# Durations from now(): one clock for every row, the server's.
_ACTIVITY_SQL = """
SELECT pid, datname, usename, application_name, host(client_addr), state,
       greatest(extract(epoch FROM now() - state_change), 0)::float8,
       extract(epoch FROM now() - xact_start)::float8
FROM pg_stat_activity
WHERE backend_type = 'client backend'
ORDER BY pid
"""

# The name may be cut at PostgreSQL's 63 bytes: only a name that still has its "@" is
# trusted for the pid (a cut one could show a prefix of the pid's digits).
_OURS = re.compile(r"django_pool:(?P<alias>.*):(?P<pid>\d+)@(?P<host>.*)", re.DOTALL)
_OURS_CUT = re.compile(r"django_pool:(?P<alias>[^:]*)", re.DOTALL)


def server_view(using: str = DEFAULT_DB_ALIAS) -> dict[str, Any]:
    """Return max_connections and every client connection, one entry per pool or client."""
    connection = connections[using]
    # Close at the end only a connection opened here: a caller's own (in a request, in an
    # atomic block) stays as it was.
    opened_here = connection.connection is None
    try:
        with connection.cursor() as cursor:
            cursor.execute(_SETTINGS_SQL)
            max_connections, superuser_reserved, reserved = cursor.fetchone()
            cursor.execute(_ACTIVITY_SQL)
            rows = cursor.fetchall()
    finally:
        if opened_here:
            connection.close()
    processes = group_backends(rows)
    by_host: Counter[str] = Counter()
    for process in processes:
        by_host[process["host"]] += process["connections"]
    return {
        "max_connections": max_connections,
        "reserved": superuser_reserved + reserved,
        "connections": len(rows),
        "processes": processes,
        "by_host": dict(sorted(by_host.items())),
    }


def server_views(aliases: list[str]) -> list[dict[str, Any]]:
    """Read the view of each server the aliases use, once per server.

    Return ``{"where": "host:port", "aliases": [...], "view": server_view() or {"error"}}``
    per server: the dashboard and ``pool_status`` show the same thing.
    """
    servers: dict[tuple, dict[str, Any]] = {}
    for alias in aliases:
        if alias not in connections.settings:
            continue  # a pool made outside settings.DATABASES: no connection to ask with
        settings = connections[alias].settings_dict
        key = (settings["HOST"], settings["PORT"])
        if key in servers:
            servers[key]["aliases"].append(alias)
            continue
        try:
            view = server_view(alias)
        except DatabaseError as error:
            view = {"error": describe(error)}
        where = f"{settings['HOST'] or 'localhost'}:{settings['PORT'] or 5432}"
        servers[key] = {"where": where, "aliases": [alias], "view": view}
    return list(servers.values())


def parse_application_name(name: str) -> dict[str, Any] | None:
    """Return alias, pid and host from one of our connection names (None if not ours)."""
    match = _OURS.fullmatch(name)
    if match:
        return {"alias": match["alias"], "pid": int(match["pid"]), "host": match["host"]}
    match = _OURS_CUT.match(name)
    if match:
        return {"alias": match["alias"], "pid": None, "host": None}
    return None


def group_backends(rows: list[tuple]) -> list[dict[str, Any]]:
    """Group ``_ACTIVITY_SQL`` rows into one entry per pool (ours) or client (others)."""
    groups: dict[tuple, dict[str, Any]] = {}
    for pid, database, user, name, client_addr, state, in_state, in_xact in rows:
        name = name or ""
        ours = parse_application_name(name)
        if ours and ours["pid"] is not None:
            key = (ours["host"], ours["pid"], ours["alias"], "")
            group = {"host": ours["host"], "pid": ours["pid"], "alias": ours["alias"]}
        else:
            host = client_addr or "local"
            key = (host, 0, "", name)
            group = {"host": host, "pid": None, "alias": ours["alias"] if ours else None}
        if key not in groups:
            groups[key] = {**group, "application_name": name, "client_addr": client_addr}
            groups[key]["backends"] = []
        groups[key]["backends"].append(
            {
                "pid": pid,
                # Without pg_read_all_stats, other users' rows show no state.
                "state": state or "unknown",
                "seconds_in_state": round(in_state or 0.0, 3),
                "xact_seconds": None if in_xact is None else round(max(in_xact, 0.0), 3),
                "database": database,
                "user": user,
            }
        )
    return [_summarize(groups[key]) for key in sorted(groups, key=_sort_key)]


def _sort_key(key: tuple) -> tuple:
    host, pid, alias, name = key
    return (host or "", pid, alias, name)


def _summarize(group: dict[str, Any]) -> dict[str, Any]:
    """Add the connection count, the count per state and the longest non-idle state."""
    backends = sorted(group.pop("backends"), key=lambda b: b["seconds_in_state"], reverse=True)
    states = Counter(backend["state"] for backend in backends)
    # Idle for long is what a pool's connections do; long in any other state (a query, an
    # open transaction) is what one looks for.
    busy = [backend for backend in backends if backend["state"] != "idle"]
    longest = None
    if busy:
        longest = {"state": busy[0]["state"], "seconds": busy[0]["seconds_in_state"]}
    return {
        **group,
        "connections": len(backends),
        "states": dict(sorted(states.items())),
        "longest": longest,
        "backends": backends,
    }
