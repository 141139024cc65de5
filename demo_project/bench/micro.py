"""Borrow + return cost of this pool beside the pools users would pick instead.

Run ``python -m demo_project.bench`` (``make bench``). It prints µs per borrow + return on one
thread and on 8 threads sharing 4 connections, for the raw pools and at Django's level
(``connection.ensure_connection(); connection.close()``) beside Django's native pool.
``BENCH_COMPARE=<git revision>`` adds a row for our pool core as it was at that revision,
measured in the same run.
"""

from __future__ import annotations

import importlib
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from demo_project.devdb import ROOT, database_settings

DB_NAME = "django_pool_bench"
THREADS, CONNECTIONS = 8, 4


def per_op_us(loop: Callable[[int], None], n: int, threads: int = 1) -> float:
    """Run ``loop(n)`` on each of ``threads`` threads; return wall µs per operation, best of 3."""
    best = float("inf")
    for _ in range(3):
        workers = [threading.Thread(target=loop, args=(n,)) for _ in range(threads)]
        start = time.perf_counter()
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        best = min(best, (time.perf_counter() - start) / (n * threads) * 1e6)
    return best


def borrow_loop(getconn, putconn) -> Callable[[int], None]:
    def loop(n: int) -> None:
        for _ in range(n):
            putconn(getconn())

    return loop


def conninfo(settings: dict) -> dict:
    params = {"dbname": settings["NAME"], "user": settings["USER"]}
    for key, name in (("HOST", "host"), ("PORT", "port"), ("PASSWORD", "password")):
        if settings.get(key):
            params[name] = settings[key]
    return params


def package_at_revision(revision: str):
    """Import django_pool's top-level modules as they were at ``revision``, as another package."""
    files = subprocess.run(
        ["git", "ls-tree", "--name-only", revision, "django_pool/"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    name = f"django_pool_at_{revision.replace('-', '_')}"
    package = Path(tempfile.mkdtemp()) / name
    package.mkdir()
    for path in files:
        if path.endswith(".py"):
            source = subprocess.run(
                ["git", "show", f"{revision}:{path}"], cwd=ROOT, check=True, capture_output=True
            ).stdout
            (package / Path(path).name).write_bytes(source)
    sys.path.insert(0, str(package.parent))
    return name


def our_pool(package: str, connect: Callable, name: str, driver: str) -> tuple:
    """Return (getconn, putconn, close) of a 4-connection pool from ``package`` (any revision)."""
    config = importlib.import_module(f"{package}.config").PoolConfig
    driver = getattr(importlib.import_module(f"{package}.drivers"), driver)()
    pool_class = importlib.import_module(f"{package}.pool").ConnectionPool
    pool = pool_class(connect, config(min_size=4, max_size=4, name=name), driver)
    return pool.getconn, pool.putconn, pool.close


def raw_pools(params: dict) -> dict[str, tuple]:
    """Return name -> (getconn, putconn, close) for each raw pool, sized to 4 connections."""
    import psycopg
    import psycopg2
    import psycopg2.pool
    import psycopg_pool

    def connect():
        conn = psycopg2.connect(**params)
        conn.autocommit = True
        return conn

    def connect3():
        return psycopg.connect(**params, autocommit=True)

    packages = {"django_pool": "django_pool"}
    revision = os.environ.get("BENCH_COMPARE")
    if revision:
        packages[f"django_pool at {revision}"] = package_at_revision(revision)
    pools = {}
    for label, package in packages.items():
        pools[f"{label} (psycopg2)"] = our_pool(package, connect, "bench", "Psycopg2Driver")
        pools[f"{label} (psycopg 3)"] = our_pool(package, connect3, "bench", "Psycopg3Driver")
    # ThreadedConnectionPool raises instead of waiting when empty; a semaphore makes it wait.
    threaded = psycopg2.pool.ThreadedConnectionPool(4, 4, **params)
    gate = threading.BoundedSemaphore(CONNECTIONS)

    def threaded_get():
        gate.acquire()
        return threaded.getconn()

    def threaded_put(conn):
        threaded.putconn(conn)
        gate.release()

    native = psycopg_pool.ConnectionPool(
        psycopg.conninfo.make_conninfo(**params),
        min_size=4,
        max_size=4,
        kwargs={"autocommit": True},
        open=True,
    )
    native.wait()
    return {
        **pools,
        "psycopg2 ThreadedConnectionPool + semaphore": (
            threaded_get,
            threaded_put,
            threaded.closeall,
        ),
        "psycopg_pool.ConnectionPool (psycopg 3)": (native.getconn, native.putconn, native.close),
    }


def bench_raw(params: dict, n: int) -> list[tuple[str, float, float]]:
    rows = []
    for name, (getconn, putconn, close) in raw_pools(params).items():
        loop = borrow_loop(getconn, putconn)
        loop(1000)  # warm up: open the connections
        rows.append((name, per_op_us(loop, n), per_op_us(loop, n // 4, THREADS)))
        close()
    return rows


def configure_django(settings: dict) -> None:
    import django
    from django.conf import settings as django_settings

    base = {key: value for key, value in settings.items() if key not in ("ENGINE", "OPTIONS")}
    pool = {"min_size": 4, "max_size": 4, "timeout": 10.0}
    django_settings.configure(
        USE_TZ=True,
        TIME_ZONE="UTC",
        DATABASES={
            "default": {**base, "ENGINE": "django_pool.backends.postgresql", "OPTIONS": {}},
            "django_pool": {
                **base,
                "ENGINE": "django_pool.backends.postgresql",
                "OPTIONS": {"pool": pool},
            },
            "native": {
                **base,
                "ENGINE": "django.db.backends.postgresql",
                "OPTIONS": {"pool": pool},
            },
            "unpooled": {
                **base,
                "ENGINE": "django.db.backends.postgresql",
                "OPTIONS": {},
            },
        },
    )
    django.setup()


def django_loop(alias: str) -> Callable[[int], None]:
    from django.db import connections

    def loop(n: int) -> None:
        connection = connections[alias]
        for _ in range(n):
            connection.ensure_connection()
            connection.close()
        connection.close()

    return loop


def bench_django(n: int) -> list[tuple[str, float, float]]:
    from django.db import connections

    rows = []
    for alias, label in (
        ("django_pool", "django_pool ENGINE"),
        ("native", "Django native pool (psycopg_pool)"),
    ):
        loop = django_loop(alias)
        loop(1000)
        rows.append((label, per_op_us(loop, n), per_op_us(loop, n // 4, THREADS)))
        connections[alias].close_pool()
    unpooled = django_loop("unpooled")
    rows.append(("no pool: new connection each time", per_op_us(unpooled, 200), float("nan")))
    return rows


def print_table(title: str, rows: list[tuple[str, float, float]]) -> None:
    print(f"\n{title}")
    print(f"| {'pool':<44} | 1 thread µs | {THREADS} threads / {CONNECTIONS} conns µs |")
    print(f"|{'-' * 46}|------------:|--------------------------:|")
    for name, one, many in rows:
        many_text = "—" if many != many else f"{many:.2f}"
        print(f"| {name:<44} | {one:11.2f} | {many_text:>25} |")


def main() -> None:
    n = int(os.environ.get("BENCH_N", "100000"))
    settings = database_settings(DB_NAME)
    import django
    import psycopg
    import psycopg2

    print(
        f"Python {platform.python_version()}, Django {django.get_version()}, "
        f"psycopg2 {psycopg2.__version__.split()[0]}, psycopg {psycopg.__version__}, "
        f"{os.cpu_count()} CPUs; {n} borrows per thread count, best of 3"
    )
    print_table("Raw pools: getconn() + putconn()", bench_raw(conninfo(settings), n))
    configure_django(settings)
    print_table(
        "Django level (psycopg 3): connection.ensure_connection(); connection.close()",
        bench_django(n // 2),
    )
