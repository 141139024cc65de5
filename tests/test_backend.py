"""The pooled ENGINE against a real PostgreSQL, under whichever driver Django picked."""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.request

import psycopg2
import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import (
    DatabaseError,
    OperationalError,
    close_old_connections,
    connections,
    transaction,
)
from django.db.backends.postgresql import base as postgresql
from django.db.backends.postgresql.psycopg_any import IsolationLevel
from django.test import Client

from django_pool import registry
from django_pool.errors import PoolError, PoolTimeout, TooManyRequests
from django_pool.pool import ConnectionPool
from tests.testapp.models import Item


def backend_pid(wrapper) -> int:
    with wrapper.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def wait_until(predicate, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.005)


def test_uses_the_driver_django_picked():
    expected = "psycopg2" if os.environ.get("DJANGO_POOL_DRIVER") == "psycopg2" else "psycopg"
    assert connections["default"].Database.__name__ == expected


@pytest.mark.django_db(transaction=True)
def test_sixteen_threads_share_at_most_four_server_connections(server):
    connections["default"].close()
    opened_before = connections["default"].pool.stats()["connections_num"]
    peak, errors, done = [0], [], threading.Event()

    def watch():
        while not done.is_set():
            peak[0] = max(peak[0], server.connections("default"))
            time.sleep(0.002)

    def work(n: int):
        try:
            for i in range(40):
                Item.objects.create(name=f"t{n}", quantity=i)
                assert Item.objects.filter(name=f"t{n}").count() == i + 1
                close_old_connections()  # what request_finished does
                connections["default"].close()
        except Exception as error:  # noqa: BLE001 - reported by the assertion below
            errors.append(error)

    watcher = threading.Thread(target=watch)
    watcher.start()
    workers = [threading.Thread(target=work, args=(n,)) for n in range(16)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    done.set()
    watcher.join()

    stats = connections["default"].pool.stats()
    assert errors == []
    assert Item.objects.count() == 16 * 40
    assert 1 <= peak[0] <= 4
    # Counters are the pool's whole life: earlier tests may have opened some already.
    assert stats["pool_max"] == 4 and stats["connections_num"] - opened_before <= 4
    assert stats["requests_num"] >= 16 * 40


@pytest.mark.django_db(transaction=True)
def test_transaction_left_open_by_a_view_is_not_leaked(live_server, server):
    connections["default"].close()  # this thread's own borrow (test set-up) is not the view's
    pool = connections["default"].pool
    left = get_json(f"{live_server.url}/leave-transaction/")
    wait_until(lambda: pool.stats()["pool_in_use"] == 0)
    after = get_json(f"{live_server.url}/session/")

    assert after["pid"] == left["pid"], "the next request should reuse the same connection"
    assert after["leaked"] == 0
    assert after["fresh"] is True
    idle_in_transaction = server.query(
        "SELECT count(*) FROM pg_stat_activity WHERE state LIKE 'idle in transaction%%'"
    )[0][0]
    assert idle_in_transaction == 0


@pytest.mark.django_db(transaction=True)
def test_views_run_through_a_real_server(live_server):
    first = get_json(f"{live_server.url}/items/")
    second = get_json(f"{live_server.url}/items/")
    assert (first["count"], second["count"]) == (1, 2)
    assert get_json(f"{live_server.url}/atomic/") == {"count": 0}


def test_killed_idle_connection_is_replaced_after_check_interval(pooled, server):
    wrapper = pooled(min_size=0, max_size=1, check=0.05)
    first = backend_pid(wrapper)
    wrapper.close()
    server.terminate(first)
    time.sleep(0.1)

    second = backend_pid(wrapper)
    wrapper.close()
    assert second != first
    assert wrapper.pool.stats()["connections_lost"] == 1


def test_killed_connection_is_replaced_with_check_always(pooled, server):
    wrapper = pooled(min_size=0, max_size=1, check="always")
    first = backend_pid(wrapper)
    wrapper.close()
    server.terminate(first)

    assert backend_pid(wrapper) != first
    wrapper.close()


def test_connection_killed_while_borrowed_is_discarded_on_return(pooled, server):
    wrapper = pooled(min_size=0, max_size=1)
    first = backend_pid(wrapper)
    server.terminate(first)
    with pytest.raises((OperationalError, DatabaseError)):
        backend_pid(wrapper)
    wrapper.close_if_unusable_or_obsolete()  # end of request: the failed query marked it
    wrapper.close()

    assert backend_pid(wrapper) != first
    wrapper.close()
    assert wrapper.pool.stats()["returns_bad"] == 1


def test_conn_health_checks_turn_check_to_always(pooled, server):
    wrapper = pooled(min_size=0, max_size=1)
    wrapper.settings_dict["CONN_HEALTH_CHECKS"] = True
    assert wrapper.pool.config.check == "always"
    first = backend_pid(wrapper)
    wrapper.close()
    server.terminate(first)
    assert backend_pid(wrapper) != first
    wrapper.close()


def test_timeout_becomes_django_operational_error_with_numbers(pooled):
    holder = pooled(min_size=0, max_size=1, timeout=0.2)
    holder.ensure_connection()
    other = holder.copy()
    with pytest.raises(OperationalError) as caught:
        other.ensure_connection()
    holder.close()
    assert isinstance(caught.value.__cause__, PoolTimeout)
    assert holder.alias in str(caught.value) and "max_size=1" in str(caught.value)


def test_setup_runs_once_per_server_connection(pooled, monkeypatch):
    calls = []
    configure = postgresql.DatabaseWrapper._configure_timezone

    def counting(self, connection):
        calls.append(connection)
        return configure(self, connection)

    monkeypatch.setattr(postgresql.DatabaseWrapper, "_configure_timezone", counting)
    wrapper = pooled(min_size=0, max_size=1)
    wrapper.settings_dict["TIME_ZONE"] = "America/Chicago"
    zones = set()
    for _ in range(10):
        with wrapper.cursor() as cursor:
            cursor.execute("SHOW TIME ZONE")
            zones.add(cursor.fetchone()[0])
        wrapper.close()
    assert zones == {"America/Chicago"}
    assert len(calls) == 1


def test_server_connections_are_named_after_alias_pid_and_host(pooled, server):
    wrapper = pooled(min_size=0, max_size=1)
    pid = backend_pid(wrapper)
    wrapper.close()
    (name,) = server.query("SELECT application_name FROM pg_stat_activity WHERE pid = %s", [pid])[0]
    assert name.startswith(f"django_pool:{wrapper.alias}:{os.getpid()}@")


def test_application_name_set_by_the_user_wins(pooled, server):
    wrapper = pooled(options={"application_name": "shop-web"}, min_size=0, max_size=1)
    pid = backend_pid(wrapper)
    wrapper.close()
    (name,) = server.query("SELECT application_name FROM pg_stat_activity WHERE pid = %s", [pid])[0]
    assert name == "shop-web"


def test_django_never_builds_its_own_psycopg_pool(pooled):
    wrapper = pooled(min_size=0, max_size=1)
    backend_pid(wrapper)
    wrapper.close()
    assert isinstance(wrapper.pool, ConnectionPool)
    assert postgresql.DatabaseWrapper._connection_pools == {}


def test_isolation_level_from_options_holds_on_every_borrow(pooled):
    wrapper = pooled(
        options={"isolation_level": IsolationLevel.SERIALIZABLE}, min_size=0, max_size=1
    )
    levels = []
    for _ in range(3):
        wrapper.set_autocommit(False)
        with wrapper.cursor() as cursor:
            cursor.execute("SHOW transaction_isolation")
            levels.append(cursor.fetchone()[0])
        wrapper.rollback()
        wrapper.set_autocommit(True)
        wrapper.close()
    assert levels == ["serializable"] * 3
    assert wrapper.pool.stats()["connections_num"] == 1


@pytest.mark.django_db(transaction=True, databases=["default", "other"])
def test_each_alias_has_its_own_pool_and_time_zone():
    # Earlier tests may have restored sessions on these pools: count only this test's.
    restored = {
        alias: connections[alias].pool.stats()["sessions_restored"]
        for alias in ("default", "other")
    }
    zones = {}
    for alias in ("default", "other"):
        with connections[alias].cursor() as cursor:
            cursor.execute("SHOW TIME ZONE")
            zones[alias] = cursor.fetchone()[0]
    assert zones == {"default": "UTC", "other": "Asia/Tokyo"}
    for alias in ("default", "other"):
        connections[alias].close()
        # The zone is set up once per server connection: returning it costs no restore.
        assert connections[alias].pool.stats()["sessions_restored"] == restored[alias]
    assert connections["default"].pool is not connections["other"].pool
    assert connections["other"].pool.stats()["pool_max"] == 2


@pytest.mark.django_db(transaction=True)
def test_atomic_rolls_back_and_commits():
    with pytest.raises(RuntimeError), transaction.atomic():
        Item.objects.create(name="gone")
        raise RuntimeError
    with transaction.atomic():
        Item.objects.create(name="kept")
    connections["default"].close()
    assert list(Item.objects.values_list("name", flat=True)) == ["kept"]


@pytest.mark.django_db(transaction=True)
def test_atomic_requests(monkeypatch):
    monkeypatch.setitem(connections["default"].settings_dict, "ATOMIC_REQUESTS", True)
    client = Client(raise_request_exception=False)
    assert client.get("/items/").status_code == 200
    close_old_connections()
    assert Item.objects.filter(name="from-view").count() == 1


def lock_in_another_thread(pk: int) -> str:
    """Try to lock the item in a thread of its own, without waiting: "locked" or "busy"."""
    outcome = []

    def try_lock():
        try:
            with transaction.atomic():
                Item.objects.select_for_update(nowait=True).get(pk=pk)
            outcome.append("locked")
        except DatabaseError:
            outcome.append("busy")
        finally:
            connections["default"].close()

    thread = threading.Thread(target=try_lock)
    thread.start()
    thread.join()
    return outcome[0]


@pytest.mark.django_db(transaction=True)
def test_select_for_update_holds_the_row_lock_on_the_pooled_connection():
    item = Item.objects.create(name="locked")
    with transaction.atomic():
        Item.objects.select_for_update().get(pk=item.pk)
        assert lock_in_another_thread(item.pk) == "busy"


@pytest.mark.django_db(transaction=True)
def test_server_side_cursor_iterator():
    Item.objects.bulk_create(Item(name=f"i{n}", quantity=n) for n in range(25))
    quantities = [item.quantity for item in Item.objects.order_by("quantity").iterator(5)]
    connections["default"].close()
    assert quantities == list(range(25))
    assert Item.objects.count() == 25


@pytest.mark.django_db(transaction=True)
def test_clone_test_db_closes_the_pool_first():
    # CREATE DATABASE ... TEMPLATE fails while anyone is connected to the template; Django
    # then exits. Idle pooled connections to it must be closed first.
    wrapper = connections["default"]
    wrapper.ensure_connection()
    wrapper.close()
    assert wrapper.pool.stats()["pool_available"] >= 1
    clone = wrapper.creation.get_test_db_clone_settings("clone")["NAME"]
    wrapper.creation.clone_test_db(suffix="clone", verbosity=0)
    try:
        with wrapper.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_database WHERE datname = %s", [clone])
            assert cursor.fetchone()[0] == 1
        wrapper.close()
    finally:
        wrapper.creation.destroy_test_db(verbosity=0, suffix="clone")


def test_the_wrapper_keeps_its_pool_until_the_pool_is_closed(pooled):
    wrapper = pooled(min_size=0, max_size=1)
    first = wrapper.pool
    assert wrapper.pool is first and first.serves_here()
    wrapper.close_pool()
    assert not first.serves_here()
    second = wrapper.pool  # a new one, from the registry
    assert second is not first and second.serves_here()
    with wrapper.cursor() as cursor:
        cursor.execute("SELECT 1")
    assert second.in_use() == 1
    wrapper.close()


def test_close_pool_is_safe_twice(pooled):
    wrapper = pooled(min_size=0, max_size=1)
    backend_pid(wrapper)
    wrapper.close()
    wrapper.close_pool()
    wrapper.close_pool()
    assert wrapper.alias not in registry.pools()


def test_bad_options_are_improperly_configured_at_connect(pooled):
    wrapper = pooled(max_size=0)
    with pytest.raises(ImproperlyConfigured, match="max_size"):
        wrapper.ensure_connection()


def test_pooling_can_be_turned_off(pooled):
    wrapper = pooled()
    wrapper.settings_dict["OPTIONS"]["pool"] = False
    assert wrapper.pool is None
    assert backend_pid(wrapper) > 0
    wrapper.close()
    assert wrapper.alias not in registry.pools()


# Moving from Django's native pool: what its users' code and Django's own tests expect


def native_pool_errors() -> dict[str, type] | None:
    """Return psycopg_pool's errors by name, or None where it cannot be imported (psycopg2)."""
    try:
        import psycopg_pool
    except ImportError:
        return None
    return {name: getattr(psycopg_pool, name) for name in ("PoolTimeout", "TooManyRequests")}


def test_code_written_for_the_native_pool_catches_a_pool_timeout(pooled):
    # As Django's backends.postgresql.tests.Tests.test_connect_pool does it.
    pool_wrapper = pooled(min_size=0, max_size=2, timeout=0.3)
    held = []

    def get_connection():
        conn = pool_wrapper.copy()  # the same alias, so the same pool
        conn.connect()
        held.append(conn)
        return conn

    native = native_pool_errors()
    expected = PoolTimeout if native is None else native["PoolTimeout"]
    try:
        first = get_connection()
        first_pid = backend_pid(first)
        get_connection()
        with pytest.raises(expected):
            get_connection()
        first.close()
        assert backend_pid(get_connection()) == first_pid
    finally:
        for conn in held:
            conn.close()


def test_our_errors_are_the_native_pool_s_errors_where_it_exists():
    native = native_pool_errors()
    if native is None:  # psycopg2: no psycopg_pool to be compatible with
        assert PoolTimeout.__mro__[1:3] == (PoolError, psycopg2.OperationalError)
        return
    assert issubclass(PoolTimeout, native["PoolTimeout"])
    assert issubclass(TooManyRequests, native["TooManyRequests"])
    assert issubclass(PoolTimeout, PoolError)


def test_conn_max_age_is_refused_in_django_s_words_then_ours(pooled):
    wrapper = pooled(min_size=0)
    wrapper.settings_dict["CONN_MAX_AGE"] = 10
    with pytest.raises(ImproperlyConfigured) as info:
        wrapper.ensure_connection()
    message = str(info.value)
    assert message.startswith("Pooling doesn't support persistent connections.")
    assert "set CONN_MAX_AGE to 0" in message
