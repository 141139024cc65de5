"""The background threads: a worker per pool, and the process's events thread."""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from itertools import pairwise

import pytest

from django_pool import background
from django_pool.background import Events, Worker
from django_pool.errors import PoolError
from django_pool.options import PoolConfig
from django_pool.pool import ConnectionPool

from .fakes import FakeConnect, FakeDriver, in_child, is_collected, wait_until


class FakePool:
    """What a worker needs of a pool: a name, deadlines, a round, a sample."""

    def __init__(
        self, due: float = float("inf"), every: float = 0.03, sample_due: float = float("inf")
    ) -> None:
        self.name = "fake"
        self._due = due
        self._next_sample = sample_due
        self.every = every
        self.rounds: list[float] = []
        self.samples: list[float] = []

    def _maintain(self) -> None:
        now = time.monotonic()
        self.rounds.append(now)
        self._due = now + self.every

    def _sample_history(self) -> None:
        now = time.monotonic()
        self.samples.append(now)
        self._next_sample = now + self.every


@pytest.fixture
def make_worker():
    """Start workers for fake pools; stop them after the test."""
    workers = []

    def make(pool: FakePool) -> Worker:
        worker = Worker(pool)
        worker.start()
        workers.append(worker)
        return worker

    yield make
    for worker in workers:
        worker.stop(timeout=5)


@pytest.fixture
def events():
    """An events thread of the test's own, stopped after it."""
    events = Events()
    yield events
    events.stop(timeout=5)


@pytest.fixture
def pools():
    """Make real pools on fake connections; close them after the test."""
    made = []

    def make(name: str, connect: FakeConnect | None = None, **options) -> ConnectionPool:
        config = PoolConfig(name=name, **options)
        pool = ConnectionPool(connect or FakeConnect(), config, FakeDriver())
        made.append(pool)
        return pool

    yield make
    for pool in made:
        pool.close()


def worker_threads(name: str | None = None) -> list[threading.Thread]:
    prefix = "django_pool worker " + (name or "")
    return [thread for thread in threading.enumerate() if thread.name.startswith(prefix)]


# A pool's worker


def test_rounds_come_when_due(make_worker):
    pool = FakePool(due=time.monotonic() + 0.05)
    make_worker(pool)
    assert wait_until(lambda: len(pool.rounds) >= 4)
    rounds = pool.rounds[:4]
    assert all(later - earlier >= 0.02 for earlier, later in pairwise(rounds))


def test_history_samples_come_when_due(make_worker):
    pool = FakePool(sample_due=time.monotonic() + 0.05)
    due = pool._next_sample
    make_worker(pool)
    assert wait_until(lambda: len(pool.samples) >= 3)
    assert pool.samples[0] >= due
    assert all(later - earlier >= 0.02 for earlier, later in pairwise(pool.samples[:3]))


def test_tasks_run_in_order(make_worker):
    pool = FakePool()
    worker = make_worker(pool)
    done = []
    for number in range(3):
        worker.submit(lambda pool, number=number: done.append((pool, number)))
    assert wait_until(lambda: len(done) == 3)
    assert done == [(pool, 0), (pool, 1), (pool, 2)]


def test_a_failing_task_is_logged_and_the_thread_goes_on(make_worker, caplog):
    pool = FakePool()
    worker = make_worker(pool)
    done = threading.Event()
    with caplog.at_level(logging.ERROR, logger="django_pool"):
        worker.submit(lambda pool: 1 / 0)
        worker.submit(lambda pool: done.set())
        assert done.wait(5)
    assert "pool 'fake': background task failed" in caplog.text
    assert "ZeroDivisionError" in caplog.text


def test_a_collected_pool_ends_its_worker_and_drops_its_tasks(make_worker):
    gate = threading.Event()
    pool = FakePool()
    worker = make_worker(pool)
    ran = []
    worker.submit(lambda pool: gate.wait(5))
    worker.submit(lambda pool: ran.append(pool))
    ref = weakref.ref(pool)
    del pool
    gate.set()
    worker.thread.join(5)
    assert not worker.thread.is_alive()
    assert is_collected(ref)
    assert ran == []


def test_stop_ends_the_thread_at_once(make_worker):
    worker = make_worker(FakePool())
    started = time.monotonic()
    worker.stop(timeout=5)
    assert time.monotonic() - started < 1
    assert not worker.thread.is_alive()


def test_each_pool_has_its_own_worker_until_it_is_closed(pools):
    made = [pools(f"own{n}", min_size=1) for n in range(3)]
    for pool in made:
        pool.putconn(pool.getconn())
    assert all(wait_until(lambda pool=pool: pool.available() == 1) for pool in made)
    assert [len(worker_threads(f"own{n}")) for n in range(3)] == [1, 1, 1]
    (thread,) = worker_threads("own0")
    made[0].close()
    thread.join(5)
    assert not thread.is_alive()


def test_a_hung_connect_of_one_pool_never_delays_another(pools):
    gate = threading.Event()
    hung = FakeConnect()

    def never_answers():
        gate.wait(10)
        return hung()

    stuck = pools("stuck", connect=never_answers, min_size=1)
    healthy = pools("healthy", min_size=2)
    try:
        with pytest.raises(PoolError):
            stuck.getconn(timeout=0.05)  # its worker is now stuck connecting
        started = time.monotonic()
        healthy.putconn(healthy.getconn(timeout=2))
        assert wait_until(lambda: healthy.available() == 2, timeout=2)
        assert time.monotonic() - started < 1
    finally:
        gate.set()


def test_borrowing_from_a_pool_s_worker_fails_at_once_and_says_why(pools):
    pool = pools("busy", max_size=1)
    held = pool.getconn()
    errors = []
    done = threading.Event()

    def borrow(pool):
        try:
            pool.getconn(timeout=5)
        except PoolError as error:
            errors.append(str(error))
        done.set()

    started = time.monotonic()
    pool._worker.submit(borrow)
    assert done.wait(5)
    assert time.monotonic() - started < 1
    assert "getconn() called from the pool's own worker thread" in errors[0]
    assert "could wait for itself forever" in errors[0]
    pool.putconn(held)


def test_a_forked_child_starts_workers_of_its_own(pools):
    parent_pool = pools("parent")
    parent_pool.putconn(parent_pool.getconn())

    def report():
        before = len(worker_threads())
        pool = ConnectionPool(FakeConnect(), PoolConfig(name="child", min_size=2), FakeDriver())
        pool.putconn(pool.getconn())
        filled = wait_until(lambda: pool.available() == 2)
        threads = [thread.name for thread in worker_threads()]
        pool.close()
        return {"before": before, "filled": filled, "threads": threads}

    report = in_child(report)
    assert report == {"before": 0, "filled": True, "threads": ["django_pool worker child"]}
    assert worker_threads("parent") == [parent_pool._worker.thread]  # the parent's goes on


def test_workers_and_the_events_thread_are_stopped_at_exit(pools, monkeypatch):
    events = Events()
    monkeypatch.setattr(background, "_events", events)
    events.dispatch(lambda: None)
    pool = pools("exiting")
    pool.putconn(pool.getconn())
    threads = [*worker_threads("exiting"), events._thread]
    background._stop_at_exit()  # what atexit runs
    for thread in threads:
        thread.join(1)
    assert not any(thread.is_alive() for thread in threads)


# The events thread


def test_dispatched_calls_run_in_order_in_the_events_thread(events):
    ran = []
    for number in range(3):
        events.dispatch(
            lambda number: ran.append((number, threading.current_thread().name)), number
        )
    assert events.flush()
    assert ran == [(number, "django_pool events") for number in range(3)]


def test_a_failing_dispatched_call_is_logged_and_the_next_runs(events, caplog):
    ran = []
    with caplog.at_level(logging.ERROR, logger="django_pool"):
        events.dispatch(lambda: 1 / 0)
        events.dispatch(lambda: ran.append(1))
        assert events.flush()
    assert ran == [1]
    assert "ZeroDivisionError" in caplog.text


def test_on_event_runs_in_the_events_thread_never_in_the_worker(pools):
    names = []
    connect = FakeConnect()
    config = PoolConfig(name="watched", min_size=1)

    def on_event(event, info):
        names.append((event, threading.current_thread().name))

    pool = ConnectionPool(connect, config, FakeDriver(), on_event=on_event)
    try:
        pool.putconn(pool.getconn())
        assert wait_until(lambda: names)
        assert background.flush()
        assert names == [("connection_created", "django_pool events")]
    finally:
        pool.close()


def test_a_callback_runs_every_interval_from_one_interval_on(events):
    runs = []
    started = time.monotonic()
    events.every(0.05, lambda: runs.append(time.monotonic()))
    assert wait_until(lambda: len(runs) >= 4)
    assert runs[0] - started >= 0.05
    assert all(later - earlier >= 0.04 for earlier, later in pairwise(runs[:4]))


def test_a_failing_callback_is_logged_and_runs_again(events, caplog):
    runs = []

    def publish():
        runs.append(1)
        raise ConnectionError("cache is down")

    with caplog.at_level(logging.ERROR, logger="django_pool"):
        events.every(0.02, publish)
        assert wait_until(lambda: len(runs) >= 3)
    assert "periodic callback" in caplog.text
    assert "ConnectionError: cache is down" in caplog.text
    assert events.flush()  # the thread goes on with its other work


def test_registering_a_callback_again_changes_its_interval(events):
    runs = []

    def publish():
        runs.append(time.monotonic())

    events.every(60, publish)
    events.every(0.05, publish)
    assert wait_until(lambda: len(runs) >= 3)
    gaps = [later - earlier for earlier, later in pairwise(runs)]
    assert all(gap >= 0.04 for gap in gaps), gaps  # one registration, not two


@pytest.mark.parametrize("interval", [0, -1.0, float("nan")])
def test_an_interval_must_be_positive(events, interval):
    with pytest.raises(ValueError, match="interval must be greater than 0 seconds"):
        events.every(interval, lambda: None)


@pytest.mark.timing
def test_callbacks_run_while_the_thread_waits_for_nothing_else(events):
    runs = []
    events.every(0.05, lambda: runs.append(1))
    assert wait_until(lambda: len(runs) >= 2, timeout=1.0)


def test_every_runs_in_the_events_thread(monkeypatch):
    events = Events()
    monkeypatch.setattr(background, "_events", events)
    threads = []
    background.every(0.02, lambda: threads.append(threading.current_thread().name))
    try:
        assert wait_until(lambda: threads)
        assert threads[0] == "django_pool events"
    finally:
        events.stop(timeout=5)


def test_a_forked_child_runs_the_parent_s_callbacks(monkeypatch):
    events = Events()
    monkeypatch.setattr(background, "_events", events)
    pids = []
    background.every(0.02, lambda: pids.append(os.getpid()))

    def report():
        background.dispatch(lambda: None)  # the child's events thread starts on first use
        ran = wait_until(lambda: os.getpid() in pids)
        names = [t.name for t in threading.enumerate() if t.name == "django_pool events"]
        return {"ran": ran, "threads": len(names)}

    try:
        assert wait_until(lambda: pids)
        assert in_child(report) == {"ran": True, "threads": 1}
        assert set(pids) == {os.getpid()}
    finally:
        events.stop(timeout=5)
