"""The process-level registry: one pool per database alias per process."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable

from .pool import ConnectionPool

_pools: dict[tuple[str, int], ConnectionPool] = {}
_lock = threading.Lock()
# os.getpid() is a system call and Django reads a wrapper's pool several times per borrow;
# the fork hook below keeps this copy current.
_pid = os.getpid()


def get_pool(alias: str, create: Callable[[], ConnectionPool]) -> ConnectionPool:
    """Return this process's pool for ``alias``, creating it with ``create()`` on first use."""
    key = (alias, _pid)
    pool = _pools.get(key)
    if pool is not None:
        return pool
    with _lock:
        pool = _pools.get(key)
        if pool is None:
            pool = _pools[key] = create()
        return pool


def close_pool(alias: str) -> None:
    """Close and forget this process's pool for ``alias``; do nothing if there is none."""
    with _lock:
        pool = _pools.pop((alias, _pid), None)
    if pool is not None:
        pool.close()


def pools() -> dict[str, ConnectionPool]:
    """Return this process's pools by alias."""
    return {alias: pool for (alias, owner), pool in list(_pools.items()) if owner == _pid}


def _forget_inherited_pools() -> None:
    # A forked child starts with pools of its own. The inherited ones have already detached
    # their connections (the pool's own fork hook), so dropping them ends nothing on the
    # server. Another thread may have held the lock at fork time: start a fresh one.
    global _lock, _pid
    _pools.clear()
    _lock = threading.Lock()
    _pid = os.getpid()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_inherited_pools)
