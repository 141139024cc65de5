"""A fake DB-API connection, driver and connect factory for testing the pool without a server."""

from __future__ import annotations

import threading
import time
from collections import deque

from django_pool.drivers import TxStatus


class FakeError(Exception):
    """What the fake driver raises where a real one would raise OperationalError."""


class FakeConnection:
    """A connection that only records what the pool did to it."""

    def __init__(self, number: int = 0, factory: FakeConnect | None = None) -> None:
        self.number = number
        self.factory = factory
        self.status = TxStatus.IDLE
        self.closed = False
        self.owner: object | None = None
        self.calls: list[str] = []
        self.rollbacks = 0
        self.pings = 0
        self.discards = 0
        self.fail_ping = False
        self.fail_rollback = False
        self.fail_discard = False

    def __repr__(self) -> str:
        return f"<FakeConnection #{self.number}{' closed' if self.closed else ''}>"


class FakeDriver:
    """The ``Driver`` protocol over ``FakeConnection``."""

    def status(self, conn: FakeConnection) -> TxStatus:
        return TxStatus.UNKNOWN if conn.closed else conn.status

    def rollback(self, conn: FakeConnection) -> None:
        conn.calls.append("rollback")
        conn.rollbacks += 1
        if conn.fail_rollback:
            raise FakeError("rollback failed")
        conn.status = TxStatus.IDLE

    def discard_all(self, conn: FakeConnection) -> None:
        conn.calls.append("discard_all")
        conn.discards += 1
        if conn.fail_discard:
            raise FakeError("discard failed")

    def ping(self, conn: FakeConnection) -> None:
        conn.calls.append("ping")
        conn.pings += 1
        if conn.fail_ping:
            raise FakeError("server closed the connection unexpectedly")

    def close(self, conn: FakeConnection) -> None:
        if conn.closed:
            return
        conn.closed = True
        if conn.factory is not None:
            conn.factory.forget(conn)


class FakeConnect:
    """A ``connect()`` callable that counts connections, with optional delay and failures."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.failures: deque[Exception] = deque()
        self.connections: list[FakeConnection] = []
        self.opened = 0
        self.open_now = 0
        self.max_open = 0
        self.attempts = 0
        self._lock = threading.Lock()

    def fail(self, error: Exception, times: int = 1) -> None:
        """Make the next ``times`` connects raise ``error``."""
        self.failures.extend([error] * times)

    def __call__(self) -> FakeConnection:
        # Counted as open while connecting, as a server counts a connection being set up.
        with self._lock:
            self.attempts += 1
            self.open_now += 1
            self.max_open = max(self.max_open, self.open_now)
        if self.delay:
            time.sleep(self.delay)
        with self._lock:
            if self.failures:
                self.open_now -= 1
                raise self.failures.popleft()
            self.opened += 1
            conn = FakeConnection(self.opened, self)
            self.connections.append(conn)
            return conn

    def forget(self, conn: FakeConnection) -> None:
        """Count a connection closed by the driver."""
        with self._lock:
            self.open_now -= 1
