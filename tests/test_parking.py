"""Parking: at a request's end the connection goes back to the pool, kept for the same thread.

``close_if_unusable_or_obsolete()`` is what Django's ``close_old_connections()`` runs for each
alias at a request's start and end; these tests call it to end a request.
"""

from __future__ import annotations

import queue
import threading
import time

import pytest
from django.core.signals import request_finished, request_started
from django.db import OperationalError, connections
from django.db.backends.signals import connection_created

from django_pool import borrows
from django_pool.errors import PoolTimeout
from tests.conftest import default_pool
from tests.fakes import wait_until
from tests.test_backend import backend_pid


def end_request(wrapper) -> None:
    wrapper.close_if_unusable_or_obsolete()


def serving(wrapper):
    """Have ``wrapper`` serve a first request: a thread parks from its second request on."""
    backend_pid(wrapper)
    end_request(wrapper)
    return wrapper


def fetch(wrapper, sql: str):
    with wrapper.cursor() as cursor:
        cursor.execute(sql)
        return cursor.fetchone()[0]


@pytest.fixture
def created():
    """Collect the wrappers ``connection_created`` is sent for."""
    sent = []

    def receiver(sender, connection, **kwargs):
        sent.append(connection)

    connection_created.connect(receiver)
    yield sent
    connection_created.disconnect(receiver)


def test_the_next_request_takes_its_parked_connection_back(pooled, created):
    wrapper = serving(pooled(min_size=0, max_size=2))
    created.clear()
    first = backend_pid(wrapper)
    end_request(wrapper)

    assert wrapper.connection is None
    pool = wrapper.pool
    assert (pool.in_use(), pool.available()) == (0, 1)  # back in the pool, idle
    before = pool.stats()

    assert backend_pid(wrapper) == first
    end_request(wrapper)
    after = pool.stats()
    # The same session comes back: Django's connect() does not run, nor its signal.
    assert created == [wrapper]
    assert after["requests_num"] == before["requests_num"] + 1  # still a borrow
    assert after["django_requests"] == before["django_requests"] + 1
    assert after["request_borrows"] == before["request_borrows"] + 1
    assert after["requests_queued"] == before["requests_queued"]


def test_another_thread_takes_a_parked_connection_when_no_other_is_idle(pooled):
    owner = serving(pooled(min_size=0, max_size=1, timeout=0.3))
    parked = backend_pid(owner)
    end_request(owner)
    other = owner.copy()
    queued = owner.pool.stats()["requests_queued"]

    assert backend_pid(other) == parked  # no wait: it was idle
    assert owner.pool.stats()["requests_queued"] == queued
    # Never lent twice: the owner now waits for it like anyone else.
    with pytest.raises(OperationalError) as caught:
        backend_pid(owner)
    assert isinstance(caught.value.__cause__, PoolTimeout)
    end_request(other)
    assert backend_pid(owner) == parked
    end_request(owner)
    other.close()
    owner.close()


def test_borrowers_take_an_unparked_idle_connection_first(pooled):
    owner = serving(pooled(min_size=0, max_size=2))
    other = owner.copy()
    mine, theirs = backend_pid(owner), backend_pid(other)
    end_request(owner)  # parked
    other.close()  # given back for good: the top of the idle stack
    third = owner.copy()

    assert backend_pid(third) == theirs
    assert backend_pid(owner) == mine
    for wrapper in (owner, third):
        wrapper.close()


def test_a_waiting_borrower_gets_the_connection_at_request_end(pooled):
    owner = serving(pooled(min_size=0, max_size=1, timeout=5.0))
    held = backend_pid(owner)
    got = []
    waiter = threading.Thread(target=lambda: got.append(backend_pid(owner.copy())))
    waiter.start()
    deadline = time.monotonic() + 5
    while owner.pool.waiting() == 0:
        assert time.monotonic() < deadline, "the other thread never queued"
        time.sleep(0.005)

    end_request(owner)
    waiter.join(5)
    assert got == [held]
    assert owner._ticket is None  # handed over, not parked: the next request borrows anew


def test_given_back_clean_the_next_borrow_skips_connect(pooled, created, monkeypatch):
    owner = serving(pooled(min_size=0, max_size=1, timeout=5.0))
    backend_pid(owner)

    def wait_then_close() -> None:
        other = owner.copy()
        backend_pid(other)
        other.close()

    waiter = threading.Thread(target=wait_then_close)
    waiter.start()
    deadline = time.monotonic() + 5
    while owner.pool.waiting() == 0:
        assert time.monotonic() < deadline, "the other thread never queued"
        time.sleep(0.005)
    end_request(owner)  # given back, to the waiter
    waiter.join(5)
    connects = []
    monkeypatch.setattr(owner, "connect", lambda: connects.append(1))
    created.clear()

    assert fetch(owner, "SELECT 1") == 1
    assert connects == []  # what connect() would set is as the clean request's end left it
    assert created == [owner]  # a borrow anew: the signal is sent
    assert owner.get_autocommit() is True
    owner.close()


def test_a_connection_left_in_a_transaction_is_rolled_back_not_parked(pooled, server):
    wrapper = serving(pooled(min_size=0, max_size=1))
    first = backend_pid(wrapper)
    with wrapper.cursor() as cursor:
        cursor.execute("BEGIN")  # behind Django's back: it believes it is in autocommit
        cursor.execute("CREATE TEMPORARY TABLE left_open (id int)")
    end_request(wrapper)

    in_transaction = server.query(
        "SELECT count(*) FROM pg_stat_activity WHERE pid = %s AND state <> 'idle'", [first]
    )
    assert in_transaction == [(0,)]
    assert backend_pid(wrapper) == first
    assert fetch(wrapper, "SELECT to_regclass('pg_temp.left_open') IS NULL") is True
    wrapper.close()


def test_a_parked_session_is_its_thread_s_and_set_back_for_another(pooled, created):
    owner = serving(pooled(min_size=0, max_size=1))
    created.clear()
    before = fetch(owner, "SHOW DateStyle")
    with owner.cursor() as cursor:
        cursor.execute("SET DateStyle TO 'German'")
    end_request(owner)

    # Its own thread gets it back as it left it, as with a persistent connection...
    assert fetch(owner, "SHOW DateStyle") == "German, DMY"
    end_request(owner)
    other = owner.copy()
    # ...another borrower gets it reset, as on any return.
    assert fetch(other, "SHOW DateStyle") == before
    assert owner.pool.stats()["sessions_restored"] == 1
    assert created == [owner, other]
    other.close()


def test_an_atomic_block_open_at_request_end_is_not_parked(pooled):
    wrapper = serving(pooled(min_size=0, max_size=1))
    wrapper.set_autocommit(False)  # as atomic() does; Django closes such a connection
    backend_pid(wrapper)
    end_request(wrapper)
    assert wrapper._ticket is None
    assert wrapper.connection is None
    assert wrapper.pool.in_use() == 0


def test_a_parked_connection_due_a_check_is_checked(pooled, server):
    wrapper = serving(pooled(min_size=0, max_size=1, check=0.05))
    first = backend_pid(wrapper)
    end_request(wrapper)
    server.terminate(first)
    time.sleep(0.1)

    assert backend_pid(wrapper) != first  # not taken back: pinged, found dead, replaced
    assert wrapper.pool.stats()["connections_lost"] == 1
    wrapper.close()


def test_with_check_always_a_parked_connection_is_pinged_and_taken_back(pooled, created):
    wrapper = serving(pooled(min_size=0, max_size=1, check="always"))  # CONN_HEALTH_CHECKS
    first = backend_pid(wrapper)
    end_request(wrapper)
    created.clear()
    borrows = wrapper.pool.stats()["requests_num"]

    assert backend_pid(wrapper) == first
    assert created == []  # taken back, not borrowed anew through connect()
    end_request(wrapper)
    assert wrapper.pool.stats()["requests_num"] == borrows + 1
    wrapper.close()


def test_close_forgets_the_parked_connection(pooled, created):
    wrapper = serving(pooled(min_size=0, max_size=1))
    created.clear()
    backend_pid(wrapper)
    end_request(wrapper)
    wrapper.close()
    backend_pid(wrapper)
    assert created == [wrapper, wrapper]
    wrapper.close()


def test_a_parked_connection_of_a_closed_pool_is_not_taken_back(pooled):
    wrapper = serving(pooled(min_size=0, max_size=1))
    first = backend_pid(wrapper)
    end_request(wrapper)
    old = wrapper.pool
    wrapper.close_pool()

    assert backend_pid(wrapper) != first
    assert wrapper.pool is not old
    wrapper.close()


def test_a_thread_that_parked_then_ended_leaves_its_connection_to_others(pooled):
    wrapper = pooled(min_size=0, max_size=1, timeout=0.5)
    pids = []

    def two_requests():
        mine = serving(wrapper.copy())
        pids.append(backend_pid(mine))
        end_request(mine)
        pids.append(mine._ticket is not None)

    thread = threading.Thread(target=two_requests)
    thread.start()
    thread.join()
    assert pids[1] is True, "the second request's end parks"
    assert backend_pid(wrapper) == pids[0]
    assert wrapper.pool.stats()["connections_reclaimed"] == 0
    wrapper.close()


def test_a_thread_made_for_one_request_gives_its_connection_back(pooled):
    wrapper = pooled(min_size=0, max_size=2)
    parked = []

    def one_request():  # as runserver and the ASGI handler run a request
        mine = wrapper.copy()
        backend_pid(mine)
        end_request(mine)
        parked.append(mine._ticket)

    thread = threading.Thread(target=one_request)
    thread.start()
    thread.join()
    assert parked == [None]
    assert wrapper.pool.available() == 1


def test_eight_threads_on_two_connections_never_share_one(pooled):
    wrapper = pooled(min_size=0, max_size=2, timeout=10.0)
    errors, seen = [], []
    lock = threading.Lock()
    holders: dict[int, int] = {}

    def requests(n: int) -> None:
        mine = wrapper.copy()
        try:
            for i in range(30):
                pid = backend_pid(mine)
                with lock:
                    assert holders.get(pid) is None, "one connection lent to two threads"
                    holders[pid] = n
                fetch(mine, f"SELECT {i}")
                with lock:
                    del holders[pid]
                    seen.append(pid)
                end_request(mine)
        except Exception as error:  # noqa: BLE001 - reported by the assertion below
            errors.append(error)
        finally:
            mine.close()

    threads = [threading.Thread(target=requests, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(seen) == 8 * 30 and len(set(seen)) <= 2
    assert wrapper.pool.in_use() == 0


def test_while_the_toolbar_records_a_parked_connection_is_borrowed_anew(pooled):
    wrapper = serving(pooled(min_size=0, max_size=1))
    first = backend_pid(wrapper)
    end_request(wrapper)
    recorder = borrows.BorrowRecorder()
    token = borrows.start(recorder)
    try:
        assert backend_pid(wrapper) == first  # given back, then borrowed (and recorded)
        end_request(wrapper)  # the panel records its return: given back, not parked
    finally:
        borrows.stop(token)
    assert [borrow.alias for borrow in recorder.borrows] == [wrapper.alias]
    assert wrapper._ticket is None
    assert wrapper.pool.in_use() == 0


def test_park_false_gives_the_connection_back_at_every_request_end(pooled, created):
    wrapper = serving(pooled(min_size=0, max_size=1, park=False))
    created.clear()
    backend_pid(wrapper)
    end_request(wrapper)
    assert wrapper._ticket is None
    backend_pid(wrapper)
    assert created == [wrapper, wrapper]
    assert wrapper.pool.snapshot()["config"]["park"] is False
    wrapper.close()


def test_a_wrapper_shared_since_it_parked_borrows_as_a_shared_one(pooled):
    wrapper = serving(pooled(min_size=0, max_size=1))
    first = backend_pid(wrapper)
    end_request(wrapper)
    wrapper.inc_thread_sharing()  # as LiveServerTestCase does
    try:
        assert backend_pid(wrapper) == first
        assert wrapper.pool._lent[id(wrapper.connection)].shared is True
    finally:
        wrapper.close()
        wrapper.dec_thread_sharing()


class ServerThread:
    """A thread that serves requests one after another, as a gunicorn gthread worker's does.

    Each request runs between Django's ``request_started`` and ``request_finished`` signals,
    whose ``close_old_connections()`` parks the thread's connection at the request's end.
    """

    def __init__(self, name: str) -> None:
        self._jobs: queue.Queue = queue.Queue()
        self.thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while (job := self._jobs.get()) is not None:
            view, done = job
            request_started.send(sender=ServerThread)
            try:
                done.put((True, view(connections["default"])))
            except Exception as error:  # noqa: BLE001 - raised in the test's thread
                done.put((False, error))
            finally:
                request_finished.send(sender=ServerThread)

    def request(self, view):
        """Serve one request running ``view(connection)``; return what it returns."""
        done: queue.Queue = queue.Queue()
        self._jobs.put((view, done))
        ok, value = done.get(timeout=30)
        if not ok:
            raise value
        return value

    def exit(self) -> None:
        self._jobs.put(None)
        self.thread.join(10)
        assert not self.thread.is_alive()


@pytest.fixture
def one_connection(transactional_db):
    """Give the default alias a pool of one connection for the test, maintenance every 0.5 s."""
    with default_pool(min_size=0, max_size=1, max_idle=1.0):
        yield


def test_a_thread_never_takes_back_a_connection_another_thread_parked_since(one_connection, rounds):
    a, b = ServerThread("A"), ServerThread("B")
    try:
        baseline = a.request(lambda conn: fetch(conn, "SHOW DateStyle"))  # A's first request
        parked = a.request(lambda conn: fetch(conn, "SELECT pg_backend_pid()"))  # parks X
        # B finds nothing idle and takes X; B's next request changes X's DateStyle and parks it.
        assert b.request(lambda conn: fetch(conn, "SELECT pg_backend_pid()")) == parked

        def set_datestyle(conn):
            with conn.cursor() as cursor:
                cursor.execute("SET DateStyle TO 'SQL, DMY'")
            return fetch(conn, "SELECT pg_backend_pid()")

        assert b.request(set_datestyle) == parked

        def after_b_exits(conn):
            seen = fetch(conn, "SHOW DateStyle")
            b.exit()
            done = rounds["default"]
            assert wait_until(lambda: rounds["default"] >= done + 2, timeout=10)
            return seen, fetch(conn, "SELECT 1")  # never closed under A by B's exit

        # A's next request: not B's session, and its connection stays A's while B exits.
        assert a.request(after_b_exits) == (baseline, 1)
        assert a.request(lambda conn: fetch(conn, "SHOW DateStyle")) == baseline
    finally:
        a.exit()
        if b.thread.is_alive():
            b.exit()
