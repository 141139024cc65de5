"""A burst of short borrows against a slow server, after HikariCP's spike test.

50 threads start together; each borrows once, runs a ~2 ms query and returns. Every connect is
slowed by 150 ms, as to a server across a network with TLS. Each pool may open up to 50
connections (and keeps none open beforehand where it allows that), so its policy, not its cap,
decides how many it opens: a pool that opens one per waiting borrower pays 150 ms per borrower
and 50 server backends for a burst that 2 ms queries on a few connections would serve.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable
from typing import Any

from demo_project.bench.micro import connectors
from demo_project.devdb import connect_params, database_settings

BORROWERS = 50
CONNECT_DELAY = 0.15
QUERY = "SELECT pg_sleep(0.002)"
DB_NAME = "django_pool_bench"

# (getconn, putconn, close) of one pool.
Pool = tuple[Callable[[], Any], Callable[[Any], None], Callable[[], None]]


class Counter:
    """Count calls across threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.value = 0

    def add(self) -> None:
        """Count one call."""
        with self._lock:
            self.value += 1


def slowed(connect: Callable[[], Any], opened: Counter) -> Callable[[], Any]:
    """Return ``connect`` delayed by CONNECT_DELAY and counted."""

    def slow_connect(*args: Any, **kwargs: Any) -> Any:
        opened.add()
        time.sleep(CONNECT_DELAY)
        return connect(*args, **kwargs)

    return slow_connect


def ours(params: dict, opened: Counter) -> Pool:
    """Return this pool with min_size 0 and max_size 50 on psycopg2."""
    from django_pool.drivers import Psycopg2Driver
    from django_pool.options import PoolConfig
    from django_pool.pool import ConnectionPool

    connect = slowed(connectors(params)["psycopg2"], opened)
    config = PoolConfig(min_size=0, max_size=BORROWERS, timeout=30.0, name="spike")
    pool = ConnectionPool(connect, config, Psycopg2Driver())
    return pool.getconn, pool.putconn, pool.close


def psycopg_pool_(params: dict, opened: Counter) -> Pool:
    """Return psycopg_pool.ConnectionPool with min_size 0 and max_size 50."""
    import psycopg
    import psycopg_pool

    class SlowConnection(psycopg.Connection):
        @classmethod
        def connect(cls, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
            return slowed(super().connect, opened)(*args, **kwargs)

    pool = psycopg_pool.ConnectionPool(
        psycopg.conninfo.make_conninfo(**params),
        connection_class=SlowConnection,
        min_size=0,
        max_size=BORROWERS,
        timeout=30.0,
        kwargs={"autocommit": True},
        open=True,
    )
    return pool.getconn, pool.putconn, pool.close


def sqlalchemy_(params: dict, opened: Counter) -> Pool:
    """Return SQLAlchemy's QueuePool with pool_size 50 and no overflow."""
    from sqlalchemy.pool import QueuePool

    creator = slowed(connectors(params)["psycopg2"], opened)
    pool = QueuePool(creator, pool_size=BORROWERS, max_overflow=0, timeout=30)
    return pool.connect, lambda proxy: proxy.close(), pool.dispose


def threaded_(params: dict, opened: Counter) -> Pool:
    """Return psycopg2's ThreadedConnectionPool(0, 50): it never waits, it raises when full."""
    import psycopg2.pool

    class SlowPool(psycopg2.pool.ThreadedConnectionPool):
        def _connect(self, key: Any = None) -> Any:
            return slowed(super()._connect, opened)(key)

    pool = SlowPool(0, BORROWERS, **params)
    return pool.getconn, pool.putconn, pool.closeall


POOLS: dict[str, Callable[[dict, Counter], Pool]] = {
    "django_pool": ours,
    "psycopg_pool.ConnectionPool": psycopg_pool_,
    "SQLAlchemy QueuePool": sqlalchemy_,
    "psycopg2 ThreadedConnectionPool": threaded_,
}

NOTES = {
    "psycopg2 ThreadedConnectionPool": "no waiting: it connects in the borrower, under its lock",
    "SQLAlchemy QueuePool": "connects in the borrower whenever none is idle",
}


def burst(getconn: Callable[[], Any], putconn: Callable[[Any], None]) -> dict:
    """Run the burst once; return its duration, borrow waits and errors."""
    start_line = threading.Barrier(BORROWERS + 1)
    waits: list[float] = []
    finished: list[float] = []
    errors: list[str] = []

    def borrower() -> None:
        start_line.wait()
        asked = time.perf_counter()
        try:
            conn = getconn()
        except Exception as error:  # noqa: BLE001 - a refused borrow is a result here
            errors.append(type(error).__name__)
            return
        waits.append(time.perf_counter() - asked)
        cursor = conn.cursor()
        cursor.execute(QUERY)
        cursor.fetchall()
        cursor.close()
        putconn(conn)
        finished.append(time.perf_counter())

    threads = [threading.Thread(target=borrower) for _ in range(BORROWERS)]
    for thread in threads:
        thread.start()
    start_line.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    return {
        "duration_ms": (max(finished, default=started) - started) * 1000,
        "wait_median_ms": statistics.median(waits) * 1000 if waits else None,
        "wait_max_ms": max(waits) * 1000 if waits else None,
        "errors": len(errors),
    }


def spike_once(name: str, params: dict) -> dict:
    """Run one burst on a fresh pool; return the burst's figures and connections opened."""
    opened = Counter()
    getconn, putconn, close = POOLS[name](params, opened)
    result = burst(getconn, putconn)
    # Connects the pool started during the burst may still be under way; let them land so
    # that they are counted as the server sees them.
    time.sleep(CONNECT_DELAY * 2)
    result["opened"] = opened.value
    close()
    return result


def run_spike(rounds: int = 3) -> dict:
    """Run the burst ``rounds`` times per pool; return every round and the medians."""
    params = connect_params(database_settings(DB_NAME))
    pools = {}
    for name in POOLS:
        runs = [spike_once(name, params) for _ in range(rounds)]
        pools[name] = {"runs": runs, "median": _medians(runs), "note": NOTES.get(name, "")}
    return {
        "borrowers": BORROWERS,
        "connect_delay_ms": CONNECT_DELAY * 1000,
        "query": QUERY,
        "rounds": rounds,
        "pools": pools,
    }


def _medians(runs: list[dict]) -> dict:
    keys = ("opened", "duration_ms", "wait_median_ms", "wait_max_ms", "errors")
    medians = {}
    for key in keys:
        values = [run[key] for run in runs if run[key] is not None]
        medians[key] = statistics.median(values) if values else None
    medians["opened_max"] = max(run["opened"] for run in runs)
    return medians


def print_spike(result: dict) -> None:
    """Print the spike table."""
    print(
        f"\nSpike: {result['borrowers']} threads at once, {result['query']}, "
        f"connect +{result['connect_delay_ms']:.0f} ms (median of {result['rounds']})"
    )
    print(f"| {'pool':<32} | opened | burst ms | median wait ms | errors |")
    for name, pool in result["pools"].items():
        m = pool["median"]
        print(
            f"| {name:<32} | {m['opened']:>6.0f} | {m['duration_ms']:>8.0f} | "
            f"{m['wait_median_ms'] or 0:>14.1f} | {m['errors']:>6.0f} |"
        )


if __name__ == "__main__":
    print_spike(run_spike())
