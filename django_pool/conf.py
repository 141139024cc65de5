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
}


@cache
def get_config() -> dict[str, Any]:
    """Return ``CONFIG_DEFAULTS`` updated with ``settings.DJANGO_POOL``."""
    return {**CONFIG_DEFAULTS, **getattr(settings, "DJANGO_POOL", {})}


@receiver(setting_changed)
def _reset_config(*, setting: str, **kwargs) -> None:
    if setting == "DJANGO_POOL":
        get_config.cache_clear()
