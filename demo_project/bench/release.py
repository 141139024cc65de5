"""When a pooled connection goes back: held for the request, or given back after each query.

Two gunicorn servers (1 worker x 16 threads each, gthread) serve two views for each
configuration in ``RELEASE_CONFIGS``, with more threads than pool connections (``max_size`` 4
per worker): ``one_query`` (one ``SELECT 1``) and ``external_call`` (the same query, then 50 ms
asleep as if waiting on another service). A pool that keeps the connection until the request
ends lets at most 4 of a worker's 16 threads through the external call at a time; one that
takes it back after the query lets all 16 through. Persistent connections hold one per thread
(32 in all) and show what the threads alone allow.

Every run goes through the HTTP comparison's machinery (``demo_project.bench.http``): fresh
gunicorn servers, a warm-up, one wrk split evenly over them, ``pg_stat_activity`` sampling,
rounds interleaved, medians.

Run ``python -m demo_project.bench.release`` for a table; ``BENCH_RELEASE_ROUNDS`` and
``BENCH_RELEASE_SECONDS`` shorten it. Needs ``wrk``, gunicorn, psutil and django-pg-real-pool.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from importlib import metadata

from demo_project.bench import http
from demo_project.bench.site import DJANGO_POOL_RELEASE, POOL, RELEASE_CONFIGS
from demo_project.bench.site.views import EXTERNAL_CALL_SECONDS

THREADS = 16
# Two wrk connections per gunicorn thread (32 per server): a thread never waits for wrk to
# send its next request.
CLIENTS = 64
# wrk's default 2 s timeout would count the slowest requests of the pools that hold their
# connection through the external call as socket errors and drop them from the latencies.
WRK_TIMEOUT = 10.0
VIEWS = {"one_query": "db", "external_call": "external_call"}  # view -> the site's path


def run_release(rounds: int = 5, seconds: float = 6.0, clients: int = CLIENTS) -> dict:
    """Run every view and configuration ``rounds`` times, interleaved; return runs and medians."""
    fields = http.server_fields()
    views = {view: {config: {"runs": []} for config in RELEASE_CONFIGS} for view in VIEWS}
    with http.connect(fields) as sampler_conn:
        for round_ in range(1, rounds + 1):
            for view, path in VIEWS.items():
                for config in RELEASE_CONFIGS:
                    run = http.run_one(
                        config, clients, seconds, fields, sampler_conn, THREADS, path, WRK_TIMEOUT
                    )
                    views[view][config]["runs"].append({**run, "round": round_})
    for configs in views.values():
        for entry in configs.values():
            entry["median"] = http.medians(entry["runs"])
    return {"views": views, "setup": setup(rounds, seconds, clients)}


def setup(rounds: int, seconds: float, clients: int) -> dict:
    """Describe how the runs were made, for the report."""
    return {
        **http.commands(http.WORKERS, THREADS, clients, seconds, "<view>", WRK_TIMEOUT),
        "workers": http.WORKERS,
        "threads": THREADS,
        "clients": clients,
        "rounds": rounds,
        "warmup_seconds": http.WARMUP_SECONDS,
        "external_call_ms": EXTERNAL_CALL_SECONDS * 1000,
        "pool": POOL,
        "release": {config: DJANGO_POOL_RELEASE.get(config) for config in RELEASE_CONFIGS},
        "django_pg_real_pool": metadata.version("django-pg-real-pool"),
    }


def print_release(result: dict) -> None:
    """Print the medians per view and configuration as tables."""
    for view, configs in result["views"].items():
        print(f"\n{view}")
        print(f"| {'config':<23} | req/s | p99 ms | errors | server conns |")
        print(f"|{'-' * 25}|------:|-------:|-------:|-------------:|")
        for config, entry in configs.items():
            m = entry["median"]
            errors = sum(run["errors"] for run in entry["runs"])
            print(
                f"| {config:<23} | {m['rps']:5.0f} | {m['p99_ms']:6.1f} | {errors:6} "
                f"| {m['server_conns_max']:12g} |"
            )


def main() -> None:
    """Run the release comparison, sized by environment variables, and print it."""
    rounds = int(os.environ.get("BENCH_RELEASE_ROUNDS", "5"))
    seconds = float(os.environ.get("BENCH_RELEASE_SECONDS", "6"))
    # A plain SIGTERM (a timeout, a CI cancel) unwinds the finally blocks that stop gunicorn.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    start = time.monotonic()
    result = run_release(rounds, seconds)
    print(json.dumps(result["setup"], indent=1))
    print_release(result)
    print(f"\n{time.monotonic() - start:.0f}s in all")


if __name__ == "__main__":
    main()
