"""Publishing every process's snapshots to a shared cache, with a second real process."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time

import pytest
from django.core.cache import caches
from django.core.management import call_command
from django.db import connections

from django_pool import background, publish
from django_pool.publish import INDEX_KEY, process_key, process_snapshots
from tests.test_server import child_process


def cache_settings(tmp_path, **config) -> dict:
    """Return settings naming a file-based cache that every process on this machine reaches."""
    return {
        "CACHES": {
            "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
            "pools": {
                "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
                "LOCATION": str(tmp_path / "cache"),
            },
        },
        "DJANGO_POOL": {"CACHE": "pools", **config},
    }


@pytest.fixture
def shared(settings, tmp_path):
    """Point this process at a shared cache; return the settings for a child process too."""

    def configure(**config) -> dict:
        overrides = cache_settings(tmp_path, **config)
        for name, value in overrides.items():
            setattr(settings, name, value)
        return overrides

    return configure


def use_default_pool() -> None:
    """Borrow and return a connection, so this process has a pool to publish."""
    connection = connections["default"]
    connection.ensure_connection()
    connection.close()


def me() -> tuple[str, int]:
    return socket.gethostname(), os.getpid()


def test_every_process_in_the_cache_view(shared, server):
    overrides = shared()
    use_default_pool()
    publish.publish()
    with child_process(server, publish=True, settings=overrides) as child:
        entries = process_snapshots()
    host, pid = me()
    assert [(e["host"], e["pid"]) for e in entries] == sorted([(host, pid), (host, child["pid"])])
    theirs = next(e for e in entries if e["pid"] == child["pid"])
    assert set(theirs) == {"host", "pid", "published_at", "pools"}
    assert set(theirs["pools"]) == {"default"}
    assert theirs["pools"]["default"]["pid"] == child["pid"]
    assert theirs["pools"]["default"]["stats"]["requests_num"] >= 1
    assert time.time() - 30 < theirs["published_at"] <= time.time()
    ours = next(e for e in entries if e["pid"] == pid)
    assert ours["pools"]["default"]["stats"]["requests_num"] >= 1
    index = caches["pools"].get(INDEX_KEY)
    assert set(index) == {process_key(host, pid), process_key(host, child["pid"])}


def test_this_process_is_shown_before_it_publishes(shared, server):
    shared()
    use_default_pool()
    entries = process_snapshots()
    assert [(e["host"], e["pid"]) for e in entries] == [me()]
    assert "default" in entries[0]["pools"]
    assert caches["pools"].get(INDEX_KEY) is None


def test_a_process_drops_out_when_its_entry_expires(shared, server, tmp_path):
    shared()
    publish.publish()
    short_lived = cache_settings(tmp_path, PUBLISH_TTL=1.0)
    with child_process(server, publish=True, wait=False, settings=short_lived) as child:
        assert child["pid"] in [e["pid"] for e in process_snapshots()]  # and it exits
    gone = process_key(socket.gethostname(), child["pid"])
    time.sleep(1.2)
    assert child["pid"] not in [e["pid"] for e in process_snapshots()]
    assert gone in caches["pools"].get(INDEX_KEY)  # until a publisher prunes it
    publish.publish()
    assert set(caches["pools"].get(INDEX_KEY)) == {process_key(*me())}


def test_a_lost_index_update_heals_at_the_next_publication(shared):
    shared()
    publish.publish()
    # Another process read the index before we wrote ours, and wrote it back after.
    caches["pools"].set(INDEX_KEY, {}, 30)
    publish.publish()
    assert set(caches["pools"].get(INDEX_KEY)) == {process_key(*me())}


def registrations(monkeypatch) -> list[tuple]:
    """Record what start_publishing() asks of the events thread instead of starting it."""
    registered: list[tuple] = []
    monkeypatch.setattr(background, "every", lambda *args: registered.append(args))
    return registered


def test_no_cache_means_no_publishing(settings, tmp_path, monkeypatch):
    overrides = cache_settings(tmp_path, CACHE=None)
    settings.CACHES, settings.DJANGO_POOL = overrides["CACHES"], overrides["DJANGO_POOL"]
    registered = registrations(monkeypatch)
    publish.publish()
    publish.start_publishing()
    assert caches["pools"].get(INDEX_KEY) is None
    assert caches["pools"].get(process_key(*me())) is None
    assert [(e["host"], e["pid"]) for e in process_snapshots()] == [me()]
    assert registered == []


def test_start_publishing_registers_publish_with_the_interval(shared, monkeypatch):
    shared(PUBLISH_INTERVAL=7.0)
    registered = registrations(monkeypatch)
    publish.start_publishing()
    assert registered == [(7.0, publish._publish_in_background)]


def test_a_database_cache_gives_its_connection_back_in_the_background(settings, server):
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
        "pools": {
            "BACKEND": "django.core.cache.backends.db.DatabaseCache",
            "LOCATION": "django_pool_cache",
        },
    }
    settings.DJANGO_POOL = {"CACHE": "pools"}
    call_command("createcachetable", "django_pool_cache", database="default")
    connections["default"].close()
    pool = connections["default"].pool
    # What the events thread does: it never ends, so it must not keep a connection.
    thread = threading.Thread(target=publish._publish_in_background)
    thread.start()
    thread.join()
    assert pool.in_use() == 0
    assert caches["pools"].get(process_key(*me()))["pid"] == os.getpid()


def test_a_broken_cache_is_logged_never_raised(settings, caplog):
    settings.DJANGO_POOL = {"CACHE": "no-such-cache"}
    with caplog.at_level(logging.ERROR, logger="django_pool"):
        publish.publish()
        entries = process_snapshots()
    assert [(e["host"], e["pid"]) for e in entries] == [me()]
    messages = [record.getMessage() for record in caplog.records]
    assert "could not publish this process's pool snapshots" in messages
    assert "could not read the pool snapshots other processes published" in messages


def test_a_published_snapshot_keeps_the_history_judging_needs_and_the_judgement(shared, server):
    from django_pool.health import WINDOW_POINTS, verdict
    from django_pool.stats import POINT_KEYS

    use_default_pool()
    snapshot = connections["default"].pool.snapshot()
    quiet = dict.fromkeys(POINT_KEYS, 0)
    points = [{**quiet, "t": 10 * n, "in_use": n % 5} for n in range(360)]
    snapshot["history"]["points"] = points
    published = publish._recent(snapshot)
    assert published["history"]["points"] == points[-WINDOW_POINTS:]
    assert published["stats"] == snapshot["stats"]
    assert published["status"] == verdict(snapshot)["status"]
    assert len(snapshot["history"]["points"]) == 360, "the pool's own snapshot is untouched"


def test_other_processes_entries_may_be_read_again_within_max_age(shared, server, monkeypatch):
    shared()
    use_default_pool()
    publish.publish()
    monkeypatch.setattr(publish, "_last_read", (float("-inf"), {}))  # nothing read yet
    reads = []
    read = publish._cache

    def counting_cache():
        reads.append(1)
        return read()

    monkeypatch.setattr(publish, "_cache", counting_cache)
    first = publish.process_snapshots(max_age=60)
    again = publish.process_snapshots(max_age=60)
    assert len(reads) == 1, "the second read within max_age reuses the first"
    assert [entry["pid"] for entry in again] == [entry["pid"] for entry in first]
    publish.process_snapshots()
    assert len(reads) == 2, "max_age 0 (the default) always reads the cache"


def test_changing_the_cache_settings_forgets_what_was_read(shared, server, settings):
    shared()
    use_default_pool()
    publish.process_snapshots(max_age=60)
    assert publish._last_read[0] > float("-inf")
    settings.DJANGO_POOL = {"CACHE": None}
    assert publish._last_read[0] == float("-inf")
