"""The pool core against a fake driver: no Django, no server."""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import threading
import time
import weakref
from itertools import pairwise

import pytest

from django_pool import background, logs
from django_pool import pool as pool_module
from django_pool.backoff import Backoff
from django_pool.drivers import TxStatus
from django_pool.errors import (
    PoolClosed,
    PoolError,
    PoolTimeout,
    ServerUnavailable,
    TooManyRequests,
)
from django_pool.logs import PoolLog
from django_pool.options import PoolConfig
from django_pool.pool import ConnectionPool
from django_pool.stats import History

from .fakes import (
    DEFAULT_SESSION,
    FakeClock,
    FakeConnect,
    FakeConnection,
    FakeDriver,
    FakeError,
    in_child,
    is_collected,
    wait_until,
)


@pytest.fixture
def connect():
    return FakeConnect()


@pytest.fixture
def make_pool(connect):
    """Make pools on the ``connect`` fixture (min_size=0 unless given); close them all after."""
    pools = []

    def make(server="", on_event=None, **options):
        options.setdefault("name", "test")
        options.setdefault("min_size", 0)
        config = PoolConfig(**options)
        pool = ConnectionPool(connect, config, FakeDriver(), server=server, on_event=on_event)
        pools.append(pool)
        return pool

    yield make
    for pool in pools:
        pool.close()


def start(target, *args, name=None):
    thread = threading.Thread(target=target, args=args, name=name, daemon=True)
    thread.start()
    return thread


def borrow_in_thread(pool, results, **kwargs):
    """Start a thread that borrows and stores the connection (or the error) in ``results``."""

    def borrow():
        try:
            results.append(pool.getconn(**kwargs))
        except Exception as error:  # noqa: BLE001 - the test inspects it
            results.append(error)

    return start(borrow)


def hold_all(pool, count):
    return [pool.getconn() for _ in range(count)]


def borrow_when_up(pool, timeout=5.0):
    """Borrow, retrying while the pool fails fast because the server is down."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return pool.getconn(timeout=timeout)
        except ServerUnavailable:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)


# Borrowing and returning


def test_returned_connection_is_reused(make_pool, connect):
    pool = make_pool()
    conn = pool.getconn()
    pool.putconn(conn)
    assert pool.getconn() is conn
    assert connect.opened == 1
    stats = pool.stats()
    assert (stats["pool_size"], stats["pool_in_use"], stats["pool_available"]) == (1, 1, 0)


def test_connection_context_manager_gives_back(make_pool):
    pool = make_pool()
    with pool.connection() as conn:
        assert pool.in_use() == 1
    assert pool.in_use() == 0
    assert pool.available() == 1
    assert pool.getconn() is conn


def test_idle_connections_are_lent_last_in_first_out(make_pool):
    pool = make_pool()
    first, second = hold_all(pool, 2)
    pool.putconn(first)
    pool.putconn(second)
    assert pool.getconn() is second
    assert pool.getconn() is first


def test_stats_are_fresh_json_ready_dicts(make_pool):
    pool = make_pool(name="default", min_size=1, max_size=3)
    with pool.connection():
        pass
    stats = pool.stats()
    assert json.loads(json.dumps(stats)) == stats
    assert stats["name"] == "default"
    assert (stats["pool_min"], stats["pool_max"], stats["requests_num"]) == (1, 3, 1)
    assert set(stats) >= {
        "pool_size",
        "pool_available",
        "pool_in_use",
        "requests_waiting",
        "requests_queued",
        "requests_wait_ms",
        "requests_errors",
        "requests_timeouts",
        "requests_too_many",
        "connections_num",
        "connections_ms",
        "connections_errors",
        "connections_lost",
        "connections_closed",
        "returns_bad",
        "usage_ms",
        "sessions_restored",
        "connections_reclaimed",
        "connections_leaked",
        "server_down_ms",
        "last_connect_error",
    }
    assert stats["last_connect_error"] is None
    texts = ("name", "last_connect_error")
    assert all(isinstance(value, int) for key, value in stats.items() if key not in texts)
    stats["requests_num"] = 99
    assert pool.stats()["requests_num"] == 1


def test_many_threads_keep_every_invariant(make_pool, connect):
    pool = make_pool(max_size=4, min_size=2)
    threads, borrows = 32, 1000
    problems = []
    barrier = threading.Barrier(threads)

    def borrow_many():
        me = threading.get_ident()
        barrier.wait()
        for _ in range(borrows):
            conn = pool.getconn()
            if conn.owner is not None or conn.closed:
                problems.append((conn, conn.owner))
            conn.owner = me
            time.sleep(0)  # let another thread run while we hold it
            conn.owner = None
            pool.putconn(conn)

    workers = [start(borrow_many) for _ in range(threads)]
    for worker in workers:
        worker.join(30)
    assert not any(worker.is_alive() for worker in workers)
    assert problems == []
    assert connect.max_open <= 4
    stats = pool.stats()
    assert stats["requests_num"] == threads * borrows
    assert stats["requests_errors"] == 0
    assert stats["pool_in_use"] == 0
    assert stats["requests_waiting"] == 0
    assert stats["pool_available"] == stats["pool_size"] == connect.opened
    assert 2 <= stats["connections_num"] == connect.opened <= 4
    assert stats["connections_closed"] == 0
    assert stats["requests_queued"] <= stats["requests_num"]


# Refusals


def test_timeout_raises_pool_timeout_with_the_numbers(make_pool):
    pool = make_pool(name="default", max_size=1)
    held = pool.getconn()
    started = time.monotonic()
    with pytest.raises(PoolTimeout) as info:
        pool.getconn(timeout=0.05)
    assert 0.05 <= time.monotonic() - started < 2
    expected = "pool 'default': couldn't get a connection after 0.05 s "
    assert str(info.value) == expected + "(1/1 in use, 0 waiting, max_size=1)"
    stats = pool.stats()
    assert (stats["requests_timeouts"], stats["requests_errors"]) == (1, 1)
    assert stats["requests_waiting"] == 0
    assert stats["requests_wait_ms"] >= 50
    pool.putconn(held)
    assert pool.getconn(timeout=0) is held


def test_timeout_defaults_to_the_configured_one(make_pool):
    pool = make_pool(max_size=1, timeout=0.05)
    pool.getconn()
    with pytest.raises(PoolTimeout, match=r"after 0\.05 s"):
        pool.getconn()


def test_max_waiting_refuses_at_once(make_pool):
    pool = make_pool(name="default", max_size=1, max_waiting=1)
    held = pool.getconn()
    results = []
    waiter = borrow_in_thread(pool, results, timeout=5)
    assert wait_until(lambda: pool.waiting() == 1)
    started = time.monotonic()
    with pytest.raises(TooManyRequests) as info:
        pool.getconn(timeout=5)
    assert time.monotonic() - started < 1
    assert "pool 'default'" in str(info.value)
    assert "1 waiting, max_waiting=1, 1/1 in use" in str(info.value)
    pool.putconn(held)
    waiter.join(5)
    assert results == [held]
    stats = pool.stats()
    assert (stats["requests_too_many"], stats["requests_errors"]) == (1, 1)


def test_closed_pool_refuses_to_lend(make_pool):
    pool = make_pool(name="default")
    pool.close()
    assert pool.closed
    with pytest.raises(PoolClosed, match="pool 'default' is closed"):
        pool.getconn()
    assert pool.stats()["requests_errors"] == 1


def test_close_fails_waiters_with_pool_closed(make_pool):
    pool = make_pool(max_size=1)
    held = pool.getconn()
    results = []
    waiters = [borrow_in_thread(pool, results, timeout=10) for _ in range(3)]
    assert wait_until(lambda: pool.waiting() == 3)
    started = time.monotonic()
    pool.close()
    for waiter in waiters:
        waiter.join(5)
    assert time.monotonic() - started < 2
    assert len(results) == 3
    assert all(isinstance(result, PoolClosed) for result in results)
    assert pool.stats()["requests_errors"] == 3
    assert not held.closed


def test_close_closes_idle_now_and_borrowed_on_return(make_pool, connect):
    pool = make_pool()
    held, idle = hold_all(pool, 2)
    pool.putconn(idle)
    pool.close()
    assert idle.closed and not held.closed
    pool.putconn(held)
    assert held.closed
    pool.close()
    assert pool.stats()["pool_size"] == 0
    assert pool.stats()["connections_closed"] == 2
    assert connect.open_now == 0


def test_putconn_of_a_foreign_connection_raises(make_pool):
    pool = make_pool()
    with pytest.raises(PoolError, match="did not lend"):
        pool.putconn(FakeConnection())


def test_putconn_twice_raises(make_pool):
    pool = make_pool()
    conn = pool.getconn()
    pool.putconn(conn)
    with pytest.raises(PoolError, match="already returned"):
        pool.putconn(conn)
    assert pool.available() == 1


# Hand-off and growth


def test_returned_connection_goes_to_the_oldest_waiter(make_pool):
    pool = make_pool(max_size=1)
    held = pool.getconn()
    queued = pool.stats()["requests_queued"]
    order = []

    def borrow(label):
        conn = pool.getconn(timeout=5)
        order.append(label)
        time.sleep(0.01)
        pool.putconn(conn)

    threads = []
    for count, label in enumerate("abc", start=1):
        threads.append(start(borrow, label))
        assert wait_until(lambda count=count: pool.waiting() == count)
    pool.putconn(held)
    for thread in threads:
        thread.join(5)
    assert order == ["a", "b", "c"]
    assert pool.stats()["requests_queued"] == queued + 3


def returned_while_one_waits(make_pool, monkeypatch, again_s, nudge):
    """Return a 1-connection pool, its connection given back while a thread waits for it,
    that thread and the list it puts what it got in.

    The bend's windows are made wide (``_AGAIN_S`` as given) and ``nudge`` stands in for the
    waiter's wake-up, so that the tests do not race them.
    """
    monkeypatch.setattr(pool_module, "_KEEP_FOR_S", 60.0)
    monkeypatch.setattr(pool_module, "_AGAIN_S", again_s)
    monkeypatch.setattr(pool_module._Waiter, "nudge", nudge)
    pool = make_pool(max_size=1)
    conn = pool.getconn()
    results = []
    waiter = borrow_in_thread(pool, results, timeout=5)
    assert wait_until(lambda: pool.waiting() == 1)
    pool.putconn(conn)
    return pool, conn, waiter, results


def test_a_returned_connection_stays_for_its_borrower_while_the_oldest_waiter_is_new(
    make_pool, monkeypatch
):
    nudged = []
    pool, conn, waiter, results = returned_while_one_waits(
        make_pool, monkeypatch, 60.0, lambda waiter: nudged.append(waiter)
    )
    assert len(nudged) == 1  # the waiter is told to take it
    assert pool.getconn() is conn  # but its borrower asked again first: no thread switch
    assert pool.waiting() == 1
    monkeypatch.setattr(pool_module, "_KEEP_FOR_S", 0.0)  # the waiter has waited long enough
    pool.putconn(conn)
    waiter.join(5)
    assert results == [conn]
    assert len(nudged) == 1  # handed over, not left to take
    pool.putconn(conn)


def test_a_borrower_that_returns_comes_back_too_late_to_skip_the_waiters(make_pool, monkeypatch):
    # _AGAIN_S 0: it asks again later, as a web request's next one does. The waiter is not
    # woken, so that it cannot take the connection first.
    pool, conn, waiter, results = returned_while_one_waits(
        make_pool, monkeypatch, 0.0, lambda waiter: None
    )
    assert pool.available() == 1  # left for the waiter, which was told to take it
    with pytest.raises(PoolTimeout):
        pool.getconn(timeout=0.05)  # queues behind the waiter instead
    monkeypatch.undo()  # the waiter, not woken above, takes it at its own look
    waiter.join(5)
    assert results == [conn]
    pool.putconn(conn)


def test_a_newcomer_queues_behind_the_waiters(make_pool, monkeypatch):
    pool, conn, waiter, results = returned_while_one_waits(
        make_pool, monkeypatch, 60.0, lambda waiter: None
    )
    late = []
    newcomer = borrow_in_thread(pool, late, timeout=0.05)
    newcomer.join(5)
    assert isinstance(late[0], PoolTimeout)  # it may not take what the waiter is owed
    assert pool.available() == 1
    monkeypatch.undo()
    waiter.join(5)
    assert results == [conn]
    pool.putconn(conn)


@pytest.mark.timing
def test_a_waiter_takes_a_connection_its_borrower_left_on_the_stack(make_pool, monkeypatch):
    monkeypatch.setattr(pool_module, "_KEEP_FOR_S", 60.0)  # every return goes to the stack
    pool = make_pool(max_size=1)
    conn = pool.getconn()
    results = []
    waiter = borrow_in_thread(pool, results, timeout=5)
    assert wait_until(lambda: pool.waiting() == 1)
    returned = time.monotonic()
    pool.putconn(conn)  # and never borrows again
    waiter.join(5)
    assert results == [conn]
    assert time.monotonic() - returned < 1.0  # woken at once, not at its next own look
    pool.putconn(conn)


@pytest.mark.timing
def test_a_waiter_is_served_while_another_thread_borrows_in_a_loop(make_pool):
    pool = make_pool(max_size=1)
    stop = threading.Event()

    def borrow_in_a_loop():
        while not stop.is_set():
            pool.putconn(pool.getconn(timeout=5))

    looper = start(borrow_in_a_loop)
    asked = time.monotonic()
    conn = pool.getconn(timeout=5)
    waited = time.monotonic() - asked
    pool.putconn(conn)
    stop.set()
    looper.join(5)
    assert waited < 1.0  # fairness bends for a millisecond, then the oldest waiter is served


def test_waiter_takes_a_returned_connection_before_a_slow_new_one(make_pool, connect):
    pool = make_pool(max_size=2)
    held = pool.getconn()
    connect.delay = 0.5
    results = []
    waiter = borrow_in_thread(pool, results, timeout=5)
    assert wait_until(lambda: pool.waiting() == 1 and connect.attempts == 2)
    started = time.monotonic()
    pool.putconn(held)
    waiter.join(5)
    assert results == [held]
    assert time.monotonic() - started < 0.25
    # The connect under way is not wasted: it lands on the idle stack.
    assert wait_until(lambda: pool.available() == 1)
    assert connect.opened == 2


def test_waiter_takes_a_newly_created_connection(make_pool, connect):
    pool = make_pool(max_size=2)
    held = pool.getconn()
    connect.delay = 0.05
    conn = pool.getconn(timeout=5)
    assert conn is not held
    assert pool.stats()["connections_num"] == 2


@pytest.mark.timing
def test_a_burst_is_served_by_few_new_connections(make_pool, connect):
    connect.delay = 0.05
    pool = make_pool(max_size=50)
    borrowers = 50
    barrier = threading.Barrier(borrowers)
    results = []

    def borrow_once():
        barrier.wait()
        with pool.connection(timeout=10) as conn:
            time.sleep(0.002)
            results.append(conn)

    threads = [start(borrow_once) for _ in range(borrowers)]
    for thread in threads:
        thread.join(20)
    assert len(results) == borrowers
    stats = pool.stats()
    assert stats["requests_errors"] == 0
    assert connect.opened <= 10
    assert wait_until(lambda: pool.size() == connect.opened)


def test_never_more_than_max_size_open_or_opening(make_pool, connect):
    connect.delay = 0.01
    pool = make_pool(max_size=3)
    results = []
    release = threading.Event()

    def borrow_and_hold():
        try:
            results.append(pool.getconn(timeout=0.3))
        except PoolTimeout as error:
            results.append(error)
        # Alive till the end: an exited borrower's connection would be reclaimed and replaced.
        release.wait(5)

    threads = [start(borrow_and_hold) for _ in range(10)]
    assert wait_until(lambda: len(results) == 10)
    release.set()
    for thread in threads:
        thread.join(5)
    assert connect.max_open == 3
    assert sum(isinstance(result, FakeConnection) for result in results) == 3
    assert sum(isinstance(result, PoolTimeout) for result in results) == 7


# Connect failures and a server that is down


@pytest.fixture
def fast_backoff(monkeypatch):
    """Shorten the reconnect backoff and let every log record through."""
    monkeypatch.setattr(Backoff, "INITIAL", 0.05)
    monkeypatch.setattr(Backoff, "MAX", 0.2)
    monkeypatch.setattr(PoolLog, "EVERY", 0.0)


@pytest.fixture
def outage(make_pool, connect, caplog):
    """Run a pool (min_size 1) through an outage of ``attempts`` failed connects, then back."""

    def run(name: str, attempts: int) -> ConnectionPool:
        connect.switch_off()
        pool = make_pool(name=name, min_size=1)
        with caplog.at_level(logging.INFO, logger="django_pool"):
            # The worker's first connect for min_size may fail before the borrower's.
            with pytest.raises((FakeError, ServerUnavailable)):
                pool.getconn()
            # The worker retries by itself to refill min_size: nobody borrows meanwhile.
            assert wait_until(lambda: connect.attempts >= attempts)
            connect.switch_on()
            assert wait_until(lambda: pool.available() == 1)
        return pool

    return run


def test_connect_failure_reaches_the_first_waiter_at_once(make_pool, connect, caplog):
    pool = make_pool()
    error = FakeError('password authentication failed for user "shop"')
    connect.fail(error)
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="django_pool"), pytest.raises(FakeError) as info:
        pool.getconn(timeout=5)
    assert info.value is error
    assert time.monotonic() - started < 1
    assert "connection failed" in caplog.text
    stats = pool.stats()
    assert (stats["connections_errors"], stats["requests_errors"]) == (1, 1)
    assert stats["requests_timeouts"] == 0
    assert borrow_when_up(pool) is connect.connections[0]


def test_connect_failure_fails_the_other_waiters_at_once(make_pool, connect):
    connect.delay = 0.05
    error = FakeError("sorry, too many clients already")
    connect.fail(error)
    pool = make_pool()
    first, second = [], []
    threads = [borrow_in_thread(pool, first, timeout=5)]
    assert wait_until(lambda: pool.waiting() == 1)
    threads.append(borrow_in_thread(pool, second, timeout=5))
    for thread in threads:
        thread.join(5)
    assert first == [error]
    assert isinstance(second[0], ServerUnavailable)
    assert "too many clients" in str(second[0])
    stats = pool.stats()
    assert (stats["connections_errors"], stats["requests_errors"]) == (1, 2)
    assert stats["requests_timeouts"] == 0


def test_a_refused_connect_never_fails_borrowers_a_return_can_serve(make_pool, connect):
    pool = make_pool(max_size=4, timeout=5)
    held = hold_all(pool, 2)
    connect.fail(FakeError('too many connections for role "shop"'), times=1000)
    third, fourth = [], []
    threads = [borrow_in_thread(pool, third)]
    assert wait_until(lambda: pool.stats()["connections_errors"] >= 1)
    time.sleep(0.05)
    threads.append(borrow_in_thread(pool, fourth))
    assert wait_until(lambda: pool.waiting() == 2)
    time.sleep(0.3)  # well past the first backoff: failed attempts must not fail them
    assert third == fourth == []
    for conn in held:
        pool.putconn(conn)
    for thread in threads:
        thread.join(5)
    assert (third, fourth) == ([held[0]], [held[1]])  # oldest waiter first
    assert pool.stats()["requests_errors"] == 0


def test_a_waiter_timing_out_while_connects_fail_is_told_the_servers_error(make_pool, connect):
    pool = make_pool(name="default", max_size=2)
    held = pool.getconn()
    connect.fail(FakeError('too many connections for role "shop"'), times=1000)
    with pytest.raises(PoolTimeout) as info:
        pool.getconn(timeout=0.3)
    assert str(info.value) == (
        "pool 'default': couldn't get a connection after 0.30 s (1/1 in use, 0 waiting, "
        'max_size=2); last connect error: too many connections for role "shop"'
    )
    pool.putconn(held)


def test_waiters_fail_fast_once_the_last_open_connection_is_lost(make_pool, connect):
    pool = make_pool(timeout=5)
    held = pool.getconn()
    connect.switch_off()
    results = []
    waiter = borrow_in_thread(pool, results)
    assert wait_until(lambda: pool.stats()["connections_errors"] == 1)
    assert results == []  # the held connection may still come back
    started = time.monotonic()
    held.status = TxStatus.UNKNOWN  # its query failed: the server went away
    pool.putconn(held)
    waiter.join(5)
    assert time.monotonic() - started < 1.0
    assert isinstance(results[0], (ServerUnavailable, FakeError))


def test_borrow_fails_fast_while_the_server_is_down(make_pool, connect):
    server = "host=/tmp port=5432 dbname=shop"
    pool = make_pool(name="default", timeout=10, server=server)
    connect.switch_off()
    with pytest.raises(FakeError, match="No such file"):
        pool.getconn()
    started = time.monotonic()
    with pytest.raises(ServerUnavailable) as info:
        pool.getconn()
    assert time.monotonic() - started < 0.1
    assert isinstance(info.value, PoolError)
    message = str(info.value)
    assert message.startswith(f"pool 'default' ({server}): server unavailable for 0.")
    assert f"(last connect error: {FakeConnect.REFUSED})" in message
    assert re.search(r"; next attempt in 0\.\d\d s$", message)
    stats = pool.stats()
    assert stats["last_connect_error"] == FakeConnect.REFUSED
    assert 0 <= stats["server_down_ms"] < 5000
    assert (stats["connections_errors"], stats["requests_errors"]) == (1, 2)
    assert stats["requests_timeouts"] == 0
    assert connect.attempts == 1


@pytest.mark.timing
def test_reconnect_attempts_back_off_up_to_the_cap_and_recover(
    outage, connect, fast_backoff, caplog
):
    pool = outage("backoff", attempts=6)
    times = connect.attempt_times[:6]
    gaps = [later - earlier for earlier, later in pairwise(times)]
    for gap, backoff in zip(gaps, [0.05, 0.1, 0.2, 0.2, 0.2], strict=True):
        assert backoff * 0.9 - 0.005 <= gap < backoff * 1.1 + 0.15, gaps
    # One warning per failed attempt, one line when the server is back, nothing more.
    failures = connect.attempts - connect.opened
    ours = [record for record in caplog.records if "pool 'backoff'" in record.getMessage()]
    warnings = [r.getMessage() for r in ours if r.levelno == logging.WARNING]
    assert len(warnings) == failures == pool.stats()["connections_errors"]
    assert "server marked down" in warnings[0]
    assert all("reconnect attempt failed" in message for message in warnings[1:])
    infos = [r.getMessage() for r in ours if r.levelno == logging.INFO]
    assert len(infos) == 1
    assert "server is back after" in infos[0]
    stats = pool.stats()
    assert (stats["server_down_ms"], stats["last_connect_error"]) == (0, None)


def test_reconnect_failures_are_rate_limited(outage, caplog, monkeypatch):
    monkeypatch.setattr(Backoff, "INITIAL", 0.01)
    monkeypatch.setattr(Backoff, "MAX", 0.02)
    outage("down", attempts=10)
    messages = [record.getMessage() for record in caplog.records]
    assert len(messages) == 3
    assert "server marked down" in messages[0]
    assert "reconnect attempt failed" in messages[1]
    assert "server is back after" in messages[2]


def test_a_borrower_brings_the_next_attempt_forward(make_pool, connect, monkeypatch):
    monkeypatch.setattr(Backoff, "INITIAL", 60.0)  # the worker alone would wait a minute
    pool = make_pool(timeout=5)
    connect.switch_off()
    with pytest.raises(FakeError):
        pool.getconn()
    time.sleep(Backoff.BORROWER_INTERVAL + 0.01)
    with pytest.raises(FakeError):  # the attempt's own error, not ServerUnavailable
        pool.getconn()
    assert connect.attempts == 2
    connect.switch_on()
    time.sleep(Backoff.BORROWER_INTERVAL + 0.01)
    assert pool.getconn() is connect.connections[0]
    assert connect.attempts == 3


def test_borrowers_try_the_server_at_most_every_100_ms(make_pool, connect):
    pool = make_pool(timeout=5)
    connect.switch_off()
    failures = 0
    deadline = time.monotonic() + 0.5
    while time.monotonic() < deadline:
        started = time.monotonic()
        with pytest.raises((FakeError, ServerUnavailable)):
            pool.getconn()
        assert time.monotonic() - started < 0.1  # failing fast: no waiting out the timeout
        failures += 1
        time.sleep(0.001)
    assert failures > 50
    assert 3 <= connect.attempts <= 7, connect.attempt_times


def test_idle_connections_from_before_a_restart_never_reach_borrowers(make_pool, connect):
    pool = make_pool(max_size=4)
    old = hold_all(pool, 3)
    for conn in old:
        pool.putconn(conn)
    connect.switch_off()
    # Nothing has told the pool yet: the first borrower finds out, and its query fails.
    first = pool.getconn()
    first.status = TxStatus.UNKNOWN
    pool.putconn(first)
    with pytest.raises(FakeError, match="No such file"):
        pool.getconn()  # checks both idle ones, which fail, then the connect fails
    assert all(conn.closed for conn in old)
    with pytest.raises(ServerUnavailable):
        pool.getconn()
    connect.switch_on()
    conn = borrow_when_up(pool)
    assert conn not in old
    assert conn.pings == 0
    stats = pool.stats()
    assert (stats["returns_bad"], stats["connections_lost"], stats["pool_size"]) == (1, 2, 1)


# The return path


@pytest.mark.parametrize("status", [TxStatus.INTRANS, TxStatus.INERROR, TxStatus.ACTIVE])
def test_open_transaction_is_rolled_back_on_return(make_pool, status):
    pool = make_pool()
    conn = pool.getconn()
    conn.status = status
    pool.putconn(conn)
    assert conn.rollbacks == 1
    assert pool.getconn() is conn
    assert conn.status == TxStatus.IDLE


def test_idle_connection_is_returned_without_any_call(make_pool):
    pool = make_pool()
    conn = pool.getconn()
    pool.putconn(conn)
    assert conn.calls == []


def test_broken_connection_is_closed_and_counted(make_pool, caplog):
    pool = make_pool()
    conn = pool.getconn()
    conn.status = TxStatus.UNKNOWN
    with caplog.at_level(logging.WARNING, logger="django_pool"):
        pool.putconn(conn)
    assert conn.closed
    assert "returned broken" in caplog.text
    stats = pool.stats()
    assert (stats["returns_bad"], stats["connections_closed"], stats["pool_size"]) == (1, 1, 0)
    assert pool.getconn() is not conn


def test_failed_rollback_closes_the_connection_as_bad(make_pool):
    pool = make_pool()
    conn = pool.getconn()
    conn.status = TxStatus.INERROR
    conn.fail_rollback = True
    pool.putconn(conn)
    assert conn.closed
    assert pool.stats()["returns_bad"] == 1


def test_broken_connection_is_replaced_for_a_waiter(make_pool):
    pool = make_pool(max_size=1)
    conn = pool.getconn()
    results = []
    waiter = borrow_in_thread(pool, results, timeout=5)
    assert wait_until(lambda: pool.waiting() == 1)
    conn.status = TxStatus.UNKNOWN
    pool.putconn(conn)
    waiter.join(5)
    assert len(results) == 1
    assert isinstance(results[0], FakeConnection)
    assert results[0] is not conn


def test_reset_discard_runs_discard_all_on_every_return(make_pool):
    pool = make_pool(reset="discard")
    conn = pool.getconn()
    pool.putconn(conn)
    assert conn.calls == ["discard_all"]
    assert pool.getconn() is conn
    conn.status = TxStatus.INTRANS
    pool.putconn(conn)
    assert conn.calls == ["discard_all", "rollback", "discard_all"]


def test_failed_discard_closes_the_connection_as_bad(make_pool):
    pool = make_pool(reset="discard")
    conn = pool.getconn()
    conn.fail_discard = True
    pool.putconn(conn)
    assert conn.closed
    assert pool.stats()["returns_bad"] == 1


# Lifetime


@pytest.mark.timing
def test_expired_connection_is_closed_on_return(make_pool):
    pool = make_pool(max_lifetime=0.05)
    conn = pool.getconn()
    conn.status = TxStatus.INTRANS
    time.sleep(0.06)
    pool.putconn(conn)
    assert conn.closed
    assert conn.rollbacks == 0
    stats = pool.stats()
    assert (stats["connections_closed"], stats["returns_bad"]) == (1, 0)
    assert pool.getconn() is not conn


@pytest.mark.timing
def test_expired_idle_connection_is_skipped_on_borrow(make_pool):
    pool = make_pool(max_lifetime=0.1, check="never")
    conn = pool.getconn()
    pool.putconn(conn)
    time.sleep(0.12)
    other = pool.getconn()
    assert other is not conn
    assert conn.closed
    assert pool.stats()["connections_lost"] == 0


@pytest.mark.timing
def test_expired_connection_is_replaced_for_a_waiter(make_pool):
    pool = make_pool(max_size=1, max_lifetime=0.05)
    conn = pool.getconn()
    results = []
    waiter = borrow_in_thread(pool, results, timeout=5)
    assert wait_until(lambda: pool.waiting() == 1)
    time.sleep(0.06)
    pool.putconn(conn)
    waiter.join(5)
    assert conn.closed
    assert isinstance(results[0], FakeConnection)
    assert results[0] is not conn


@pytest.mark.timing
def test_lifetime_has_negative_jitter(make_pool, monkeypatch):
    calls = []

    def uniform(low, high):
        calls.append((low, high))
        return high

    monkeypatch.setattr(pool_module.random, "uniform", uniform)
    pool = make_pool(max_lifetime=0.4)
    conn = pool.getconn()
    time.sleep(0.38)  # past 0.4 * (1 - 0.1), before 0.4
    pool.putconn(conn)
    assert calls == [(0.0, 0.1)]
    assert conn.closed


# Health check on borrow


@pytest.mark.timing
def test_connection_idle_past_check_is_pinged(make_pool):
    pool = make_pool(check=0.05)
    conn = pool.getconn()
    pool.putconn(conn)
    pool.putconn(pool.getconn())
    assert conn.pings == 0
    time.sleep(0.06)
    assert pool.getconn() is conn
    assert conn.pings == 1


def test_default_check_does_not_ping_recently_used_connections(make_pool):
    pool = make_pool()
    conn = pool.getconn()
    for _ in range(100):
        pool.putconn(conn)
        conn = pool.getconn()
    assert conn.pings == 0


@pytest.mark.timing
def test_dead_idle_connections_are_replaced_transparently(make_pool, connect, caplog):
    pool = make_pool(check=0.05)
    dead = hold_all(pool, 2)
    for conn in dead:
        conn.fail_ping = True
        pool.putconn(conn)
    time.sleep(0.06)
    with caplog.at_level(logging.WARNING, logger="django_pool"):
        conn = pool.getconn()
    assert conn not in dead
    assert all(conn.closed for conn in dead)
    assert "failed its check" in caplog.text
    stats = pool.stats()
    assert (stats["connections_lost"], stats["requests_errors"]) == (2, 0)
    assert (stats["pool_size"], stats["pool_in_use"]) == (1, 1)


def test_check_never_does_not_ping(make_pool):
    pool = make_pool(check="never")
    conn = pool.getconn()
    pool.putconn(conn)
    time.sleep(0.02)
    assert pool.getconn() is conn
    assert conn.pings == 0


def test_check_always_pings_on_every_borrow(make_pool):
    pool = make_pool(check="always")
    for _ in range(3):
        conn = pool.getconn()
        pool.putconn(conn)
    assert conn.pings == 3


def test_a_broken_return_gets_every_older_idle_connection_checked(make_pool, connect):
    pool = make_pool()  # check=1.0, and every connection is fresh
    idle = hold_all(pool, 4)
    for conn in idle:
        pool.putconn(conn)
    broken = pool.getconn()
    for conn in idle:
        conn.die()
    broken.status = TxStatus.UNKNOWN
    pool.putconn(broken)
    borrowed = hold_all(pool, 3)
    assert not set(borrowed) & set(idle)
    assert all(conn.closed for conn in idle)
    assert [conn.pings for conn in idle if conn is not broken] == [1, 1, 1]
    assert [conn.pings for conn in borrowed] == [0, 0, 0]  # opened after: trusted
    stats = pool.stats()
    assert (stats["returns_bad"], stats["connections_lost"], stats["connections_num"]) == (1, 3, 7)


def test_a_connection_checked_after_the_suspicion_is_trusted_again(make_pool):
    pool = make_pool()
    first, second = hold_all(pool, 2)
    pool.putconn(first)
    second.status = TxStatus.UNKNOWN
    pool.putconn(second)
    assert pool.getconn() is first
    pool.putconn(first)
    assert pool.getconn() is first
    assert first.pings == 1


@pytest.mark.timing
def test_a_failed_check_gets_connections_borrowed_then_checked_on_their_return(make_pool):
    pool = make_pool(check=0.05)
    stale, busy = hold_all(pool, 2)
    pool.putconn(stale)
    time.sleep(0.06)
    stale.die()
    busy.die()
    fresh = pool.getconn()  # checks the stale one, which fails
    assert stale.closed
    pool.putconn(busy)  # its borrower noticed nothing
    other = pool.getconn()
    assert other not in (stale, busy)
    assert busy.pings == 1
    assert busy.closed
    assert pool.stats()["connections_lost"] == 2
    pool.putconn(fresh)


# Sizing


def test_pool_opens_nothing_before_first_use(make_pool, connect):
    pool = make_pool(min_size=3)
    assert not pool._worker.thread.is_alive()  # nothing could have connected
    assert connect.attempts == 0
    pool.putconn(pool.getconn())
    assert wait_until(lambda: connect.attempts == 3)


def test_min_size_is_opened_in_the_background_after_first_use(make_pool, connect):
    connect.delay = 0.02
    pool = make_pool(min_size=3, max_size=5)
    pool.putconn(pool.getconn())
    assert pool.size() == 3  # counted while connecting
    assert wait_until(lambda: pool.available() == 3)
    time.sleep(0.05)
    assert connect.opened == 3


def test_min_size_is_refilled_after_a_bad_return(make_pool, connect):
    pool = make_pool(min_size=2)
    pool.putconn(pool.getconn())
    assert wait_until(lambda: pool.available() == 2)
    conn = pool.getconn()
    conn.status = TxStatus.UNKNOWN
    pool.putconn(conn)
    assert wait_until(lambda: pool.available() == 2)
    assert connect.opened == 3


@pytest.mark.timing
def test_pool_shrinks_after_a_spike_while_one_thread_keeps_borrowing(make_pool, connect):
    spike = 8
    pool = make_pool(min_size=1, max_size=spike, max_idle=0.2)
    barrier = threading.Barrier(spike)

    def hold_together():
        with pool.connection(timeout=5):
            barrier.wait(5)

    threads = [start(hold_together) for _ in range(spike)]
    for thread in threads:
        thread.join(5)
    assert pool.size() == spike
    used = set()
    deadline = time.monotonic() + 5
    while pool.size() > 1 and time.monotonic() < deadline:
        with pool.connection() as conn:
            used.add(conn)
        time.sleep(0.005)
    assert pool.size() == 1
    assert len(used) == 1  # LIFO: the same connection every time, the others left to idle out
    assert pool.stats()["connections_closed"] == spike - 1
    assert connect.open_now == 1


@pytest.mark.timing
def test_idle_pool_shrinks_in_the_background(make_pool):
    pool = make_pool(min_size=1, max_size=4, max_idle=0.05)
    for conn in hold_all(pool, 4):
        pool.putconn(conn)
    assert wait_until(lambda: pool.size() == 1, timeout=3)
    assert pool.available() == 1


# Parking: kept at a request's end for the same wrapper's next request, or for anyone in need


def test_a_parked_connection_is_taken_back_with_its_ticket(make_pool):
    pool = make_pool(max_size=2)
    conn = pool.getconn()  # queued: min_size is 0
    ticket = pool.park(conn, request_borrows=3)
    assert ticket is not None
    assert (pool.in_use(), pool.available()) == (0, 1)
    assert pool.take_back(ticket) is conn
    assert pool.in_use() == 1
    assert pool.take_back(ticket) is None  # taken once only
    pool.putconn(conn)
    stats = pool.stats()
    assert (stats["requests_num"], stats["requests_queued"]) == (2, 1)
    assert (stats["django_requests"], stats["request_borrows"]) == (1, 3)


def test_borrowers_take_a_parked_connection_last_and_reset(make_pool):
    pool = make_pool(max_size=2)
    parked, other = pool.getconn(), pool.getconn()
    parked.set("DateStyle", "German")  # its thread's own business while parked
    ticket = pool.park(parked)
    pool.putconn(other)
    assert pool.getconn() is other
    assert pool.getconn() is parked  # none idle: taken from the parking, with no wait
    assert parked.session == DEFAULT_SESSION  # reset as on any return
    assert pool.take_back(ticket) is None  # never lent twice
    assert pool.stats()["requests_queued"] == 2  # the two first borrows only


def test_a_ticket_takes_back_nothing_once_another_borrower_parked_the_connection(make_pool):
    pool = make_pool(max_size=1)
    conn = pool.getconn()
    mine = pool.park(conn)
    theirs = []

    def other_thread_two_requests():
        assert pool.getconn(timeout=1) is conn  # none idle: taken from the parking
        pool.putconn(conn)
        assert pool.getconn(timeout=1) is conn
        conn.set("DateStyle", "SQL, DMY")
        theirs.append(pool.park(conn))

    other = start(other_thread_two_requests)
    other.join(5)
    assert theirs and theirs[0] is not None
    assert pool.take_back(mine) is None  # parked again, but by the other thread
    assert pool.getconn() is conn  # borrowed anew: from the other thread's parking, reset
    assert conn.session == DEFAULT_SESSION
    assert pool.take_back(theirs[0]) is None
    pool._maintain()  # the other thread has ended: nothing of its own is left to reclaim
    assert not conn.closed
    assert pool.stats()["connections_reclaimed"] == 0
    pool.putconn(conn)


def test_a_ticket_is_good_for_its_own_pool_only(make_pool):
    first, second = make_pool(max_size=1), make_pool(max_size=1)
    ticket = first.park(first.getconn())
    theirs = second.park(second.getconn())
    assert ticket != theirs
    assert second.take_back(ticket) is None
    assert second.available() == 1


def test_a_failed_take_back_counts_no_hold(make_pool, clock):
    pool = make_pool(max_size=1, max_lifetime=1.0)
    conn = pool.getconn()
    clock.advance(0.01)
    ticket = pool.park(conn)
    clock.advance(1.5)  # parked past its lifetime
    assert pool.take_back(ticket) is None
    assert conn.closed
    holds = pool.snapshot()["hold_ms"]
    assert holds["count"] == 1  # the borrow before parking, held 10 ms; the parked time is no hold
    assert pool.stats()["usage_ms"] == 10


def test_a_take_back_is_checked_as_a_borrow_would_be(make_pool, clock):
    pool = make_pool(max_size=1, check=5.0)
    conn = pool.getconn()
    ticket = pool.park(conn)
    clock.advance(6)  # idle past check: pinged first
    assert pool.take_back(ticket) is conn and conn.pings == 1
    ticket = pool.park(conn)
    clock.advance(6)
    conn.fail_ping = True
    assert pool.take_back(ticket) is None
    assert conn.closed and pool.stats()["connections_lost"] == 1


def test_with_check_always_a_take_back_pings(make_pool):
    pool = make_pool(max_size=1, check="always")  # what CONN_HEALTH_CHECKS gives
    conn = pool.getconn()
    assert pool.take_back(pool.park(conn)) is conn
    assert conn.pings == 2  # its borrow's, then its take-back's
    pool.putconn(conn)


def test_a_take_back_counts_in_the_peak_in_use(make_pool, clock):
    pool = make_pool(max_size=2, check="never")
    conn = pool.getconn()
    ticket = pool.park(conn)
    clock.advance(10)
    pool.snapshot()  # closes the slot: the next one starts with nothing in use
    assert pool.take_back(ticket) is conn
    pool.park(conn)
    clock.advance(10)
    assert pool.snapshot()["history"]["points"][-1]["in_use"] == 1


def test_a_connection_is_parked_only_in_no_transaction_and_when_nobody_waits(make_pool):
    pool = make_pool(max_size=1, timeout=5.0)
    conn = pool.getconn()
    conn.status = TxStatus.INTRANS
    assert pool.park(conn) is None and conn.rollbacks == 1
    conn = pool.getconn()
    results = []
    waiter = borrow_in_thread(pool, results)
    assert wait_until(lambda: pool.waiting() == 1)
    assert pool.park(conn) is None  # handed over at once
    waiter.join(5)
    assert results == [conn]


def test_unpark_gives_a_parked_connection_back_reset(make_pool):
    pool = make_pool(max_size=1)
    conn = pool.getconn()
    conn.set("DateStyle", "German")
    ticket = pool.park(conn)
    pool.unpark(ticket)
    assert conn.session == DEFAULT_SESSION
    assert pool.take_back(ticket) is None
    pool.unpark(ticket)  # nothing there any more: nothing done
    assert (pool.in_use(), pool.available()) == (0, 1)


def test_parked_connections_of_exited_threads_go_back_reset(make_pool):
    pool = make_pool(max_size=2, max_idle=0.2)  # a maintenance round every 0.1 s

    def one_request():
        conn = pool.getconn()
        conn.set("DateStyle", "German")
        pool.park(conn)

    thread = start(one_request)
    thread.join()
    assert wait_until(lambda: pool.stats()["sessions_restored"] == 1, timeout=3)
    assert (pool.in_use(), pool.available()) == (0, 1)


@pytest.mark.timing
def test_a_connection_parked_past_max_idle_is_closed(make_pool):
    pool = make_pool(min_size=0, max_size=2, max_idle=0.05)
    conn = pool.getconn()
    ticket = pool.park(conn)
    assert wait_until(lambda: conn.closed, timeout=3)
    assert pool.take_back(ticket) is None
    assert pool.size() == 0


@pytest.mark.timing
def test_a_connection_parked_past_its_lifetime_is_closed_by_the_next_round(make_pool):
    pool = make_pool(max_size=2, max_lifetime=0.2)  # max_idle stays 600 s
    conn = pool.getconn()
    ticket = pool.park(conn)
    assert wait_until(lambda: conn.closed, timeout=3)
    assert pool.take_back(ticket) is None
    assert pool.size() == 0


def test_closing_the_pool_closes_parked_connections(make_pool):
    pool = make_pool(max_size=2)
    conn = pool.getconn()
    pool.park(conn)
    assert pool.close_idle() == 1 and conn.closed
    conn = pool.getconn()
    ticket = pool.park(conn)
    pool.close()
    assert conn.closed
    assert pool.take_back(ticket) is None


def test_a_parked_connection_is_neither_leaked_nor_held(make_pool, rounds):
    pool = make_pool(max_size=1, leak_timeout=0.05)
    conn = pool.getconn()
    ticket = pool.park(conn)
    seen = rounds[pool.name]
    assert wait_until(lambda: rounds[pool.name] >= seen + 3, timeout=3)
    assert pool.stats()["connections_leaked"] == 0
    assert pool.take_back(ticket) is conn
    assert wait_until(lambda: pool.stats()["connections_leaked"] == 1, timeout=3)
    pool.putconn(conn)


# Garbage collection


def available_is(pool, count):
    # A closure over this function's argument, not over the caller's variable it deletes.
    return lambda: pool.available() == count


def test_closed_pool_is_garbage_collected(connect):
    pool = ConnectionPool(connect, PoolConfig(name="gc-closed", min_size=1), FakeDriver())
    pool.putconn(pool.getconn())
    pool.close()
    ref = weakref.ref(pool)
    del pool
    assert wait_until(lambda: is_collected(ref))


def test_forgotten_pool_is_garbage_collected(connect):
    # Deliberately never closed: this is what the test is about.
    pool = ConnectionPool(connect, PoolConfig(name="gc-open", min_size=2), FakeDriver())
    pool.putconn(pool.getconn())
    assert wait_until(available_is(pool, 2))
    ref = weakref.ref(pool)
    del pool
    assert wait_until(lambda: is_collected(ref))


# Session state


def test_changed_session_is_restored_on_return(make_pool):
    pool = make_pool()
    conn = pool.getconn()
    conn.set("TimeZone", "Europe/Paris")
    pool.putconn(conn)
    assert conn.calls == ["restore_session"]
    assert conn.session == DEFAULT_SESSION
    assert pool.getconn() is conn
    assert pool.stats()["sessions_restored"] == 1


def test_session_is_restored_after_the_rollback(make_pool):
    pool = make_pool()
    conn = pool.getconn()
    conn.status = TxStatus.INTRANS
    conn.set("search_path", "tenant_42")
    pool.putconn(conn)
    assert conn.calls == ["rollback", "restore_session"]
    assert pool.getconn() is conn
    assert conn.session == DEFAULT_SESSION


def test_unchanged_session_is_not_restored(make_pool):
    pool = make_pool(reset="discard")
    conn = pool.getconn()
    conn.status = TxStatus.INTRANS
    pool.putconn(conn)
    assert conn.calls == ["rollback", "discard_all"]
    assert pool.stats()["sessions_restored"] == 0


def test_failed_restore_closes_the_connection_as_bad(make_pool, caplog):
    pool = make_pool()
    conn = pool.getconn()
    conn.set("application_name", "psql")
    conn.fail_restore = True
    with caplog.at_level(logging.WARNING, logger="django_pool"):
        pool.putconn(conn)
    assert conn.closed
    assert "failed reset: could not restore the session" in caplog.text
    stats = pool.stats()
    assert (stats["returns_bad"], stats["sessions_restored"], stats["pool_size"]) == (1, 0, 0)


# Connections never given back


def test_connection_of_an_exited_thread_is_reclaimed_for_a_waiter(make_pool, caplog):
    pool = make_pool(max_size=1)
    lost = []
    start(lambda: lost.append(pool.getconn()), name="forgetful").join(5)
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="django_pool"):
        conn = pool.getconn(timeout=5)
    assert time.monotonic() - started < 1
    assert conn is not lost[0]
    assert lost[0].closed
    assert "reclaiming a connection" in caplog.text
    assert "by thread 'forgetful', which exited without returning it" in caplog.text
    stats = pool.stats()
    assert (stats["connections_reclaimed"], stats["pool_size"], stats["pool_in_use"]) == (1, 1, 1)


def test_a_connection_given_back_after_it_was_reclaimed_is_accepted_with_a_warning(
    make_pool, caplog
):
    pool = make_pool(name="default", max_size=1)
    lost = []
    start(lambda: lost.append(pool.getconn()), name="forgetful").join(5)
    pool.putconn(pool.getconn(timeout=5))  # reclaims it
    with caplog.at_level(logging.WARNING, logger="django_pool"):
        pool.putconn(lost[0])  # from a thread that shared it: no exception
        pool.putconn(lost[0])
    late = [
        r.getMessage() for r in caplog.records if "after the pool reclaimed it" in r.getMessage()
    ]
    assert len(late) == 1
    assert "inc_thread_sharing()" in late[0]
    assert pool.stats()["pool_size"] == 1


def test_a_shared_connection_is_not_reclaimed_when_its_borrower_exits(make_pool):
    pool = make_pool(max_size=1)
    shared = []

    def borrow_and_share():
        conn = pool.getconn()
        pool.set_shared(conn, True)
        shared.append(conn)

    start(borrow_and_share).join(5)
    with pytest.raises(PoolTimeout):
        pool.getconn(timeout=0.1)  # a waiter looks for orphans
    assert not shared[0].closed
    assert pool.stats()["connections_reclaimed"] == 0
    pool.putconn(shared[0])  # the thread it was shared with gives it back
    assert pool.getconn() is shared[0]


def test_a_returned_record_forgets_its_borrower(make_pool):
    pool = make_pool(leak_timeout=60)
    conn = pool.getconn()
    pool.putconn(conn)
    (record,) = pool._idle
    assert (record.borrower, record.stack, record.shared) == (None, None, False)


def test_connection_of_an_exited_thread_is_reclaimed_in_the_background(make_pool):
    pool = make_pool(max_idle=0.1)  # a maintenance round every 0.05 s
    start(pool.getconn).join(5)
    assert wait_until(lambda: pool.stats()["connections_reclaimed"] == 1)
    assert pool.size() == 0


def test_connection_lent_to_a_live_thread_is_not_reclaimed(make_pool):
    pool = make_pool(max_size=1)
    held = pool.getconn()
    with pytest.raises(PoolTimeout):
        pool.getconn(timeout=0.05)
    assert not held.closed
    assert pool.stats()["connections_reclaimed"] == 0


def leaky_view(pool):
    return pool.getconn()


@pytest.mark.timing
def test_connection_held_past_leak_timeout_is_reported_once(make_pool, rounds, caplog):
    pool = make_pool(leak_timeout=0.05)
    with caplog.at_level(logging.WARNING, logger="django_pool"):
        conn = leaky_view(pool)
        assert wait_until(lambda: pool.stats()["connections_leaked"] == 1)
        seen = rounds[pool.name]
        assert wait_until(lambda: rounds[pool.name] >= seen + 3)  # rounds that saw it again
    pool.putconn(conn)
    leaks = [r.getMessage() for r in caplog.records if "leak_timeout" in r.getMessage()]
    assert len(leaks) == 1
    assert "by thread 'MainThread', past leak_timeout=0.05 s; borrowed at:" in leaks[0]
    assert "in leaky_view" in leaks[0]
    assert "return pool.getconn()" in leaks[0]
    assert pool.stats()["connections_leaked"] == 1


def test_connection_returned_before_leak_timeout_is_not_reported(make_pool, rounds):
    pool = make_pool(leak_timeout=0.1)
    for _ in range(3):
        with pool.connection():
            pass
    returned = time.monotonic()
    # Rounds come every 0.05 s: wait for some that ran past the leak timeout.
    assert wait_until(lambda: rounds[pool.name] >= 4 and time.monotonic() - returned > 0.15)
    assert pool.stats()["connections_leaked"] == 0


# A forked child


def test_pool_refuses_to_lend_in_a_forked_child(make_pool):
    pool = make_pool(name="default")
    held = pool.getconn()

    def report():
        try:
            pool.getconn(timeout=1)
        except PoolError as error:
            message = str(error)
        pool.putconn(held)
        pool.close()
        return {"error": message, "held_closed": held.closed}

    report = in_child(report)
    assert "pool 'default' belongs to process" in report["error"]
    assert "a forked child must create its own pool" in report["error"]
    assert report["held_closed"] is False
    pool.putconn(held)
    assert pool.available() == 1


def test_forked_child_detaches_every_inherited_connection(make_pool):
    pool = make_pool()
    held, idle = hold_all(pool, 2)
    pool.putconn(idle)
    # Another thread holds the pool's lock at the fork: the child must not need it.
    locked, release = threading.Event(), threading.Event()

    def hold_the_lock():
        with pool._lock:
            locked.set()
            release.wait(10)

    holder = start(hold_the_lock)
    assert locked.wait(5)

    def report():
        calls = [list(held.calls), list(idle.calls)]
        pool.putconn(held)
        pool.close()
        return {
            "calls": calls,
            "closed": [held.closed, idle.closed],
            "pool_closed": pool.closed,
            "pool_size": pool.stats()["pool_size"],
        }

    try:
        report = in_child(report)
    finally:
        release.set()
        holder.join(5)
    assert report == {
        "calls": [["detach"], ["detach"]],
        "closed": [False, False],
        "pool_closed": True,
        "pool_size": 2,
    }
    assert not held.detached and not idle.detached
    assert pool.getconn() is idle
    pool.putconn(held)


# Snapshots: histograms and history


@pytest.fixture
def clock(monkeypatch):
    """Drive the pool's clocks by hand: waits, holds and history slots take exact times."""
    clock = FakeClock()
    monkeypatch.setattr(pool_module, "monotonic", clock.monotonic)
    monkeypatch.setattr(pool_module, "time", clock.time)
    monkeypatch.setattr(logs, "monotonic", clock.monotonic)  # the log's rate limits
    return clock


def wait_in_thread(pool, clock, seconds):
    """Have a thread queue for a connection, then give it one ``seconds`` later (fake time).

    The thread returns it at once: one borrow waited exactly ``seconds``, then held it 0 s.
    """
    held = pool.getconn()
    waiter = start(lambda: pool.putconn(pool.getconn(timeout=10)))
    assert wait_until(lambda: pool.waiting() == 1)
    clock.advance(seconds)
    pool.putconn(held)
    waiter.join(5)
    assert not waiter.is_alive()


def test_snapshot_has_every_section_json_ready(make_pool):
    pool = make_pool(name="default", server="host=db dbname=shop", max_size=3, leak_timeout=30)
    pool.putconn(pool.getconn())
    before = time.time()
    snapshot = pool.snapshot()
    assert json.loads(json.dumps(snapshot)) == snapshot
    assert list(snapshot) == [
        "name",
        "pid",
        "host",
        "server",
        "taken_at",
        "config",
        "stats",
        "wait_ms",
        "hold_ms",
        "connect_ms",
        "history",
    ]
    assert (snapshot["name"], snapshot["server"]) == ("default", "host=db dbname=shop")
    assert snapshot["pid"] == os.getpid()
    assert snapshot["host"] == socket.gethostname()
    assert before <= snapshot["taken_at"] <= time.time()
    assert snapshot["config"] == {
        "min_size": 0,
        "max_size": 3,
        "timeout": 10.0,
        "max_waiting": 0,
        "max_lifetime": 3600.0,
        "max_idle": 600.0,
        "check": 1.0,
        "reset": "rollback",
        "release": "request",
        "park": True,
        "leak_timeout": 30,
    }
    stats = pool.stats()
    assert snapshot["stats"] == stats
    for key in ("wait_ms", "hold_ms", "connect_ms"):
        assert set(snapshot[key]) == {"count", "sum", "p50", "p95", "p99", "buckets"}
        assert snapshot[key]["buckets"][-1] == ["+Inf", snapshot[key]["count"]]
    assert snapshot["connect_ms"]["count"] == stats["connections_num"] == 1
    assert snapshot["history"] == {"interval_s": 10, "points": []}


def test_snapshot_is_a_fresh_dict(make_pool):
    pool = make_pool()
    first = pool.snapshot()
    first["stats"]["requests_num"] = 99
    first["wait_ms"]["buckets"].clear()
    second = pool.snapshot()
    assert second["stats"]["requests_num"] == 0
    assert len(second["wait_ms"]["buckets"]) == len(first["hold_ms"]["buckets"])


def test_wait_percentiles_come_from_known_waits(make_pool, clock):
    pool = make_pool(max_size=1, check="never")
    for _ in range(16):
        pool.putconn(pool.getconn())  # lent at once: zero waits (the first one too, in fake time)
    for _ in range(2):
        wait_in_thread(pool, clock, 0.2)  # one zero wait, one of 200 ms
    waits = pool.snapshot()["wait_ms"]
    assert waits["count"] == 20 == pool.stats()["requests_num"]
    assert waits["sum"] == pytest.approx(400.0)
    assert waits["buckets"][0] == [0.0, 18]  # the fast path's zero bucket
    assert waits["p50"] == 0.0
    # Rank 19 of 20 is the first of the two 200 ms waits in (100, 250]: halfway through it.
    assert waits["p95"] == pytest.approx(175.0)
    assert waits["p99"] == pytest.approx(235.0)


@pytest.mark.timing
def test_wait_percentiles_of_real_waits(make_pool):
    pool = make_pool(max_size=1)
    pool.putconn(pool.getconn())
    for _ in range(8):
        pool.putconn(pool.getconn())
    for _ in range(2):
        held = pool.getconn()
        results = []
        waiter = borrow_in_thread(pool, results, timeout=10)
        assert wait_until(lambda: pool.waiting() == 1)
        time.sleep(0.3)
        pool.putconn(held)
        waiter.join(5)
        pool.putconn(results[0])
    waits = pool.snapshot()["wait_ms"]
    assert waits["count"] == 13
    assert waits["p50"] == 0.0
    assert 250.0 <= waits["p95"] <= 2500.0
    assert waits["sum"] >= 600.0


def test_a_timeout_counts_as_a_wait_of_its_length(make_pool):
    pool = make_pool(max_size=1)
    held = pool.getconn()
    with pytest.raises(PoolTimeout):
        pool.getconn(timeout=0.05)
    waits = pool.snapshot()["wait_ms"]
    assert waits["count"] == 2
    assert 50.0 <= waits["sum"] < 2000.0
    pool.putconn(held)


def test_hold_times_are_measured_from_borrow_to_return(make_pool, clock):
    pool = make_pool(check="never")
    for hold in (0.007, 0.03, 0.03, 2.0):
        conn = pool.getconn()
        clock.advance(hold)
        pool.putconn(conn)
    holds = pool.snapshot()["hold_ms"]
    assert (holds["count"], holds["sum"]) == (4, pytest.approx(2067.0))
    assert dict(holds["buckets"])[10.0] == 1
    assert dict(holds["buckets"])[50.0] == 3
    assert 1000.0 < holds["p99"] <= 2500.0
    assert pool.stats()["usage_ms"] == 2067


@pytest.mark.timing
def test_connect_times_are_measured(make_pool, connect):
    connect.delay = 0.03
    pool = make_pool()
    pool.putconn(pool.getconn())
    connects = pool.snapshot()["connect_ms"]
    assert connects["count"] == 1
    assert 30.0 <= connects["sum"] < 1000.0
    assert 25.0 <= connects["p50"] <= 1000.0
    assert pool.stats()["connections_ms"] == round(connects["sum"])  # stats() rounds the sum


def test_history_has_a_point_per_10_s_with_peaks_and_rates(make_pool, clock):
    pool = make_pool(max_size=4, check="never")
    held = hold_all(pool, 3)
    for conn in held:
        pool.putconn(conn)
    for _ in range(7):
        pool.putconn(pool.getconn())
    clock.advance(10)
    pool.putconn(pool.getconn())  # starts the next slot: the first one is closed
    (point,) = pool.snapshot()["history"]["points"]
    assert point["t"] == int(clock.wall) - 10
    # Each of the first three borrows waited for its connection to be opened.
    assert (point["in_use"], point["idle"], point["waiting"]) == (3, 3, 1)
    assert point["borrows_per_s"] == 1.0  # 10 borrows in 10 s
    assert (point["wait_p95_ms"], point["hold_ms"]) == (0.0, 0.0)
    assert point["timeouts"] == point["errors"] == point["lost"] == 0


def test_history_counts_borrowed_connections_and_those_running_a_query(make_pool, clock):
    pool = make_pool(max_size=3, check="never")
    working, waiting = pool.getconn(), pool.getconn()
    working.status = TxStatus.ACTIVE  # libpq's status while a query runs
    clock.advance(10)
    (point,) = pool.snapshot()["history"]["points"]
    assert (point["held_seen"], point["busy_seen"]) == (2, 1)
    working.status = TxStatus.IDLE
    pool.putconn(working)
    pool.putconn(waiting)


def test_history_counts_waiters_and_timeouts_in_their_slot(make_pool, clock):
    pool = make_pool(max_size=1, check="never")
    for _ in range(8):
        pool.putconn(pool.getconn())
    wait_in_thread(pool, clock, 0.5)
    held = pool.getconn()
    with pytest.raises(PoolTimeout):
        pool.getconn(timeout=0.01)
    pool.putconn(held)
    clock.advance(10)
    points = pool.snapshot()["history"]["points"]
    assert len(points) == 1
    assert (points[0]["waiting"], points[0]["timeouts"], points[0]["errors"]) == (1, 1, 1)
    assert points[0]["in_use"] == 1
    # 12 waits: 11 of 0 ms (the timeout's too, in fake time) and one of 500 ms.
    assert 250.0 < points[0]["wait_p95_ms"] <= 500.0


def test_history_fills_quiet_slots(make_pool, clock):
    pool = make_pool(check="never")
    pool.putconn(pool.getconn())
    clock.advance(10 * 5 + 1)
    points = pool.snapshot()["history"]["points"]
    assert len(points) == 5
    assert [point["t"] for point in points] == [int(clock.wall) - 51 + 10 * n for n in range(5)]
    assert [point["borrows_per_s"] for point in points] == [0.1, 0.0, 0.0, 0.0, 0.0]
    assert [point["in_use"] for point in points] == [1, 0, 0, 0, 0]
    assert all(point["idle"] == 1 for point in points)


def test_history_keeps_the_last_hour(make_pool, clock):
    pool = make_pool(check="never")
    for _ in range(400):
        pool.putconn(pool.getconn())
        clock.advance(10)
    points = pool.snapshot()["history"]["points"]
    assert len(points) == 360
    assert all(point["borrows_per_s"] == 0.1 for point in points)
    assert points[-1]["t"] - points[0]["t"] == 3590


def test_history_counts_lost_connections(make_pool, clock):
    pool = make_pool(check="always")
    conn = pool.getconn()
    conn.fail_ping = True
    pool.putconn(conn)
    pool.putconn(pool.getconn())
    broken = pool.getconn()
    broken.status = TxStatus.UNKNOWN
    pool.putconn(broken)
    clock.advance(10)
    (point,) = pool.snapshot()["history"]["points"]
    assert (point["lost"], point["returns_bad"], point["reclaimed"]) == (1, 1, 0)


def test_the_maintenance_thread_closes_slots_of_an_unused_pool(make_pool):
    pool = make_pool()
    pool.putconn(pool.getconn())  # joins the maintenance thread's rounds
    with pool._lock:
        pool._stats.history = History(interval_s=0.05)
        pool._next_sample = pool._stats.history.next_due
    assert wait_until(lambda: len(pool._stats.history.rows()) >= 3)


def test_fast_path_costs_no_history_work_between_samples(make_pool, clock, monkeypatch):
    pool = make_pool()
    pool.putconn(pool.getconn())
    samples = []
    monkeypatch.setattr(ConnectionPool, "_sample", lambda pool, now: samples.append(now))
    for _ in range(100):
        pool.putconn(pool.getconn())
    assert samples == []


# Events


@pytest.fixture
def events():
    return []


@pytest.fixture
def make_watched_pool(make_pool, events):
    """Make pools whose on_event records (event, info, whether the pool's lock was free)."""

    def make(**options):
        def on_event(event, info):
            free = pool._lock.acquire(timeout=1)
            if free:
                pool._lock.release()
            events.append((event, info, free))

        pool = make_pool(on_event=on_event, **options)
        return pool

    return make


def test_a_new_connection_is_an_event(make_watched_pool, events, connect):
    connect.delay = 0.01
    pool = make_watched_pool()
    pool.putconn(pool.getconn())
    assert wait_until(lambda: len(events) == 1)
    ((event, info, free),) = events
    assert (event, list(info), free) == ("connection_created", ["connect_ms"], True)
    assert 10.0 <= info["connect_ms"] < 5000.0


def test_the_fast_path_sends_no_event(make_watched_pool, events):
    pool = make_watched_pool()
    pool.putconn(pool.getconn())
    assert wait_until(lambda: len(events) == 1)
    for _ in range(100):
        pool.putconn(pool.getconn())
    assert len(events) == 1


def test_a_connection_failing_its_check_is_an_event(make_watched_pool, events):
    pool = make_watched_pool(check="always")
    conn = pool.getconn()
    conn.fail_ping = True
    pool.putconn(conn)
    pool.putconn(pool.getconn())
    assert background.flush()
    assert ("connection_lost", {"reason": "check"}, True) in events


@pytest.mark.parametrize("fault", ["unknown status", "failed rollback"])
def test_a_connection_returned_broken_is_an_event(make_watched_pool, events, fault):
    pool = make_watched_pool()
    conn = pool.getconn()
    if fault == "unknown status":
        conn.status = TxStatus.UNKNOWN
    else:
        conn.status, conn.fail_rollback = TxStatus.INERROR, True
    pool.putconn(conn)
    assert background.flush()
    assert ("connection_lost", {"reason": "broken"}, True) in events


def test_a_reclaimed_connection_is_an_event(make_watched_pool, events):
    pool = make_watched_pool(max_size=1)
    start(pool.getconn).join(5)
    pool.putconn(pool.getconn(timeout=5))
    assert background.flush()
    assert ("connection_lost", {"reason": "reclaimed"}, True) in events


def test_a_timeout_is_an_exhausted_event(make_watched_pool, events):
    pool = make_watched_pool(max_size=1)
    held = pool.getconn()
    with pytest.raises(PoolTimeout):
        pool.getconn(timeout=0.01)
    info = {"error": "timeout", "in_use": 1, "max_size": 1, "waiting": 0}
    assert background.flush()
    assert events[-1] == ("pool_exhausted", info, True)
    pool.putconn(held)


def test_a_refusal_is_an_exhausted_event(make_watched_pool, events):
    pool = make_watched_pool(max_size=1, max_waiting=1)
    held = pool.getconn()
    results = []
    waiter = borrow_in_thread(pool, results, timeout=5)
    assert wait_until(lambda: pool.waiting() == 1)
    with pytest.raises(TooManyRequests):
        pool.getconn()
    info = {"error": "too_many", "in_use": 1, "max_size": 1, "waiting": 1}
    assert background.flush()
    assert events[-1] == ("pool_exhausted", info, True)
    pool.putconn(held)
    waiter.join(5)


def test_a_failing_on_event_is_logged_and_ignored(make_pool, caplog):
    def on_event(event, info):
        raise RuntimeError("receiver bug")

    pool = make_pool(name="default", max_size=1, on_event=on_event)
    with caplog.at_level(logging.ERROR, logger="django_pool"):
        held = pool.getconn()
        assert wait_until(lambda: caplog.records)  # connection_created, from another thread
        with pytest.raises(PoolTimeout):
            pool.getconn(timeout=0.01)
    pool.putconn(held)
    assert pool.getconn() is held
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1  # the second failure (pool_exhausted) was rate-limited
    assert "pool 'default': on_event('connection_created') failed" in errors[0].getMessage()
    assert "RuntimeError: receiver bug" in caplog.text


# Logging, rate-limited per pool and per kind


def test_a_slow_wait_is_logged_at_info(make_pool, clock, caplog):
    pool = make_pool(name="default", max_size=1, check="never")
    pool.putconn(pool.getconn())
    with caplog.at_level(logging.INFO, logger="django_pool"):
        wait_in_thread(pool, clock, 0.099)
        wait_in_thread(pool, clock, 0.15)
    slow = [r for r in caplog.records if "waited" in r.getMessage()]
    assert [r.levelno for r in slow] == [logging.INFO]
    assert slow[0].getMessage() == (
        "pool 'default': a borrow waited 150 ms for a connection (1/1 in use, 0 waiting)"
    )
    assert slow[0].funcName == "_getconn_slow"


def test_a_timeout_is_logged_as_a_warning(make_pool, caplog):
    pool = make_pool(name="default", max_size=1)
    held = pool.getconn()
    with caplog.at_level(logging.WARNING, logger="django_pool"), pytest.raises(PoolTimeout):
        pool.getconn(timeout=0.01)
    (record,) = caplog.records
    assert record.levelno == logging.WARNING
    assert record.getMessage().startswith("pool 'default': couldn't get a connection after 0.01 s")
    assert record.funcName == "_report_exhausted"
    pool.putconn(held)


def return_broken(pool):
    conn = pool.getconn()
    conn.status = TxStatus.UNKNOWN
    pool.putconn(conn)


def test_records_of_a_kind_are_rate_limited_and_the_next_one_counts_the_rest(
    make_pool, clock, caplog
):
    pool = make_pool(name="default")
    with caplog.at_level(logging.WARNING, logger="django_pool"):
        for _ in range(38):
            return_broken(pool)
        clock.advance(9.9)
        return_broken(pool)
        assert len(caplog.records) == 1
        clock.advance(0.1)
        return_broken(pool)
    first, second = (record.getMessage() for record in caplog.records)
    assert first == "pool 'default': closing a connection returned broken"
    assert second == (
        "pool 'default': closing a connection returned broken "
        "(38 similar suppressed in the last 10 s)"
    )
    assert pool.stats()["returns_bad"] == 40


def test_rate_limits_are_per_kind_and_per_pool(make_pool, caplog):
    one, two = make_pool(name="one", max_size=1), make_pool(name="two")
    with caplog.at_level(logging.WARNING, logger="django_pool"):
        return_broken(two)
        return_broken(two)  # held back: same pool, same kind
        held = one.getconn()
        with pytest.raises(PoolTimeout):
            one.getconn(timeout=0.01)  # another kind
        one.putconn(held)
        return_broken(one)  # another pool
    messages = [record.getMessage() for record in caplog.records]
    assert messages == [
        "pool 'two': closing a connection returned broken",
        "pool 'one': couldn't get a connection after 0.01 s (1/1 in use, 0 waiting, max_size=1)",
        "pool 'one': closing a connection returned broken",
    ]


def test_nothing_is_counted_for_a_level_nobody_logs(make_pool, caplog):
    pool = make_pool(name="default")
    with caplog.at_level(logging.ERROR, logger="django_pool"):
        return_broken(pool)
    with caplog.at_level(logging.WARNING, logger="django_pool"):
        return_broken(pool)
    (record,) = caplog.records
    assert record.getMessage() == "pool 'default': closing a connection returned broken"


# Operators' actions


def test_close_idle_closes_only_idle_connections_and_refills_min_size(make_pool, connect):
    pool = make_pool(min_size=2, max_size=4)
    held = pool.getconn()
    assert wait_until(lambda: pool.available() >= 1 and pool.size() == 2)
    idle = list(pool._idle)
    assert pool.close_idle() == len(idle)
    assert all(record.conn.closed for record in idle)
    assert not held.closed
    assert wait_until(lambda: pool.size() == 2)  # min_size again, with new connections
    pool.putconn(held)
    assert not held.closed


def test_recycle_replaces_idle_now_and_borrowed_on_return(make_pool):
    pool = make_pool(max_size=3)
    first, second = pool.getconn(), pool.getconn()
    pool.putconn(first)
    assert pool.recycle() == 2
    assert first.closed and not second.closed  # the borrower keeps using it meanwhile
    pool.putconn(second)
    assert second.closed
    fresh = pool.getconn()
    assert fresh not in (first, second)
    pool.putconn(fresh)
    assert not fresh.closed  # connections made after the recycle live on


def test_recycle_counts_each_connection_once(make_pool):
    pool = make_pool(max_size=3)
    idle, parked, lent = pool.getconn(), pool.getconn(), pool.getconn()
    pool.putconn(idle)
    ticket = pool.park(parked)
    assert pool.recycle() == 3
    assert idle.closed and parked.closed and not lent.closed
    assert pool.take_back(ticket) is None
    pool.putconn(lent)
    assert lent.closed and pool.size() == 0


@pytest.mark.parametrize("during", ["reset", "check"])
def test_a_connection_in_hand_while_the_pool_is_recycled_is_never_lent_again(make_pool, during):
    pool = make_pool(max_size=1, check="always")
    conn = pool.getconn()
    if during == "reset":
        conn.set("DateStyle", "German")  # its return sets it back: a round trip
        conn.meanwhile = pool.recycle
        pool.putconn(conn)
    else:
        pool.putconn(conn)
        conn.meanwhile = pool.recycle  # the next borrow's check: a round trip

    fresh = pool.getconn()
    assert fresh is not conn and conn.closed
    pool.putconn(fresh)


def test_a_connection_whose_connect_began_before_a_recycle_is_replaced(make_pool, connect):
    pool = make_pool(max_size=1)
    connect.meanwhile = pool.recycle  # during the first connect
    conn = pool.getconn(timeout=5)
    assert conn.number == 2
    assert connect.connections[0].closed
    pool.putconn(conn)
