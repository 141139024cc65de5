"""Run the whole benchmark suite and write ``docs/benchmarks.md``: ``python -m demo_project.bench``.

Sections, in order: micro (borrow + return), spike, http, sweep, release (a connection held
for the request or given back after each query, with a slow external call in the view),
oversubscribed (more threads than a throw-away server with ``max_connections = 40`` takes),
dashboard (the cost of one poll of the admin dashboard's JSON). Environment variables:

- ``BENCH_QUICK=1``: a smoke run of a few minutes (short runs, one round each).
- ``BENCH_ONLY=micro,spike``: run only these sections; the others' figures are kept from the
  earlier ``docs/benchmarks.json`` and the report says when they were measured.
- ``BENCH_N``: most borrows per micro measurement; ``BENCH_COMPARE=<git revision>`` adds rows
  for our pool core at that revision.
- ``BENCH_HTTP_ROUNDS``, ``BENCH_HTTP_SECONDS``, ``BENCH_SWEEP_SECONDS``: size the HTTP runs.
- ``BENCH_RELEASE_ROUNDS``, ``BENCH_RELEASE_SECONDS``: size the release runs.
- ``BENCH_OVERSUBSCRIBED_ROUNDS``, ``BENCH_OVERSUBSCRIBED_SECONDS``: size the oversubscribed
  runs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from datetime import datetime, timezone

from demo_project.bench import report
from demo_project.bench.micro import DB_NAME, print_micro, run_micro
from demo_project.bench.spike import print_spike, run_spike
from demo_project.devdb import database_settings

SECTIONS = ("micro", "spike", "http", "sweep", "release", "oversubscribed", "dashboard")
QUICK = os.environ.get("BENCH_QUICK", "") not in ("", "0")
CLIENTS = 32  # wrk connections in the HTTP comparison
SWEEP_CLIENTS = (1, 4, 16, 64) if QUICK else (1, 2, 4, 8, 16, 32, 64)


def number(name: str, default: float, quick: float) -> float:
    """Return the environment's ``name`` as a number, else the default for this kind of run."""
    return float(os.environ.get(name, quick if QUICK else default))


def run_http_section() -> dict:
    """Run the HTTP comparison (gunicorn + wrk) and print it."""
    from demo_project.bench import http

    result = http.run_http(
        rounds=int(number("BENCH_HTTP_ROUNDS", 3, 1)),
        seconds=number("BENCH_HTTP_SECONDS", 8, 3),
        clients=CLIENTS,
    )
    result["setup"].setdefault("clients", CLIENTS)
    http.print_http(result)
    return result


def run_sweep_section() -> dict:
    """Run the concurrency sweep (gunicorn + wrk) and print it."""
    from demo_project.bench import http

    result = http.run_sweep(clients=SWEEP_CLIENTS, seconds=number("BENCH_SWEEP_SECONDS", 4, 2))
    http.print_sweep(result)
    return result


def run_release_section() -> dict:
    """Run the release comparison (gunicorn + wrk, two views) and print it."""
    from demo_project.bench import release

    result = release.run_release(
        rounds=int(number("BENCH_RELEASE_ROUNDS", 5, 1)),
        seconds=number("BENCH_RELEASE_SECONDS", 6, 3),
    )
    release.print_release(result)
    return result


def run_oversubscribed_section() -> dict:
    """Run the oversubscribed comparison (its own server, gunicorn + wrk) and print it."""
    from demo_project.bench import oversubscribed

    result = oversubscribed.run_oversubscribed(
        rounds=int(number("BENCH_OVERSUBSCRIBED_ROUNDS", 3, 1)),
        seconds=number("BENCH_OVERSUBSCRIBED_SECONDS", 8, 3),
    )
    oversubscribed.print_oversubscribed(result)
    return result


def run_micro_section() -> dict:
    """Run the borrow + return benchmarks and print them."""
    result = run_micro(int(number("BENCH_N", 100_000, 20_000)), budget=0.1 if QUICK else 0.5)
    print_micro(result)
    return result


def run_spike_section() -> dict:
    """Run the spike and print it."""
    result = run_spike(rounds=1 if QUICK else 3)
    print_spike(result)
    return result


def run_dashboard_section() -> dict:
    """Time the dashboard's JSON endpoint in a process of its own (its own Django settings)."""
    output = subprocess.run(
        [sys.executable, "-m", "demo_project.bench.dashboard"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    result = json.loads(output)
    print(
        f"dashboard poll, {result['pools']} pools and {result['processes']} processes: "
        f"median {result['cpu_ms_median']:.1f} ms CPU, worst {result['cpu_ms_max']:.1f} ms, "
        f"{result['response_kb']:.0f} KB"
    )
    return result


RUNNERS: dict[str, Callable[[], dict]] = {
    "micro": run_micro_section,
    "spike": run_spike_section,
    "http": run_http_section,
    "sweep": run_sweep_section,
    "release": run_release_section,
    "oversubscribed": run_oversubscribed_section,
    "dashboard": run_dashboard_section,
}


def commands() -> list[str]:
    """Return the commands that reproduce this run, with the settings it used."""
    settings = [
        f"{name}={os.environ[name]}"
        for name in (
            "BENCH_QUICK",
            "BENCH_ONLY",
            "BENCH_N",
            "BENCH_COMPARE",
            "BENCH_HTTP_ROUNDS",
            "BENCH_HTTP_SECONDS",
            "BENCH_SWEEP_SECONDS",
            "BENCH_RELEASE_ROUNDS",
            "BENCH_RELEASE_SECONDS",
            "BENCH_OVERSUBSCRIBED_ROUNDS",
            "BENCH_OVERSUBSCRIBED_SECONDS",
        )
        if os.environ.get(name)
    ]
    prefix = " ".join(settings) + " " if settings else ""
    return [
        f"{prefix}make bench   # = make db && python -m demo_project.bench",
        "python -m demo_project.bench.report   # render docs/ again from docs/benchmarks.json",
    ]


def environment() -> dict:
    """Describe the machine, the versions and the database of this run."""
    server = report.server_version(database_settings(DB_NAME))
    url = os.environ.get("DATABASE_URL")
    return {
        "machine": report.machine(),
        "versions": report.versions(server),
        "database": "DATABASE_URL" if url else "embedded PostgreSQL (Unix socket)",
    }


def main() -> None:
    """Run the chosen sections, keep going past a failed one, and write the report."""
    only = [s.strip() for s in os.environ.get("BENCH_ONLY", ",".join(SECTIONS)).split(",")]
    start = time.monotonic()
    results: dict = {
        "started": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "quick": QUICK,
        "commands": commands(),
        "environment": environment(),
        "errors": {},
    }
    for section in SECTIONS:
        if section not in only:
            continue
        print(f"\n== {section} ==", flush=True)
        try:
            results[section] = RUNNERS[section]()
        except Exception as error:  # noqa: BLE001 - one failed section must not lose the others
            traceback.print_exc()
            results["errors"][section] = f"{type(error).__name__}: {error}"
    results["elapsed_s"] = time.monotonic() - start
    kept = report.keep_earlier(results, [section for section in SECTIONS if section not in only])
    path = report.write_report(results)
    print(f"\nWrote {path.relative_to(report.ROOT)} in {results['elapsed_s']:.0f} s")
    if kept:
        print(f"  kept from the earlier {report.RESULTS.name}: {', '.join(kept)}")
    for name, met, _text in report.targets(results):
        verdict = "not measured" if met is None else ("met" if met else "MISSED")
        print(f"  {verdict:>12}: {name}")


main()
