"""What the admin dashboard's JSON endpoint costs per poll: 10 pools here, 50 processes published.

``python -m demo_project.bench.dashboard`` prints a JSON result; ``make bench`` runs it in a
process of its own (Django is configured here for this alone). Each pool has a full hour of
history, and so has every pool of the 49 other processes in the cache, so a poll summarises
and serialises about 500 snapshots, as a dashboard open on a 50-process site would.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from types import SimpleNamespace
from typing import Any

POOLS = 10
PROCESSES = 50
POLLS = 30


def configure() -> None:
    """Configure Django: the admin, a local-memory cache to publish to, no database access."""
    import django
    from django.conf import settings

    settings.configure(
        USE_TZ=True,
        TIME_ZONE="UTC",
        SECRET_KEY="bench-only",
        INSTALLED_APPS=[
            "django.contrib.admin",
            "django.contrib.auth",
            "django.contrib.contenttypes",
            "django.contrib.messages",
            "django_pool",
        ],
        CACHES={"pools": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}},
        DJANGO_POOL={"CACHE": "pools"},
        DATABASES={},
        ROOT_URLCONF=__name__,
    )
    django.setup()


urlpatterns: list = []


def busy_pools() -> dict[str, Any]:
    """Register POOLS pools on fake connections, each with an hour of varied history."""
    from django_pool import registry
    from django_pool.drivers import TxStatus
    from django_pool.options import PoolConfig
    from django_pool.pool import ConnectionPool
    from django_pool.stats import POINT_KEYS

    class Driver:
        def status(self, conn: Any) -> int:
            return TxStatus.IDLE

        def session_state(self, conn: Any) -> tuple:
            return ()

        def close(self, conn: Any) -> None:
            pass

    pools = {}
    for number in range(POOLS):
        alias = f"db{number}"
        config = PoolConfig(name=alias, min_size=0, max_size=10)
        pool = registry.get_pool(alias, lambda c=config: ConnectionPool(object, c, Driver()))
        history = pool._stats.history
        for slot in range(history._rows.maxlen):
            busy = (slot * 7 + number) % 10
            point = {
                "t": history._t - (360 - slot) * 10,
                "in_use": busy,
                "idle": 10 - busy,
                "waiting": busy // 3,
                "borrows_per_s": 12.5 * busy,
                "wait_p95_ms": float(busy),
                "hold_ms": 3.5,
                "errors": busy % 2,
            }
            # Every key a point has, in its order: the counters added later read 0.
            history._rows.append(tuple(point.get(key, 0) for key in POINT_KEYS))
        pools[alias] = pool
    return pools


def publish_other_processes() -> None:
    """Publish this process's entry as PROCESSES - 1 other processes would, then our own."""
    from django.core.cache import caches

    from django_pool import publish

    cache = caches["pools"]
    entry = publish.local_entry()
    index = {}
    for pid in range(1, PROCESSES):
        key = publish.process_key("other-host", pid)
        cache.set(key, {**entry, "host": "other-host", "pid": pid}, 300)
        index[key] = time.time() + 300
    cache.set(publish.INDEX_KEY, index, 300)
    publish.publish()


def poll_once(view: Any, request: Any) -> bytes:
    """Return one poll's JSON response."""
    return view(request).content


def main() -> None:
    configure()
    from django.contrib import admin
    from django.test import RequestFactory

    from django_pool.models import PoolStatus

    busy_pools()
    publish_other_processes()
    view = admin.site._registry[PoolStatus].data_view
    user = SimpleNamespace(is_active=True, is_staff=True, pk=1, has_perm=lambda p: True)
    url = "/admin/django_pool/poolstatus/data.json"
    first = RequestFactory().get(url)
    first.user = user
    # As the page polls: it says which charts it draws (those of the first answer).
    keys = [card["charts_key"] for card in json.loads(poll_once(view, first))["cards"]]
    request = RequestFactory().get(url, {"have": ",".join(keys)})
    request.user = user
    cpu_ms, sizes = [], []
    for _ in range(POLLS):
        started = time.process_time()
        sizes.append(len(poll_once(view, request)))
        cpu_ms.append((time.process_time() - started) * 1000.0)
    print(
        json.dumps(
            {
                "pools": POOLS,
                "processes": PROCESSES,
                "polls": POLLS,
                "cpu_ms_median": statistics.median(cpu_ms),
                "cpu_ms_max": max(cpu_ms),
                "response_kb": statistics.median(sizes) / 1024,
            }
        )
    )


if __name__ == "__main__":
    os.environ.pop("DJANGO_SETTINGS_MODULE", None)
    sys.exit(main())
