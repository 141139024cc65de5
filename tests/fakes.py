"""A fake DB-API connection, driver and connect factory for testing the pool without a server.

Also the helpers the pool's tests share: polling for a condition, and running code in a
forked child.
"""

from __future__ import annotations

import gc
import json
import os
import select
import signal
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable

from django_pool.drivers import TxStatus


class FakeError(Exception):
    """What the fake driver raises where a real one would raise OperationalError."""


# The session parameters a server reports (ParameterStatus), as a fresh connection has them.
PARAMETERS = ("TimeZone", "DateStyle", "application_name", "search_path")
DEFAULT_SESSION = ("UTC", "ISO, MDY", "test", '"$user", public')


class FakeConnection:
    """A connection that only records what the pool did to it."""

    def __init__(self, number: int = 0, factory: FakeConnect | None = None) -> None:
        self.number = number
        self.factory = factory
        self.status = TxStatus.IDLE
        self.session = DEFAULT_SESSION
        self.closed = False
        self.detached = False
        self.owner: object | None = None
        self.calls: list[str] = []
        self.rollbacks = 0
        self.pings = 0
        self.discards = 0
        self.fail_ping = False
        self.fail_rollback = False
        self.fail_discard = False
        self.fail_restore = False
        # Run at the start of the next round trip the pool makes on this connection (outside
        # the pool's lock): what another thread does meanwhile, at a chosen point.
        self.meanwhile: Callable[[], object] | None = None

    def round_trip(self, call: str) -> None:
        """Note a round trip, after running what happens meanwhile, if anything."""
        self.calls.append(call)
        meanwhile, self.meanwhile = self.meanwhile, None
        if meanwhile is not None:
            meanwhile()

    def __repr__(self) -> str:
        return f"<FakeConnection #{self.number}{' closed' if self.closed else ''}>"

    def set(self, parameter: str, value: str) -> None:
        """Change a session parameter, as ``SET parameter = value`` does."""
        session = list(self.session)
        session[PARAMETERS.index(parameter)] = value
        self.session = tuple(session)

    def die(self) -> None:
        """Lose the server (it restarted): every round trip fails from now on."""
        self.fail_ping = self.fail_rollback = self.fail_discard = self.fail_restore = True


class FakeDriver:
    """The ``Driver`` protocol over ``FakeConnection``."""

    def status(self, conn: FakeConnection) -> TxStatus:
        return TxStatus.UNKNOWN if conn.closed else conn.status

    def rollback(self, conn: FakeConnection) -> None:
        conn.round_trip("rollback")
        conn.rollbacks += 1
        if conn.fail_rollback:
            raise FakeError("rollback failed")
        conn.status = TxStatus.IDLE

    def discard_all(self, conn: FakeConnection) -> None:
        conn.round_trip("discard_all")
        conn.discards += 1
        if conn.fail_discard:
            raise FakeError("discard failed")

    def ping(self, conn: FakeConnection) -> None:
        conn.round_trip("ping")
        conn.pings += 1
        if conn.fail_ping:
            raise FakeError("server closed the connection unexpectedly")

    def session_state(self, conn: FakeConnection) -> tuple:
        return conn.session

    def idle_session_state(self, conn: FakeConnection) -> tuple | TxStatus:
        status = self.status(conn)
        return conn.session if status == TxStatus.IDLE else status

    def restore_session(self, conn: FakeConnection, baseline: tuple) -> None:
        conn.round_trip("restore_session")
        if conn.fail_restore:
            raise FakeError("could not restore the session")
        conn.session = baseline

    def detach(self, conn: FakeConnection) -> None:
        conn.calls.append("detach")
        conn.detached = True

    def close(self, conn: FakeConnection) -> None:
        if conn.closed:
            return
        conn.closed = True
        if conn.factory is not None:
            conn.factory.forget(conn)


class FakeConnect:
    """A ``connect()`` callable that counts connections, with optional delay and failures."""

    REFUSED = 'connection to server on socket "/tmp/.s.PGSQL.5432" failed: No such file'

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.failures: deque[Exception] = deque()
        self.server_up = True
        self.attempt_times: list[float] = []
        self.connections: list[FakeConnection] = []
        self.opened = 0
        self.open_now = 0
        self.max_open = 0
        self.attempts = 0
        # Run during the next connect, before it returns: what happens meanwhile.
        self.meanwhile: Callable[[], object] | None = None
        self._lock = threading.Lock()

    def fail(self, error: Exception, times: int = 1) -> None:
        """Make the next ``times`` connects raise ``error``."""
        self.failures.extend([error] * times)

    def switch_off(self) -> None:
        """Stop the server: open connections die, connects fail until ``switch_on()``."""
        self.server_up = False
        for conn in self.connections:
            conn.die()

    def switch_on(self) -> None:
        """Start the server again."""
        self.server_up = True

    def __call__(self) -> FakeConnection:
        # Counted as open while connecting, as a server counts a connection being set up.
        with self._lock:
            self.attempts += 1
            self.attempt_times.append(time.monotonic())
            self.open_now += 1
            self.max_open = max(self.max_open, self.open_now)
        if self.delay:
            time.sleep(self.delay)
        meanwhile, self.meanwhile = self.meanwhile, None
        if meanwhile is not None:
            meanwhile()
        with self._lock:
            if self.failures or not self.server_up:
                self.open_now -= 1
                raise self.failures.popleft() if self.failures else FakeError(self.REFUSED)
            self.opened += 1
            conn = FakeConnection(self.opened, self)
            self.connections.append(conn)
            return conn

    def forget(self, conn: FakeConnection) -> None:
        """Count a connection closed by the driver."""
        with self._lock:
            self.open_now -= 1


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    """Poll ``predicate`` until it is true; return whether it became true in time."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.002)
    return True


def is_collected(ref: Callable[[], object]) -> bool:
    gc.collect()
    return ref() is None


def in_child(report: Callable[[], object], timeout: float = 10.0) -> object:
    """Run ``report()`` in a forked child and return its JSON-ready result; fail if it hangs."""
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        try:
            os.write(write_end, json.dumps(report()).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    try:
        ready, _, _ = select.select([read_end], [], [], timeout)
        if not ready:
            os.kill(child, signal.SIGKILL)
        with os.fdopen(read_end) as reader:
            data = reader.read()
    finally:
        os.waitpid(child, 0)
    assert data, "the child hung, or failed before reporting"
    return json.loads(data)


class FakeClock:
    """A monotonic and a wall clock that move only when told to."""

    def __init__(self, wall: float = 1_700_000_000.0) -> None:
        # Starts where the real monotonic clock is, so that deadlines a pool computes with
        # it are never in the past of the real maintenance thread (no busy rounds).
        self.now = time.monotonic()
        self.wall = wall

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return self.wall

    def advance(self, seconds: float) -> None:
        self.now += seconds
        self.wall += seconds


class FakeThread:
    """A borrower's identity for a pool's ``current_thread``: one real thread plays many."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.alive = True

    def __repr__(self) -> str:
        return f"<FakeThread {self.name}{'' if self.alive else ' ended'}>"

    def is_alive(self) -> bool:
        return self.alive


class ManualWorker:
    """A pool's worker that runs its tasks and rounds only when told to, in the caller's thread.

    For a pool made with ``worker=ManualWorker``: connects and maintenance rounds happen at
    the points a test chooses, never meanwhile.
    """

    def __init__(self, pool) -> None:
        self._pool = weakref.ref(pool)
        self.tasks: deque = deque()
        self.thread = None

    def start(self) -> None:
        pass

    def submit(self, task) -> None:
        self.tasks.append(task)

    def stop(self, timeout: float = 0.0) -> None:
        self.tasks.clear()

    def run_tasks(self) -> int:
        """Run the tasks submitted so far (and those they submit); return how many ran."""
        ran = 0
        while self.tasks:
            self.tasks.popleft()(self._pool())
            ran += 1
        return ran

    def maintain(self) -> None:
        """Run one maintenance round, as the worker does when one is due, then the tasks."""
        pool = self._pool()
        type(pool)._maintain(pool)
        self.run_tasks()
