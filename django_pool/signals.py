"""Signals about the pool's server connections.

Django's own ``connection_created`` fires on every borrow, because each borrow is a
``connect()`` for Django. These fire once per server connection, and when the pool runs out.
Receivers run in the process's ``django_pool events`` thread, one at a time and in order,
never in the thread that opens connections, so they may use the ORM (what they borrow is
given back after each signal); keep them quick. Each gets ``sender`` (our DatabaseWrapper
class), ``alias`` and:

- ``connection_created``: ``connect_ms``, how long opening and setting it up took;
- ``connection_lost``: ``reason``: ``"check"`` (failed its check), ``"broken"`` (returned
  broken) or ``"reclaimed"`` (its borrowing thread ended without giving it back);
- ``pool_exhausted``: ``error`` (``"timeout"`` or ``"too_many"``), ``in_use``, ``max_size``
  and ``waiting`` at that moment: a borrower failed because no connection was free.
"""

from __future__ import annotations

import logging

from django.db import connections
from django.dispatch import Signal

logger = logging.getLogger("django_pool")

connection_created = Signal()
connection_lost = Signal()
pool_exhausted = Signal()

_BY_EVENT = {
    "connection_created": connection_created,
    "connection_lost": connection_lost,
    "pool_exhausted": pool_exhausted,
}


class EventSender:
    """Turn the pool core's events for one alias into Django signals."""

    def __init__(self, sender: type, alias: str) -> None:
        self.sender = sender
        self.alias = alias

    def __call__(self, event: str, info: dict) -> None:
        try:
            _BY_EVENT[event].send(sender=self.sender, alias=self.alias, **info)
        finally:
            give_back_connections()


def give_back_connections() -> None:
    """Give back what this thread's wrappers borrowed (a thread that never ends must)."""
    for connection in connections.all(initialized_only=True):
        try:
            connection.close()
        except Exception:
            logger.exception("could not give back the connection of %r", connection.alias)
