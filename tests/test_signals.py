"""Django signals fire once per server connection, on loss, and on exhaustion."""

from __future__ import annotations

import pytest
from django.db import OperationalError

from django_pool import background, signals
from django_pool.backends.postgresql.base import DatabaseWrapper
from tests.test_backend import backend_pid, wait_until


@pytest.fixture
def received():
    """Collect (signal name, sender, kwargs) for every django_pool signal."""
    seen = []
    receivers = {}
    for name in ("connection_created", "connection_lost", "pool_exhausted"):

        def receiver(sender, name=name, **kwargs):
            kwargs.pop("signal")
            seen.append((name, sender, kwargs))

        receivers[name] = receiver
        getattr(signals, name).connect(receiver)
    yield seen
    for name, receiver in receivers.items():
        getattr(signals, name).disconnect(receiver)


def test_connection_created_fires_once_per_server_connection(pooled, received):
    wrapper = pooled(min_size=0, max_size=1)
    for _ in range(3):
        backend_pid(wrapper)
        wrapper.close()
    # Delivered by the events thread, after the worker that connected dispatched it.
    wait_until(lambda: any(event[0] == "connection_created" for event in received))
    background.flush()
    created = [event for event in received if event[0] == "connection_created"]
    assert len(created) == 1
    _, sender, kwargs = created[0]
    assert sender is DatabaseWrapper and kwargs["alias"] == wrapper.alias
    assert kwargs["connect_ms"] > 0


def test_connection_lost_fires_when_a_check_fails(pooled, server, received):
    wrapper = pooled(min_size=0, max_size=1, check="always")
    server.terminate(backend_pid(wrapper))
    wrapper.close()
    backend_pid(wrapper)
    wrapper.close()
    background.flush()  # delivered by the events thread
    lost = [kwargs for name, _, kwargs in received if name == "connection_lost"]
    assert lost == [{"alias": wrapper.alias, "reason": "check"}]


def test_pool_exhausted_fires_on_timeout(pooled, received):
    holder = pooled(min_size=0, max_size=1, timeout=0.1)
    holder.ensure_connection()
    with pytest.raises(OperationalError):
        holder.copy().ensure_connection()
    holder.close()
    wait_until(lambda: any(name == "pool_exhausted" for name, _, _ in received))
    (kwargs,) = [kwargs for name, _, kwargs in received if name == "pool_exhausted"]
    assert kwargs == {
        "alias": holder.alias,
        "error": "timeout",
        "in_use": 1,
        "max_size": 1,
        "waiting": 0,
    }
