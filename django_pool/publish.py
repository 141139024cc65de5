"""Every process's pools, for any process to show: snapshots published to a shared Django cache.

With ``DJANGO_POOL["CACHE"]`` naming a cache of ``settings.CACHES``, each process writes
``{"host", "pid", "published_at", "pools": {alias: snapshot}}`` under its own key every
``PUBLISH_INTERVAL`` seconds, with ``PUBLISH_TTL`` as timeout: a process that exited or
hangs drops out by itself. A Django cache cannot list its keys, so an index key maps every
process key to when its entry expires. Processes update the index read-modify-write without
a lock; one whose update was lost adds itself again at its next publication.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from typing import Any

from django.core.cache import BaseCache, caches
from django.core.signals import setting_changed
from django.dispatch import receiver

from . import background, registry
from .conf import get_config
from .health import WINDOW_POINTS, verdict
from .signals import give_back_connections

logger = logging.getLogger("django_pool")

INDEX_KEY = "django_pool:processes"


def process_key(host: str, pid: int) -> str:
    """Return the cache key of a process's entry."""
    return f"django_pool:process:{host}:{pid}"


def local_entry(snapshots: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """Return this process's entry now: host, pid, time and every pool's recent snapshot.

    ``snapshots`` are this process's, just taken (by alias), for a caller that has them.
    """
    if snapshots is None:
        snapshots = {alias: pool.snapshot() for alias, pool in registry.pools().items()}
    return {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "published_at": time.time(),
        "pools": {alias: _recent(snapshot) for alias, snapshot in sorted(snapshots.items())},
    }


def _recent(snapshot: dict[str, Any]) -> dict[str, Any]:
    """Keep the history that judging the pool reads (the last 5 minutes), and the judgement.

    Every reader of every process's entries (dashboards polling, metrics scrapes) loads them
    all each time: an hour of history per pool would make that twelve times the work, and
    judging 500 pools on every poll of every open dashboard would cost more than publishing
    each verdict once.
    """
    history = snapshot["history"]
    recent = {**snapshot, "history": {**history, "points": history["points"][-WINDOW_POINTS:]}}
    return {**recent, "status": verdict(recent)["status"]}


def publish() -> None:
    """Write this process's entry to the cache and list it in the index; never raise."""
    try:
        cache = _cache()
        if cache is not None:
            _publish(cache, get_config()["PUBLISH_TTL"])
    except Exception:
        # Called from the events thread: a cache that is down must cost a log line, never
        # the signals that thread delivers.
        logger.exception("could not publish this process's pool snapshots")


def process_snapshots(
    max_age: float = 0.0, own: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """Return every live process's entry (this one's taken now), sorted by host and pid.

    Only this process's without a cache, or when the cache fails (logged, never raised:
    dashboards and metrics keep showing what they can). With ``max_age``, the other
    processes' entries read from the cache up to that many seconds ago are used again.
    ``own`` is this process's entry, for a caller that has just made it.
    """
    own = own or local_entry()
    entries = dict(_others(max_age))
    entries[process_key(own["host"], own["pid"])] = own
    return sorted(entries.values(), key=lambda entry: (entry["host"], entry["pid"]))


# The other processes' entries as last read: (monotonic time read, entries by key).
_last_read: tuple[float, dict[str, dict[str, Any]]] = (float("-inf"), {})


@receiver(setting_changed)
def _forget_last_read(*, setting: str, **kwargs: Any) -> None:
    # Another cache, or other settings for it: what was read from the old one is not its.
    global _last_read
    if setting in ("DJANGO_POOL", "CACHES"):
        _last_read = (float("-inf"), {})


def _others(max_age: float) -> dict[str, dict[str, Any]]:
    """Return the entries in the cache, read now or at most ``max_age`` seconds ago."""
    global _last_read
    read_at, entries = _last_read
    if time.monotonic() - read_at <= max_age:
        return entries
    entries = {}
    try:
        cache = _cache()
        if cache is not None:
            entries = cache.get_many(list(_index(cache)))
    except Exception:
        logger.exception("could not read the pool snapshots other processes published")
    _last_read = (time.monotonic(), entries)
    return entries


def start_publishing() -> None:
    """Publish every ``PUBLISH_INTERVAL`` seconds from the events thread (once a process)."""
    config = get_config()
    if config["CACHE"] is None:
        return  # no thread for a feature that is off
    # Calling it again only replaces the registration, and forked children inherit it: once
    # a process however often ready() runs, and in every worker of a preloading server.
    background.every(config["PUBLISH_INTERVAL"], _publish_in_background)


def _publish_in_background() -> None:
    """Publish from the events thread, then give back what the cache borrowed."""
    publish()
    # A DatabaseCache borrows a connection in this thread, which never ends: unreturned,
    # it would stay borrowed for good.
    give_back_connections()


def _cache() -> BaseCache | None:
    name = get_config()["CACHE"]
    return None if name is None else caches[name]


def _publish(cache: BaseCache, ttl: float) -> None:
    entry = local_entry()
    key = process_key(entry["host"], entry["pid"])
    cache.set(key, entry, ttl)
    index = _index(cache)
    index[key] = entry["published_at"] + ttl
    # The index lives as long as the longest-lived entry it lists, so it ends with the last
    # process and never before any of them.
    cache.set(INDEX_KEY, index, max(max(index.values()) - entry["published_at"], ttl))


def _index(cache: BaseCache) -> dict[str, float]:
    """Return the index without the keys whose entries expired."""
    index = cache.get(INDEX_KEY) or {}
    # Expiry times come from the publishers' clocks: ask the cache before dropping a key
    # that looks expired, so a host whose clock is behind is not dropped too early.
    now = time.time()
    expired = [key for key, expires_at in index.items() if expires_at <= now]
    if expired:
        alive = cache.get_many(expired)
        for key in expired:
            if key not in alive:
                del index[key]
    return index
