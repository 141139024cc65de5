"""A model of the pool core, explored by Hypothesis: the pool's promises after every step.

Rules are what threads and the pool's worker do: a request (take back the connection parked
at the thread's last request's end, else borrow: at once, or waiting while the worker opens
one; at its end park it or give it back: clean, with a changed setting, in a transaction,
broken; or hold it on while other steps run), close a wrapper that parked, end a thread, move
the clock (past check, max_idle, max_lifetime), run a maintenance round or the worker's
connects, recycle, close idle connections, lose and restart the server, fork; and any of those
*meanwhile*, in the middle of a round trip another thread makes outside the pool's lock. One
real thread plays every borrower (the pool takes its ``current_thread``, clock and worker from
the test), so each run is one exact interleaving, and a failure shrinks to the shortest one.
A forked child checks its side in a process of its own.

After every step: no connection is lent to two borrowers; every connection lent has the
baseline session and no transaction (or, taken back by the wrapper that parked it, its own
session); nothing is closed under its borrower; each record is in exactly one state, and the
pool's containers agree; the counts add up, and the server sees exactly the pool's
connections.

``make test`` runs the bounded profile (``django_pool``: the same examples every run, about
20 s); ``pytest tests/test_pool_model.py --hypothesis-profile=long`` explores anew each time.
"""

from __future__ import annotations

import itertools
import logging
import threading
from contextlib import contextmanager

from hypothesis import event
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from django_pool.drivers import TxStatus
from django_pool.errors import PoolError, PoolTimeout, ServerUnavailable
from django_pool.options import PoolConfig
from django_pool.pool import ConnectionPool, State

from .fakes import (
    DEFAULT_SESSION,
    FakeClock,
    FakeConnect,
    FakeDriver,
    FakeThread,
    ManualWorker,
    in_child,
    wait_until,
)

MAX_SIZE = 3
THREADS = 3
LIFETIME = 60.0
MAX_IDLE = 30.0
CHECK_AFTER = 5.0

# Seconds the clock moves: within a fairness window, past check, past max_idle, past lifetime.
STEPS_S = (0.00002, 1.0, CHECK_AFTER + 1, MAX_IDLE + 1, LIFETIME + 1)
DIRT = ("clean", "setting", "transaction", "broken")
STYLES = ("German, DMY", "SQL, DMY", "Postgres, MDY")
MEANWHILE = ("recycle", "close_idle", "maintain", "borrow", "fork")
MAX_FORKS = 2


class Borrower:
    """A thread as the model sees it: the connections it holds, its parking tickets."""

    names = itertools.count()

    def __init__(self) -> None:
        self.identity = FakeThread(f"T{next(self.names)}")
        self.held: list = []
        self.tickets: list[int] = []


class PoolModel(RuleBasedStateMachine):
    """Pool operations from several threads, checked against what the pool promises."""

    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock()
        self.connect = FakeConnect()
        self.pool: ConnectionPool | None = None
        self.threads: list[Borrower] = []
        self.playing: dict[int, FakeThread] = {}  # real thread -> the borrower it plays
        self.lent: dict = {}  # connection -> the Borrower holding it (ended ones too)
        self.parked: dict[int, tuple] = {}  # ticket -> (Borrower, connection, its session)
        self.recycled: set = set()  # open at a recycle(): never lent again
        self.getconns = 0  # getconn() calls: each one is a borrow counted in requests_num
        self.taken_back = 0  # take_back() calls that lent a connection: borrows too
        self.forks = 0
        self.outages = 0
        # The pool's warnings (timeouts, broken returns, failed checks) are expected here.
        self.logger = logging.getLogger("django_pool")
        self.level = self.logger.level
        self.logger.setLevel(logging.CRITICAL)

    # Set-up and helpers

    @initialize(
        max_size=st.integers(1, MAX_SIZE),
        min_size=st.integers(0, MAX_SIZE),
        check=st.sampled_from(["always", "never", CHECK_AFTER]),
        reset=st.sampled_from(["rollback", "discard"]),
    )
    def make_pool(self, max_size: int, min_size: int, check, reset: str) -> None:
        config = PoolConfig(
            name="model",
            min_size=min(min_size, max_size),
            max_size=max_size,
            max_lifetime=LIFETIME,
            max_idle=MAX_IDLE,
            check=check,
            reset=reset,
        )
        self.pool = ConnectionPool(
            self.connect,
            config,
            FakeDriver(),
            clock=self.clock.monotonic,
            current_thread=self.current_thread,
            worker=ManualWorker,
        )
        self.threads = [Borrower() for _ in range(THREADS)]

    def teardown(self) -> None:
        if self.pool is not None:
            self.pool.close()
        self.logger.setLevel(self.level)

    def current_thread(self) -> FakeThread:
        return self.playing[threading.get_ident()]

    @contextmanager
    def playing_as(self, borrower: Borrower):
        key = threading.get_ident()
        before = self.playing.get(key)
        self.playing[key] = borrower.identity
        try:
            yield
        finally:
            if before is None:
                del self.playing[key]
            else:
                self.playing[key] = before

    def open_connections(self) -> list:
        return [conn for conn in self.connect.connections if not conn.closed]

    def lend(self, conn, borrower: Borrower, own_session: tuple | None = None) -> None:
        """Check and note a connection the pool just lent to ``borrower``."""
        holder = self.lent.get(conn)
        assert holder is None, f"{conn} lent to {borrower.identity} while {holder.identity} has it"
        assert not conn.closed, f"{conn} lent closed"
        assert conn not in self.recycled, f"{conn} lent again after a recycle()"
        assert conn.status == TxStatus.IDLE, f"{conn} lent with a transaction open"
        expected = DEFAULT_SESSION if own_session is None else own_session
        assert conn.session == expected, f"{conn} lent with another borrower's session"
        # Its parkings are over: whoever held their tickets must find nothing under them now.
        for ticket in [ticket for ticket, (_, parked, _) in self.parked.items() if parked is conn]:
            del self.parked[ticket]
        self.lent[conn] = borrower
        borrower.held.append(conn)

    def given_back(self, conn) -> None:
        """Check a connection just given back: closed, or reset to the baseline."""
        del self.lent[conn]
        if conn in self.recycled:
            assert conn.closed, f"{conn} kept after a recycle()"
        if not conn.closed:
            assert conn.session == DEFAULT_SESSION, f"{conn} given back with its session"
            assert conn.status == TxStatus.IDLE

    def settle(self) -> None:
        """Forget the connections of ended threads that the pool has closed (reclaimed)."""
        for conn, holder in list(self.lent.items()):
            if not holder.identity.is_alive() and conn.closed:
                del self.lent[conn]

    def do_borrow(self, borrower: Borrower) -> None:
        """Borrow at once as ``borrower``; a refusal only when nothing was available."""
        self.getconns += 1
        with self.playing_as(borrower):
            try:
                conn = self.pool.getconn(timeout=0)
            except (PoolTimeout, ServerUnavailable):
                assert self.pool.available() == 0, "refused while connections were available"
                return
        self.lend(conn, borrower)

    def can_open(self) -> bool:
        """Whether a borrower that waits gets a connection the worker opens for it."""
        pool = self.pool
        coming = pool._requested or pool.size() < pool.config.max_size
        due = not pool._backoff.down or pool._backoff.due(self.clock.now)
        return coming and self.connect.server_up and due

    def borrow_waiting(self, borrower: Borrower) -> None:
        """Borrow as ``borrower`` in a thread of its own, while the worker opens a connection."""
        results: list = []

        def borrow() -> None:
            with self.playing_as(borrower):
                try:
                    results.append(self.pool.getconn(timeout=5))
                except Exception as error:  # noqa: BLE001 - raised below, in the test's thread
                    results.append(error)

        self.getconns += 1
        waiting = threading.Thread(target=borrow, daemon=True)
        waiting.start()
        assert wait_until(lambda: self.pool.waiting() == 1 or results, timeout=5)
        if not results:
            assert not self.pool._parked, "a connection parked while a borrower waits"
            self.pool._worker.run_tasks()  # the worker opens one, and hands it over
        waiting.join(10)
        assert not waiting.is_alive(), "the waiter was never served"
        (result,) = results
        if isinstance(result, BaseException):
            raise result
        self.lend(result, borrower)

    def held(self) -> list[tuple[Borrower, object]]:
        return [(borrower, conn) for borrower in self.threads for conn in borrower.held]

    def tickets(self) -> list[tuple[Borrower, int]]:
        return [(borrower, ticket) for borrower in self.threads for ticket in borrower.tickets]

    # Requests: borrowing, giving back and parking

    @rule(
        thread=st.integers(0, THREADS - 1),
        then=st.sampled_from(("park", "hold", "give_back")),
        dirt=st.sampled_from(DIRT),
        style=st.sampled_from((None, *STYLES)),
    )
    def request(self, thread: int, then: str, dirt: str, style: str | None) -> None:
        """A thread's request, as the ENGINE serves it: its first query takes back the connection
        parked at the last request's end, else borrows; at its end the connection is parked or
        given back, or it is held on (ended by a later step, while others run)."""
        borrower = self.threads[thread]
        held = len(borrower.held)
        if not (borrower.tickets and self.take_back(borrower, borrower.tickets.pop())):
            self.borrow(borrower)
        if len(borrower.held) > held:  # it got one
            conn = borrower.held[-1]
            if then == "park":
                self.park(borrower, conn, style)
            elif then == "give_back":
                self.give_back(borrower, conn, dirt, style or STYLES[0])
        self.settle()

    def borrow(self, borrower: Borrower) -> None:
        """Borrow: at once if one is idle or parked, else waiting for one the worker opens."""
        if self.pool.available() == 0 and self.can_open():
            event("borrow: waited for a new connection")
            self.borrow_waiting(borrower)
        else:
            steal = self.pool._parked and not self.pool._idle
            event("borrow: from the parking" if steal else "borrow: at once, or refused")
            self.do_borrow(borrower)

    def take_back(self, borrower: Borrower, ticket: int) -> bool:
        """Take back the connection ``borrower`` parked under ``ticket``; False if none came."""
        still_parked = ticket in self.parked
        with self.playing_as(borrower):
            conn = self.pool.take_back(ticket)
        event(f"take_back: {'lent' if conn else 'refused' if still_parked else 'stale ticket'}")
        if conn is None:  # taken by another, expired, failed its check, or closed
            return False
        self.taken_back += 1
        assert still_parked, f"a stale ticket took {conn} back from another borrower"
        owner, parked, session = self.parked[ticket]
        assert owner is borrower and parked is conn
        self.lend(conn, borrower, own_session=session)
        return True

    def give_back(self, borrower: Borrower, conn, dirt: str, style: str) -> None:
        borrower.held.remove(conn)
        if dirt == "setting":
            conn.set("DateStyle", style)
        elif dirt == "transaction":
            conn.status = TxStatus.INTRANS
        elif dirt == "broken":
            conn.status = TxStatus.UNKNOWN  # the server went away under it
        with self.playing_as(borrower):
            self.pool.putconn(conn)
        self.given_back(conn)
        if dirt == "broken":
            assert conn.closed

    def park(self, borrower: Borrower, conn, style: str | None) -> None:
        borrower.held.remove(conn)
        if style is not None:
            conn.set("DateStyle", style)  # the thread's own business while parked
        with self.playing_as(borrower):
            ticket = self.pool.park(conn)
        event(f"park: {'given back' if ticket is None else 'parked'}")
        if ticket is None:  # given back instead
            self.given_back(conn)
            return
        assert ticket not in self.parked, "a ticket given twice"
        del self.lent[conn]
        self.parked[ticket] = (borrower, conn, conn.session)
        borrower.tickets.append(ticket)

    @precondition(lambda self: self.held())
    @rule(
        which=st.integers(0, MAX_SIZE - 1),
        then=st.sampled_from(("park", "give_back")),
        dirt=st.sampled_from(DIRT),
        style=st.sampled_from((None, *STYLES)),
    )
    def end_request(self, which: int, then: str, dirt: str, style: str | None) -> None:
        """End a request that held its connection on: park it, or give it back."""
        held = self.held()
        borrower, conn = held[which % len(held)]
        if then == "park":
            self.park(borrower, conn, style)
        else:
            self.give_back(borrower, conn, dirt, style or STYLES[0])
        self.settle()

    @precondition(lambda self: self.tickets())
    @rule(which=st.integers(0, MAX_SIZE - 1))
    def close_wrapper(self, which: int) -> None:
        """``connection.close()`` on a wrapper that parked: its connection goes back for good."""
        tickets = self.tickets()
        borrower, ticket = tickets[which % len(tickets)]
        borrower.tickets.remove(ticket)
        parked = self.parked.pop(ticket, None)
        with self.playing_as(borrower):
            self.pool.unpark(ticket)
        if parked is not None and not parked[1].closed:
            assert parked[1].session == DEFAULT_SESSION, "given back with its parked session"
        self.settle()

    # Threads, time, the worker, the operator and the server

    @rule(thread=st.integers(0, THREADS - 1))
    def end_thread(self, thread: int) -> None:
        # Its connections stay lent to it until the pool reclaims them; its tickets are gone.
        self.threads[thread].identity.alive = False
        self.threads[thread] = Borrower()

    @rule(seconds=st.sampled_from(STEPS_S))
    def advance_clock(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @rule(round_too=st.booleans())
    def worker(self, round_too: bool) -> None:
        """The worker runs its connects, and a maintenance round if ``round_too``."""
        if round_too:
            self.pool._worker.maintain()
        else:
            self.pool._worker.run_tasks()
        self.settle()

    @rule(action=st.sampled_from(("recycle", "close_idle")))
    def operator(self, action: str) -> None:
        if action == "recycle":
            self.do_recycle()
        else:
            available = self.pool.available()
            assert self.pool.close_idle() == available
        self.settle()

    def do_recycle(self) -> None:
        open_now = self.open_connections()
        assert self.pool.recycle() == len(open_now), "recycle() must count each connection once"
        self.recycled.update(open_now)

    @precondition(lambda self: self.connect.server_up and not self.outages)
    @rule()
    def lose_the_server(self) -> None:
        """Every open connection dies, and connects fail (once per run: nothing works after)."""
        self.outages += 1
        self.connect.switch_off()

    @precondition(lambda self: not self.connect.server_up)
    @rule()
    def restart_the_server(self) -> None:
        """The server is back, and the pool's next attempt is due."""
        self.connect.switch_on()
        self.clock.advance(max(self.pool._backoff.retry_at - self.clock.now, 0.0))

    @precondition(lambda self: self.forks < MAX_FORKS)
    @rule()
    def fork(self) -> None:
        self.do_fork()

    def do_fork(self) -> None:
        """Fork; in the child, the pool lends nothing, closes nothing, detaches everything."""
        self.forks += 1
        inherited = [record.conn for record in self.pool._records.values()]
        held, tickets = list(self.lent), list(self.parked)

        def child() -> dict:
            try:
                self.pool.getconn(timeout=0)
                refused = False
            except PoolError:
                refused = True
            for conn in held:
                self.pool.putconn(conn)  # given back in the child: the parent's, left alone
            taken = [self.pool.take_back(ticket) for ticket in tickets]
            return {
                "refused": refused,
                "detached": all(conn.detached for conn in inherited),
                "closed": sum(conn.closed for conn in inherited),
                "taken_back": sum(conn is not None for conn in taken),
            }

        report = in_child(child)
        assert report == {"refused": True, "detached": True, "closed": 0, "taken_back": 0}

    # Meanwhile: what another thread does while one makes a round trip outside the lock

    @precondition(lambda self: self.open_connections())
    @rule(
        which=st.integers(0, MAX_SIZE - 1),
        what=st.sampled_from(MEANWHILE),
        thread=st.integers(0, THREADS - 1),
    )
    def meanwhile(self, which: int, what: str, thread: int) -> None:
        open_now = self.open_connections()
        conn = open_now[which % len(open_now)]
        if what == "fork" and self.forks >= MAX_FORKS:
            what = "recycle"
        event(f"meanwhile: {what}")
        conn.meanwhile = {
            "recycle": self.do_recycle,
            "close_idle": self.pool.close_idle,
            "maintain": lambda: type(self.pool)._maintain(self.pool),
            "borrow": lambda: self.do_borrow(self.threads[thread]),
            "fork": self.do_fork,
        }[what]

    # Invariants

    @invariant()
    def each_record_is_in_exactly_one_state(self) -> None:
        pool = self.pool
        if pool is None:
            return
        assert not pool._waiting
        idle = [id(record) for record in pool._idle]
        assert len(idle) == len(set(idle)), "a connection twice on the idle stack"
        parked = {id(record): ticket for ticket, record in pool._parked.items()}
        assert len(parked) == len(pool._parked), "a connection parked twice"
        for key, record in pool._records.items():
            assert key == id(record.conn)
            places = {
                State.IDLE: id(record) in idle,
                State.LENT: pool._lent.get(key) is record,
                State.PARKED: id(record) in parked,
            }
            assert sum(places.values()) == 1, f"{record.conn} in {places}"
            assert places[record.state], f"{record.conn} is {record.state}, but in {places}"
        assert all(id(record.conn) in pool._records for record in pool._idle)
        assert all(key in pool._records for key in pool._lent)
        assert all(id(record.conn) in pool._records for record in pool._parked.values())

    @invariant()
    def counts_add_up(self) -> None:
        pool = self.pool
        if pool is None:
            return
        self.settle()
        records = len(pool._records)
        assert pool.size() == records + pool._requested
        assert pool.available() == len(pool._idle) + len(pool._parked)
        assert pool.in_use() == len(pool._lent) == len(self.lent)
        stats = pool.stats()
        assert (stats["pool_in_use"], stats["pool_available"]) == (pool.in_use(), pool.available())
        assert stats["connections_num"] - stats["connections_closed"] == records
        # A take-back is counted under the lock at its return: the lent ones are still due.
        due = sum(record.taken_back for record in pool._lent.values())
        assert stats["requests_num"] + due == self.getconns + self.taken_back
        # The server sees exactly the pool's connections, never more than max_size.
        assert self.connect.open_now == records
        assert self.connect.max_open <= pool.config.max_size

    @invariant()
    def nothing_is_closed_under_its_borrower(self) -> None:
        self.settle()
        for conn, holder in self.lent.items():
            if holder.identity.is_alive():
                assert not conn.closed, f"{conn} closed under {holder.identity}"
        if self.pool is None:
            return
        for record in self.pool._idle:
            assert not record.conn.closed
            assert record.conn.session == DEFAULT_SESSION and record.conn.status == TxStatus.IDLE
        for record in self.pool._parked.values():
            assert not record.conn.closed


TestPoolModel = PoolModel.TestCase
