"""The process's maintenance thread: shared by every pool, weak, restarted after a fork."""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from itertools import pairwise

import pytest

from django_pool import maintenance
from django_pool.maintenance import Maintenance
from django_pool.options import PoolConfig
from django_pool.pool import ConnectionPool

from .fakes import FakeConnect, FakeDriver, in_child, is_collected, wait_until


class FakePool:
    """What the maintenance thread needs of a pool: a name, deadlines, a round, a sample."""

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
def worker():
    """A maintenance thread of the test's own, stopped after it."""
    worker = Maintenance()
    yield worker
    worker.stop(timeout=5)


def maintenance_threads():
    return [thread for thread in threading.enumerate() if thread.name == "django_pool maintenance"]


def test_rounds_come_when_due(worker):
    pool = FakePool(due=time.monotonic() + 0.05)
    worker.register(pool)
    assert wait_until(lambda: len(pool.rounds) >= 4)
    rounds = pool.rounds[:4]
    assert all(later - earlier >= 0.02 for earlier, later in pairwise(rounds))
    worker.unregister(pool)
    count = len(pool.rounds)
    time.sleep(0.1)
    assert len(pool.rounds) <= count + 1  # at most the round already under way


def test_tasks_run_in_order(worker):
    pool = FakePool()
    worker.register(pool)
    done = []
    for number in range(3):
        worker.submit(pool, lambda pool, number=number: done.append((pool, number)))
    assert wait_until(lambda: len(done) == 3)
    assert done == [(pool, 0), (pool, 1), (pool, 2)]


def test_a_collected_pool_loses_its_pending_tasks_and_rounds(worker):
    gate = threading.Event()
    blocker = FakePool()
    worker.submit(blocker, lambda pool: gate.wait(5))
    pool = FakePool(due=time.monotonic())
    worker.register(pool)
    ran = []
    worker.submit(pool, lambda pool: ran.append(pool))
    ref = weakref.ref(pool)
    del pool
    assert is_collected(ref)
    gate.set()
    done = threading.Event()
    worker.submit(blocker, lambda pool: done.set())
    assert done.wait(5)
    assert ran == []


def test_a_failing_task_is_logged_and_the_thread_goes_on(worker, caplog):
    pool = FakePool()
    done = threading.Event()
    with caplog.at_level(logging.ERROR, logger="django_pool"):
        worker.submit(pool, lambda pool: 1 / 0)
        worker.submit(pool, lambda pool: done.set())
        assert done.wait(5)
    assert "pool 'fake': background task failed" in caplog.text
    assert "ZeroDivisionError" in caplog.text


def test_stop_ends_the_thread_at_once():
    worker = Maintenance()
    worker.register(FakePool())
    thread = worker._thread
    started = time.monotonic()
    worker.stop(timeout=5)
    assert time.monotonic() - started < 1
    assert not thread.is_alive()


def test_one_thread_serves_every_pool():
    pools = [
        ConnectionPool(FakeConnect(), PoolConfig(name=f"p{n}", min_size=1), FakeDriver())
        for n in range(3)
    ]
    try:
        for pool in pools:
            pool.putconn(pool.getconn())
        assert all(wait_until(lambda pool=pool: pool.available() == 1) for pool in pools)
        assert len(maintenance_threads()) == 1
    finally:
        for pool in pools:
            pool.close()


def test_a_forked_child_starts_a_thread_of_its_own():
    parent_pool = ConnectionPool(FakeConnect(), PoolConfig(name="parent"), FakeDriver())
    parent_pool.putconn(parent_pool.getconn())
    (parent_thread,) = maintenance_threads()

    def report():
        before = len(maintenance_threads())
        pool = ConnectionPool(FakeConnect(), PoolConfig(name="child", min_size=2), FakeDriver())
        pool.putconn(pool.getconn())
        filled = wait_until(lambda: pool.available() == 2)
        threads = maintenance_threads()
        pool.close()
        return {"before": before, "filled": filled, "threads": len(threads)}

    try:
        assert in_child(report) == {"before": 0, "filled": True, "threads": 1}
        assert maintenance_threads() == [parent_thread]
    finally:
        parent_pool.close()


def test_the_process_thread_is_stopped_at_exit(monkeypatch):
    worker = Maintenance()
    monkeypatch.setattr(maintenance, "_maintenance", worker)
    maintenance.register(FakePool())
    thread = worker._thread
    maintenance._stop_at_exit()  # what atexit runs
    assert not thread.is_alive()


def test_history_samples_come_when_due(worker):
    pool = FakePool(sample_due=time.monotonic() + 0.05)
    worker.register(pool)
    due = pool._next_sample
    assert wait_until(lambda: len(pool.samples) >= 3)
    assert pool.samples[0] >= due
    assert all(later - earlier >= 0.02 for earlier, later in pairwise(pool.samples[:3]))


# Periodic callbacks


def test_a_callback_runs_every_interval_from_one_interval_on(worker):
    runs = []
    started = time.monotonic()
    worker.every(0.05, lambda: runs.append(time.monotonic()))
    assert wait_until(lambda: len(runs) >= 4)
    assert runs[0] - started >= 0.05
    assert all(later - earlier >= 0.04 for earlier, later in pairwise(runs[:4]))
    assert worker._thread.is_alive()


def test_a_failing_callback_is_logged_and_runs_again(worker, caplog):
    runs = []

    def publish():
        runs.append(1)
        raise ConnectionError("cache is down")

    with caplog.at_level(logging.ERROR, logger="django_pool"):
        worker.every(0.02, publish)
        assert wait_until(lambda: len(runs) >= 3)
    assert "periodic callback" in caplog.text
    assert "ConnectionError: cache is down" in caplog.text
    done, pool = threading.Event(), FakePool()
    worker.submit(pool, lambda pool: done.set())
    assert done.wait(5)  # the thread goes on with its other work


def test_registering_a_callback_again_changes_its_interval(worker):
    runs = []

    def publish():
        runs.append(time.monotonic())

    worker.every(60, publish)
    worker.every(0.05, publish)
    assert wait_until(lambda: len(runs) >= 3)
    time.sleep(0.02)
    gaps = [later - earlier for earlier, later in pairwise(runs)]
    assert all(gap >= 0.04 for gap in gaps), gaps  # one registration, not two


@pytest.mark.parametrize("interval", [0, -1.0, float("nan")])
def test_an_interval_must_be_positive(worker, interval):
    with pytest.raises(ValueError, match="interval must be greater than 0 seconds"):
        worker.every(interval, lambda: None)


@pytest.mark.timing
def test_callbacks_run_while_the_thread_waits_for_nothing_else(worker):
    runs = []
    worker.every(0.05, lambda: runs.append(1))
    # No pool, no task: the thread's only deadline is the callback's.
    assert wait_until(lambda: len(runs) >= 2, timeout=1.0)


def test_every_runs_in_the_process_thread(monkeypatch):
    worker = Maintenance()
    monkeypatch.setattr(maintenance, "_maintenance", worker)
    threads = []
    maintenance.every(0.02, lambda: threads.append(threading.current_thread().name))
    try:
        assert wait_until(lambda: threads)
        assert threads[0] == "django_pool maintenance"
    finally:
        worker.stop(timeout=5)


def test_a_forked_child_runs_the_parent_s_callbacks(monkeypatch):
    worker = Maintenance()
    monkeypatch.setattr(maintenance, "_maintenance", worker)
    pids = []
    maintenance.every(0.02, lambda: pids.append(os.getpid()))

    def report():
        pool = ConnectionPool(FakeConnect(), PoolConfig(name="child"), FakeDriver())
        pool.putconn(pool.getconn())  # the child's thread starts with its first pool
        ran = wait_until(lambda: os.getpid() in pids)
        pool.close()
        return {"ran": ran, "threads": len(maintenance_threads())}

    try:
        assert wait_until(lambda: pids)
        assert in_child(report) == {"ran": True, "threads": 1}
        assert set(pids) == {os.getpid()}
    finally:
        worker.stop(timeout=5)
