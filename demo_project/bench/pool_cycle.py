"""Run ``getconn(); putconn()`` N times on the pool core, for an instruction count.

The wall-clock micro figures swing by ±20 % on a shared machine; callgrind's count of
instructions does not:

    valgrind --tool=callgrind --callgrind-out-file=/dev/null \\
        .venv/bin/python -m demo_project.bench.pool_cycle 1000 psycopg2
    (the same with 21000; instructions per cycle = (total at 21000 - total at 1000) / 20000)

The second argument is the driver, ``psycopg2`` or ``psycopg3``; a third, ``park``, runs
``park(); take_back()`` instead, a request's end and the next one's first query when parked.
"""

from __future__ import annotations

import sys

from demo_project.bench import micro
from demo_project.devdb import connect_params, database_settings


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    driver = {"psycopg2": "psycopg2", "psycopg3": "psycopg 3"}[sys.argv[2]]
    connect = micro.connectors(connect_params(database_settings(micro.DB_NAME)))[driver]
    pool = micro.our_pool(micro.OURS, connect, micro.DRIVER_CLASSES[driver])
    try:
        if sys.argv[3:] == ["park"]:
            park_loop(pool, count)
        else:
            micro.borrow_loop(pool.getconn, pool.putconn)(count)
    finally:
        pool.close()


def park_loop(pool, count: int) -> None:
    """Park a connection and take it back ``count`` times."""
    conn = pool.getconn()
    for _ in range(count):
        conn = pool.take_back(pool.park(conn))
    pool.putconn(conn)


if __name__ == "__main__":
    main()
