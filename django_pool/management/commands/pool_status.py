"""``manage.py pool_status``: this process's pools, every process's, the server's connections."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError, connections

from ... import publish, registry
from ...backends.postgresql.base import DatabaseWrapper
from ...conf import get_config
from ...health import CRITICAL, verdict
from ...logs import describe
from ...server import server_views

# The states PostgreSQL reports, in the order a reader scans them; others follow by name.
_STATES = ("active", "idle", "idle in transaction", "idle in transaction (aborted)")


class Command(BaseCommand):
    help = (
        "Show the pools of this process, of every process publishing to DJANGO_POOL['CACHE'], "
        "the server's connections per process, and each pool's health. Without --watch, the "
        "exit status is 2 when any pool is critical, and 0 when all are ok or warning, so "
        "that scripts and probes can use it."
    )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--database", help="Only this alias (default: every pooled alias).")
        parser.add_argument(
            "--json", action="store_true", help="One JSON document (one line per redraw)."
        )
        parser.add_argument(
            "--watch", type=float, metavar="SECONDS", help="Redraw every SECONDS until Ctrl-C."
        )
        # Bounds --watch, for tests.
        parser.add_argument("--iterations", type=int, help=argparse.SUPPRESS)

    def handle(self, *args: Any, **options: Any) -> None:
        watch = options["watch"]
        if watch is not None and watch <= 0:
            raise CommandError("--watch takes a number of seconds greater than 0.")
        aliases = pooled_aliases(options["database"])
        errors = warm_up(aliases)
        if watch is None:
            health = self._show(aliases, errors, options["json"], indent=2)
            _exit_if_critical(health)
        else:
            with contextlib.suppress(KeyboardInterrupt):  # how a watch ends
                self._watch(aliases, errors, options["json"], watch, options["iterations"])

    def _watch(
        self,
        aliases: list[str],
        errors: dict[str, str],
        as_json: bool,
        every: float,
        iterations: int | None,
    ) -> None:
        drawn = 0
        while True:
            if not as_json:
                if self.stdout.isatty():
                    self.stdout.write("\x1b[H\x1b[2J", ending="")  # clear the terminal
                self.stdout.write(f"{time.strftime('%H:%M:%S')}, every {every:g} s (Ctrl-C ends)")
            # JSON: one line per document, so that a reader of the stream can split them.
            self._show(aliases, errors, as_json, indent=None)
            drawn += 1
            if drawn == iterations:
                return
            time.sleep(every)
            errors = {}  # only the first draw follows the borrow that could fail

    def _show(
        self, aliases: list[str], errors: dict[str, str], as_json: bool, indent: int | None
    ) -> dict[str, Any]:
        """Write the status; return the health verdicts by alias."""
        status = gather(aliases)
        if as_json:
            self.stdout.write(json.dumps(status, indent=indent, default=str))
        else:
            self.stdout.write(render(status, errors))
        return status["health"]


def _exit_if_critical(health: dict[str, Any]) -> None:
    # Exit status 2, as monitoring plugins use it for critical; 1 is Django's for a failure.
    critical = [alias for alias, result in health.items() if result["status"] == CRITICAL]
    if critical:
        raise CommandError(f"health is critical for {', '.join(critical)}", returncode=2)


def pooled_aliases(only: str | None = None) -> list[str]:
    """Return the aliases whose ENGINE pools connections (or ``only``, checked)."""
    aliases = [
        alias
        for alias in connections
        if isinstance(connections[alias], DatabaseWrapper)
        and connections[alias].pool_options is not False
    ]
    if only is None:
        return aliases
    if only not in aliases:
        raise CommandError(
            f"database {only!r} is not a pooled alias; pooled: {', '.join(aliases) or 'none'}"
        )
    return [only]


def warm_up(aliases: list[str]) -> dict[str, str]:
    """Borrow and return one connection per alias, so this fresh process has its pools."""
    errors = {}
    for alias in aliases:
        # A copy: the caller's own connection (a shell, a test) is left as it was.
        wrapper = connections[alias].copy()
        try:
            wrapper.ensure_connection()
        except DatabaseError as error:
            errors[alias] = describe(error)
        finally:
            wrapper.close()
    return errors


def gather(aliases: list[str]) -> dict[str, Any]:
    """Return the local snapshots, every process's, the server views and the health verdicts."""
    pools = registry.pools()
    local = {alias: pools[alias].snapshot() for alias in aliases if alias in pools}
    processes = None
    if get_config()["CACHE"] is not None:
        processes = [_only(entry, aliases) for entry in publish.process_snapshots()]
    server = _server_views(aliases)
    health = {}
    for alias, snapshot in local.items():
        view = server.get(alias)
        health[alias] = verdict(
            snapshot, server=_server_load(view), processes=_process_count(processes, alias)
        )
    return {"local": local, "processes": processes, "server": server, "health": health}


def _only(entry: dict[str, Any], aliases: list[str]) -> dict[str, Any]:
    pools = {alias: snapshot for alias, snapshot in entry["pools"].items() if alias in aliases}
    return {**entry, "pools": pools}


def _server_views(aliases: list[str]) -> dict[str, dict[str, Any]]:
    """Return each alias's server view, read once per server that aliases share."""
    return {
        alias: server["view"] for server in server_views(aliases) for alias in server["aliases"]
    }


def _server_load(view: dict[str, Any] | None) -> dict[str, int] | None:
    if not view or "error" in view:
        return None
    return {"max_connections": view["max_connections"], "connections": view["connections"]}


def _process_count(processes: list[dict[str, Any]] | None, alias: str) -> int | None:
    if processes is None:
        return None
    return sum(alias in entry["pools"] for entry in processes)


def render(status: dict[str, Any], errors: dict[str, str]) -> str:
    """Return the status as readable tables, health reasons under them."""
    parts = [
        f"Local pools of this process (pid {os.getpid()} on {socket.gethostname()})",
        "  one connection per alias was borrowed and returned first: "
        "a new process has no traffic of its own",
        _local_table(status["local"], status["health"]),
    ]
    parts += [f"  {alias}: could not borrow: {error}" for alias, error in errors.items()]
    if status["processes"] is None:
        parts += ["", "All processes: off (set DJANGO_POOL['CACHE'] to publish them)"]
    else:
        parts += ["", f"All processes ({len(status['processes'])} publishing)"]
        parts.append(_processes_table(status["processes"]))
    parts += _server_sections(status["server"])
    parts += ["", "Health"] + _health_lines(status["health"])
    return "\n".join(parts)


_POOL_HEADERS = ["in use", "idle", "size", "max", "waiting", "borrows", "wait p95", "timeouts"]


def _pool_cells(snapshot: dict[str, Any]) -> list[str]:
    stats = snapshot["stats"]
    return [
        str(stats["pool_in_use"]),
        str(stats["pool_available"]),
        str(stats["pool_size"]),
        str(stats["pool_max"]),
        str(stats["requests_waiting"]),
        str(stats["requests_num"]),
        _ms(snapshot["wait_ms"].get("p95")),
        str(stats["requests_timeouts"]),
    ]


def _local_table(local: dict[str, Any], health: dict[str, Any]) -> str:
    rows = [
        [alias, *_pool_cells(snapshot), health[alias]["status"]]
        for alias, snapshot in local.items()
    ]
    return _table(["alias", *_POOL_HEADERS, "health"], rows)


def _processes_table(processes: list[dict[str, Any]]) -> str:
    now, me = time.time(), (socket.gethostname(), os.getpid())
    rows = []
    for entry in processes:
        pid = f"{entry['pid']}*" if (entry["host"], entry["pid"]) == me else str(entry["pid"])
        age = f"{max(now - entry['published_at'], 0.0):.0f} s"
        for alias, snapshot in entry["pools"].items():
            status = verdict(snapshot)["status"]
            rows.append([entry["host"], pid, alias, *_pool_cells(snapshot), status, age])
    table = _table(["host", "pid", "alias", *_POOL_HEADERS, "health", "published"], rows)
    return f"{table}\n  * this process (taken now)"


def _server_sections(server: dict[str, dict[str, Any]]) -> list[str]:
    # One section per server, naming the aliases that use it.
    sections: list[tuple[dict[str, Any], list[str]]] = []
    for alias, view in server.items():
        same = [aliases for seen, aliases in sections if seen == view]
        if same:
            same[0].append(alias)
        else:
            sections.append((view, [alias]))
    lines = []
    for view, aliases in sections:
        settings = connections[aliases[0]].settings_dict
        where = f"{settings['HOST'] or 'localhost'}:{settings['PORT'] or 5432}"
        lines += ["", f"Server {where} (used by {', '.join(aliases)})"]
        if "error" in view:
            lines.append(f"  unavailable: {view['error']}")
            continue
        lines.append(
            f"  max_connections {view['max_connections']} ({view['reserved']} reserved), "
            f"client connections in use {view['connections']}"
        )
        lines.append(_connections_table(view["processes"]))
    return lines


def _connections_table(processes: list[dict[str, Any]]) -> str:
    seen = {state for process in processes for state in process["states"]}
    states = [state for state in _STATES if state in seen] + sorted(seen - set(_STATES))
    rows = []
    for process in processes:
        who = process["alias"] if process["pid"] is not None else process["application_name"]
        longest = process["longest"]
        rows.append(
            [
                process["host"],
                "" if process["pid"] is None else str(process["pid"]),
                who or "",
                str(process["connections"]),
                *(str(process["states"].get(state, 0)) for state in states),
                f"{longest['state']} {longest['seconds']:.1f} s" if longest else "",
            ]
        )
    return _table(["host", "pid", "alias / application", "conns", *states, "longest"], rows)


def _health_lines(health: dict[str, Any]) -> list[str]:
    lines = []
    for alias, result in health.items():
        lines.append(f"  {alias}: {result['status']}")
        lines += [f"    - {reason}" for reason in result["reasons"]]
        lines += [f"    > {advice}" for advice in result["recommendations"]]
    return lines


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} ms"


def _table(headers: list[str], rows: list[list[str]]) -> str:
    """Return rows under headers, text left-aligned and numbers right-aligned."""
    if not rows:
        return "  (none)"
    widths = [max(len(cell) for cell in column) for column in zip(headers, *rows, strict=True)]
    numeric = [all(_is_number(row[i]) for row in rows) for i in range(len(headers))]

    def line(cells: list[str]) -> str:
        padded = (
            cell.rjust(width) if right else cell.ljust(width)
            for cell, width, right in zip(cells, widths, numeric, strict=True)
        )
        return "  " + "  ".join(padded).rstrip()

    return "\n".join([line(headers), *(line(row) for row in rows)])


def _is_number(cell: str) -> bool:
    return cell in ("", "-") or cell.rstrip(" ms*").replace(".", "", 1).isdigit()
