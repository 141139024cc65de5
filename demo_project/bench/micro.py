"""Borrow + return cost of this pool beside the pools users would pick instead.

``run_micro()`` measures µs per borrow + return on one thread and on 8 threads sharing 4
connections, for the raw pools and at Django's level (``connection.ensure_connection();
connection.close()``) beside Django's native pool, and a ``SELECT 1`` per borrow through our
pool beside a plain ``queue.Queue`` of the same 4 connections, and through our pool with its
fairness bend off (strict first come, first served). ``BENCH_COMPARE=<git revision>``
adds rows for our pool core as it was at that revision, measured in the same run.
"""

from __future__ import annotations

import importlib
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from demo_project.devdb import ROOT, connect_params, database_settings
from django_pool import pool as pool_module

DB_NAME = "django_pool_bench"
THREADS, CONNECTIONS = 8, 4
OURS = "django_pool"

# (getconn, putconn, close) of one pool.
Pool = tuple[Callable[[], Any], Callable[[Any], None], Callable[[], None]]
Loop = Callable[[int], None]


def per_op_us(loop: Loop, n: int, threads: int = 1, repeat: int = 3) -> float:
    """Run ``loop(n)`` on each of ``threads`` threads; return wall µs per operation, best of 3."""
    best = float("inf")
    for _ in range(repeat):
        best = min(best, _timed_run(loop, n, threads))
    return best


def _timed_run(loop: Loop, n: int, threads: int) -> float:
    workers = [threading.Thread(target=loop, args=(n,)) for _ in range(threads)]
    start = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return (time.perf_counter() - start) / (n * threads) * 1e6


def sized(loop: Loop, n: int, budget: float) -> int:
    """Return how many operations fit in ``budget`` seconds on one thread, capped at ``n``."""
    # Slow rows (a ping or a connect per borrow) would otherwise take minutes at the fast
    # rows' count; this keeps each measurement near the budget whatever the pool costs.
    us = _timed_run(loop, 100, 1)
    return max(50, min(n, int(budget * 1e6 / us)))


def borrow_loop(getconn: Callable[[], Any], putconn: Callable[[Any], None]) -> Loop:
    """Return a loop that borrows and returns ``n`` times."""

    def loop(n: int) -> None:
        for _ in range(n):
            putconn(getconn())

    return loop


def select_loop(getconn: Callable[[], Any], putconn: Callable[[Any], None]) -> Loop:
    """Return a loop that borrows, runs ``SELECT 1`` and returns ``n`` times."""

    def loop(n: int) -> None:
        for _ in range(n):
            conn = getconn()
            cursor = conn.cursor()
            cursor.execute("SELECT 1")
            cursor.fetchone()
            cursor.close()
            putconn(conn)

    return loop


def package_at_revision(revision: str) -> str:
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


def our_pool(package: str, connect: Callable, driver: str, **options: Any) -> Any:
    """Return a 4-connection ``ConnectionPool`` from ``package`` (any revision)."""
    # Pool options moved from config.py to options.py; older revisions have the former.
    try:
        config = importlib.import_module(f"{package}.options").PoolConfig
    except ModuleNotFoundError:
        config = importlib.import_module(f"{package}.config").PoolConfig
    adapter = getattr(importlib.import_module(f"{package}.drivers"), driver)()
    pool_class = importlib.import_module(f"{package}.pool").ConnectionPool
    options = {"min_size": CONNECTIONS, "max_size": CONNECTIONS, "name": "bench", **options}
    return pool_class(connect, config(**options), adapter)


def connectors(params: dict) -> dict[str, Callable[[], Any]]:
    """Return driver label -> a function opening one autocommit connection."""
    import psycopg
    import psycopg2

    def connect2() -> Any:
        conn = psycopg2.connect(**params)
        conn.autocommit = True
        return conn

    def connect3() -> Any:
        return psycopg.connect(**params, autocommit=True)

    return {"psycopg2": connect2, "psycopg 3": connect3}


DRIVER_CLASSES = {"psycopg2": "Psycopg2Driver", "psycopg 3": "Psycopg3Driver"}


def ours_pools(params: dict) -> list[tuple[str, str, bool, Pool]]:
    """Return (name, driver, is ours now, pool) for our pool, per driver and option set."""
    packages = {OURS: OURS}
    revision = os.environ.get("BENCH_COMPARE")
    if revision:
        packages[f"{OURS} at {revision}"] = package_at_revision(revision)
    pools = []
    for driver, connect in connectors(params).items():
        for label, package in packages.items():
            pool = our_pool(package, connect, DRIVER_CLASSES[driver])
            pools.append((f"{label} ({driver})", driver, package == OURS, _triple(pool)))
        pool = our_pool(OURS, connect, DRIVER_CLASSES[driver], check="always")
        pools.append((f'{OURS} check="always" ({driver})', driver, False, _triple(pool)))
    return pools


def _triple(pool: Any) -> Pool:
    return pool.getconn, pool.putconn, pool.close


def other_pools(params: dict) -> list[tuple[str, str, bool, Pool]]:
    """Return (name, driver, False, pool) for the pools users would pick instead of ours."""
    import psycopg
    import psycopg2.pool
    import psycopg_pool
    from sqlalchemy.pool import QueuePool

    connect2 = connectors(params)["psycopg2"]
    threaded = psycopg2.pool.ThreadedConnectionPool(CONNECTIONS, CONNECTIONS, **params)
    native = psycopg_pool.ConnectionPool(
        psycopg.conninfo.make_conninfo(**params),
        min_size=CONNECTIONS,
        max_size=CONNECTIONS,
        kwargs={"autocommit": True},
        open=True,
    )
    native.wait()
    alchemy = QueuePool(connect2, pool_size=CONNECTIONS, max_overflow=0, timeout=10)
    return [
        ("psycopg2 ThreadedConnectionPool + semaphore", "psycopg2", False, _threaded(threaded)),
        ("psycopg_pool.ConnectionPool", "psycopg 3", False, _triple(native)),
        ("SQLAlchemy QueuePool", "psycopg2", False, _alchemy(alchemy)),
    ]


def _threaded(pool: Any) -> Pool:
    # ThreadedConnectionPool raises instead of waiting when empty; a semaphore makes it wait.
    gate = threading.BoundedSemaphore(CONNECTIONS)

    def get() -> Any:
        gate.acquire()
        return pool.getconn()

    def put(conn: Any) -> None:
        pool.putconn(conn)
        gate.release()

    return get, put, pool.closeall


def _alchemy(pool: Any) -> Pool:
    # connect() hands out a proxy; closing the proxy returns the connection to the pool.
    return pool.connect, lambda proxy: proxy.close(), pool.dispose


def bench_raw(params: dict, n: int, budget: float) -> list[dict]:
    """Return a row per pool: µs per borrow + return on 1 thread and on 8 threads / 4 conns."""
    rows = []
    for name, driver, ours, (getconn, putconn, close) in ours_pools(params) + other_pools(params):
        loop = borrow_loop(getconn, putconn)
        loop(1000)  # warm up: open the connections
        count = sized(loop, n, budget)
        one = per_op_us(loop, count)
        many = per_op_us(loop, max(50, count // THREADS), THREADS)
        rows.append({"name": name, "driver": driver, "ours": ours, "one_us": one, "many_us": many})
        close()
    connect2 = connectors(params)["psycopg2"]
    fresh = borrow_loop(connect2, lambda conn: conn.close())
    rows.append(
        {
            "name": "no pool: psycopg2.connect() + close()",
            "driver": "psycopg2",
            "ours": False,
            "one_us": per_op_us(fresh, sized(fresh, 300, budget)),
            "many_us": None,
        }
    )
    return rows


def bench_select1(params: dict, n: int, budget: float) -> list[dict]:
    """Return, per driver, µs per borrow + ``SELECT 1`` + return: our pool vs a queue.Queue."""
    rows = []
    for driver, connect in connectors(params).items():
        conns = [connect() for _ in range(CONNECTIONS)]
        plain: queue.Queue = queue.Queue()
        for conn in conns:
            plain.put(conn)
        # The pool opens exactly the connections the queue holds: same sockets, same backends.
        supply = iter(conns)
        pool = our_pool(OURS, lambda supply=supply: next(supply), DRIVER_CLASSES[driver])
        ours_loop = select_loop(pool.getconn, pool.putconn)
        queue_loop = select_loop(plain.get, plain.put)
        _timed_run(ours_loop, 200, THREADS)  # warm up: the pool opens all 4
        count = max(50, sized(queue_loop, n, budget) // THREADS)
        ours_us, queue_us, fcfs_us = float("inf"), float("inf"), float("inf")
        # Interleaved so that drift in the machine's load hits all sides alike.
        for _ in range(5):
            ours_us = min(ours_us, _timed_run(ours_loop, count, THREADS))
            queue_us = min(queue_us, _timed_run(queue_loop, count, THREADS))
            with strict_fifo():
                fcfs_us = min(fcfs_us, _timed_run(ours_loop, count, THREADS))
        with strict_fifo():
            fcfs_waits = _waits(pool.getconn, pool.putconn, count)
        rows.append(
            {
                "driver": driver,
                "ours_us": ours_us,
                "queue_us": queue_us,
                "ratio": ours_us / queue_us,
                "ours_waits": _waits(pool.getconn, pool.putconn, count),
                "queue_waits": _waits(plain.get, plain.put, count),
                "fcfs_us": fcfs_us,
                "fcfs_ratio": fcfs_us / queue_us,
                "fcfs_waits": fcfs_waits,
            }
        )
        pool.close()
    return rows


@contextmanager
def strict_fifo() -> Iterator[None]:
    """Switch our pool's fairness bend off: every return goes to the oldest waiter."""
    bend = pool_module._KEEP_FOR_S, pool_module._AGAIN_S
    pool_module._KEEP_FOR_S = pool_module._AGAIN_S = 0.0
    try:
        yield
    finally:
        pool_module._KEEP_FOR_S, pool_module._AGAIN_S = bend


def _waits(getconn: Callable[[], Any], putconn: Callable[[Any], None], n: int) -> dict:
    """Run the SELECT 1 loop once more on 8 threads, timing each borrow: p99 and longest, ms."""
    waits: list[float] = []

    def timed() -> Any:
        asked = time.perf_counter()
        conn = getconn()
        waits.append(time.perf_counter() - asked)  # list.append is atomic under the GIL
        return conn

    _timed_run(select_loop(timed, putconn), n, THREADS)
    waits.sort()
    return {"p99_ms": waits[int(len(waits) * 0.99)] * 1000.0, "max_ms": waits[-1] * 1000.0}


def configure_django(settings: dict) -> None:
    """Configure Django with our ENGINE, Django's native pool and no pool, 4 connections each."""
    import django
    from django.conf import settings as django_settings

    if django_settings.configured:
        return
    base = {key: value for key, value in settings.items() if key not in ("ENGINE", "OPTIONS")}
    pool = {"min_size": CONNECTIONS, "max_size": CONNECTIONS, "timeout": 10.0}
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
            "unpooled": {**base, "ENGINE": "django.db.backends.postgresql", "OPTIONS": {}},
            "persistent": {
                **base,
                "ENGINE": "django.db.backends.postgresql",
                "CONN_MAX_AGE": None,
                "OPTIONS": {},
            },
        },
    )
    django.setup()


def django_loop(alias: str) -> Loop:
    """Return a loop of ``ensure_connection(); close()`` on ``alias``."""
    from django.db import connections

    def loop(n: int) -> None:
        connection = connections[alias]
        for _ in range(n):
            connection.ensure_connection()
            connection.close()
        connection.close()

    return loop


def request_loop(alias: str = "persistent", every_alias: bool = True) -> Loop:
    """Return a loop of ``ensure_connection(); close_old_connections()``: a request's cycle.

    What Django does around a request: the first query ensures a connection, and the request's
    end runs ``close_old_connections()``. Persistent connections stay; Django only checks
    whether to close them. django_pool parks its connection and takes it back. That looks at
    every alias in DATABASES (five here); with ``every_alias=False`` the loop checks its own
    alias only.
    """
    from django.db import close_old_connections, connections

    def loop(n: int) -> None:
        connection = connections[alias]
        end = close_old_connections if every_alias else connection.close_if_unusable_or_obsolete
        for _ in range(n):
            connection.ensure_connection()
            end()

    return loop


def persistent_loop(every_alias: bool = True) -> Loop:
    """Return ``request_loop()`` on the persistent connection."""
    return request_loop("persistent", every_alias)


def bench_django(n: int, budget: float) -> list[dict]:
    """Return a row per Django configuration: µs per borrow + return through Django."""
    from django.db import connections

    rows = []
    for name, label, ours in (
        ("django_pool", "django_pool ENGINE, close()", True),
        ("native", "Django native pool (psycopg_pool), close()", False),
        ("django_pool_request", "django_pool ENGINE, close_old_connections()", True),
        ("persistent", "persistent connection, close_old_connections()", False),
        ("django_pool_request_own", "django_pool ENGINE, its own alias checked", True),
        ("persistent_own", "persistent connection, its own alias checked", False),
    ):
        alias = name.removesuffix("_own").removesuffix("_request")
        if name.endswith(("_request", "_own")) or name == "persistent":
            loop = request_loop(alias, every_alias=not name.endswith("_own"))
        else:
            loop = django_loop(alias)
        loop(1000)
        count = sized(loop, n, budget)
        one = per_op_us(loop, count)
        many = per_op_us(loop, max(50, count // THREADS), THREADS)
        rows.append({"name": label, "alias": name, "ours": ours, "one_us": one, "many_us": many})
        connections[alias].close()
        connections[alias].close_pool()
    unpooled = django_loop("unpooled")
    rows.append(
        {
            "name": "no pool: new connection each time",
            "ours": False,
            "one_us": per_op_us(unpooled, sized(unpooled, 300, budget)),
            "many_us": None,
        }
    )
    return rows


def run_micro(n: int = 100_000, budget: float = 0.5) -> dict:
    """Run every micro benchmark; ``budget`` caps the seconds of one measurement."""
    settings = database_settings(DB_NAME)
    params = connect_params(settings)
    result = {
        "n": n,
        "budget_s": budget,
        "threads": THREADS,
        "connections": CONNECTIONS,
        "raw": bench_raw(params, n, budget),
        "select1": bench_select1(params, n, budget),
    }
    configure_django(settings)
    result["django"] = bench_django(n // 2, budget)
    return result


def _us(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def print_micro(result: dict) -> None:
    """Print the micro benchmark's tables."""
    head = f"| {'pool':<46} | 1 thread µs | {THREADS} threads / {CONNECTIONS} conns µs |"
    rule = f"|{'-' * 48}|------------:|--------------------------:|"
    for title, rows in (
        ("Raw pools: getconn() + putconn()", result["raw"]),
        ("Django level (psycopg 3): ensure_connection(); close()", result["django"]),
    ):
        print(f"\n{title}\n{head}\n{rule}")
        for row in rows:
            print(f"| {row['name']:<46} | {_us(row['one_us']):>11} | {_us(row['many_us']):>25} |")
    print(f"\nSELECT 1 per borrow, {THREADS} threads / {CONNECTIONS} conns (µs per op)")
    for row in result["select1"]:
        print(
            f"  {row['driver']:<10} django_pool {row['ours_us']:8.2f}   queue.Queue "
            f"{row['queue_us']:8.2f}   ratio {row['ratio']:.3f}   strict FIFO "
            f"{row['fcfs_us']:8.2f}   ratio {row['fcfs_ratio']:.3f}"
        )


def main() -> None:
    """Run the micro benchmark alone and print it."""
    print_micro(run_micro(int(os.environ.get("BENCH_N", "100000"))))


if __name__ == "__main__":
    main()
