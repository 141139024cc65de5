"""The app's own settings: ``DJANGO_POOL = {...}`` in settings.py, read when needed."""

from __future__ import annotations

from functools import cache
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

CONFIG_DEFAULTS: dict[str, Any] = {
    # Seconds a client is told to wait (Retry-After) when PoolOverloadMiddleware sheds load.
    "RETRY_AFTER": 1,
    # Alias of a Django cache (settings.CACHES) to which every process publishes its pools'
    # snapshots, so that any process can show all of them; None turns publishing off.
    "CACHE": None,
    # Seconds between two publications of a process's snapshots.
    "PUBLISH_INTERVAL": 10.0,
    # Seconds a published snapshot stays readable: a process that stopped publishing
    # (it exited or hangs) drops out of the all-processes view after this.
    "PUBLISH_TTL": 30.0,
    # Serve Prometheus metrics at metrics/ (needs the prometheus-client package).
    "METRICS": False,
    # When set, metrics/ requires "Authorization: Bearer <token>".
    "METRICS_TOKEN": None,
    # The debug toolbar's PoolPanel warns about a borrow that waited this many ms or more,
    "PANEL_SLOW_WAIT_MS": 20,
    # that held its connection this many ms longer than its queries took,
    "PANEL_HOLD_OUTSIDE_MS": 100,
    # about a request that borrowed this many times from one pool,
    "PANEL_MANY_BORROWS": 10,
    # and about a pool that had this share of max_size in use (or borrowers waiting).
    "PANEL_NEAR_EXHAUSTION": 0.8,
}


@cache
def get_config() -> dict[str, Any]:
    """Return ``CONFIG_DEFAULTS`` updated with ``settings.DJANGO_POOL``."""
    return {**CONFIG_DEFAULTS, **getattr(settings, "DJANGO_POOL", {})}


@receiver(setting_changed)
def _reset_config(*, setting: str, **kwargs) -> None:
    if setting == "DJANGO_POOL":
        get_config.cache_clear()
