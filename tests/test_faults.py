"""Faults provoked against a real PostgreSQL: restarts, forks, dead threads, leaked state."""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import os
import subprocess
import sys
import threading
import time

import pytest
from django.contrib.auth.models import User
from django.core.cache import caches
from django.core.management import call_command
from django.db import OperationalError, connections

from demo_project import devdb
from django_pool import background, publish, registry, signals
from django_pool.backends.postgresql.base import DEFAULT_CONNECT_TIMEOUT, PhysicalConnector
from django_pool.drivers import driver_for
from django_pool.errors import PoolTimeout, ServerUnavailable
from django_pool.options import PoolConfig
from django_pool.pool import ConnectionPool
from tests.conftest import manage_py, require_embedded_server, socket_url
from tests.test_backend import backend_pid, get_json, wait_until

ROOT = devdb.ROOT


def close_all_pools() -> None:
    for wrapper in connections.all(initialized_only=True):
        wrapper.close()
    for alias in list(registry.pools()):
        registry.close_pool(alias)


def run_clients(wrapper, count: int, outcomes: list, stop: threading.Event) -> list:
    """Start ``count`` threads running ``SELECT 1`` in a loop, each on its own wrapper."""

    def client():
        mine = wrapper.copy()
        while not stop.is_set():
            started = time.monotonic()
            try:
                with mine.cursor() as cursor:
                    cursor.execute("SELECT 1")
                ok = True
            except OperationalError:
                ok = False
            mine.close_if_unusable_or_obsolete()
            mine.close()
            outcomes.append((started, time.monotonic(), ok))
            time.sleep(0.005)

    threads = [threading.Thread(target=client) for _ in range(count)]
    for thread in threads:
        thread.start()
    return threads


@pytest.mark.timing
def test_server_restart_under_load(pooled, capsys):
    require_embedded_server("stops and starts the server")
    wrapper = pooled(min_size=2, max_size=4, timeout=5.0)
    outcomes: list[tuple[float, float, bool]] = []  # (start, end, ok)
    stop = threading.Event()
    threads = run_clients(wrapper, 8, outcomes, stop)
    try:
        time.sleep(0.5)
        down_at = time.monotonic()
        devdb.stop_embedded()
        stopped_at = time.monotonic()
        time.sleep(2.0)
        devdb.start_embedded()
        up_at = time.monotonic()  # the server accepts connections from here on
        time.sleep(3.0)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
        close_all_pools()

    # Requests under way when the server stopped may fail; none that ended before.
    before = [ok for start, end, ok in outcomes if end < down_at]
    # Once the server is gone and nothing is open, failures come fast.
    while_down = [end - start for start, end, ok in outcomes if stopped_at + 0.2 < start < up_at]
    first_ok = min(end for start, end, ok in outcomes if ok and start >= up_at)
    recovery = first_ok - up_at
    late_failures = [start - up_at for start, _, ok in outcomes if not ok and start >= up_at + 0.2]
    after = [ok for start, _, ok in outcomes if start >= up_at + 0.2]
    with capsys.disabled():
        print(
            f"\n[restart] first success {recovery * 1000:.0f} ms after the server was back; "
            f"{len(late_failures)} of {len(after)} requests started 200 ms after it failed; "
            f"while down: {len(while_down)} requests, slowest "
            f"{max(while_down, default=0) * 1000:.0f} ms"
        )
    assert before and all(before), "requests failed before the restart"
    assert while_down, "requests ran while the server was down"
    # Targets (300 ms, none failing, under 100 ms) with room for a loaded 2-core machine.
    assert recovery < 1.5, f"recovery took {recovery:.2f} s"
    assert late_failures == [], f"{len(late_failures)} requests failed after recovery"
    assert max(while_down) < 1.0


@pytest.mark.django_db(transaction=True)
def test_fork_child_neither_uses_nor_closes_the_parents_connections(server):
    holder = connections["default"]  # the forking thread's own wrapper, as in gunicorn
    idler = holder.copy()
    held_pid = backend_pid(holder)  # stays borrowed across the fork
    parker = holder.copy()
    idle_pid, parked_pid = backend_pid(idler), backend_pid(parker)
    idler.close()  # now idle in the pool
    parker.close_if_unusable_or_obsolete()  # a request's end: parked for its next request
    read_end, write_end = os.pipe()

    pid = os.fork()
    if pid == 0:  # the child
        report = {}
        try:
            os.close(read_end)
            report["pids"] = [backend_pid(holder), backend_pid(holder.copy())]
            report["pids"].append(backend_pid(parker))
            # What a child exiting or collecting garbage does to what it inherited.
            connections.close_all()
            gc.collect()
            report["threads"] = sorted(
                t.name for t in threading.enumerate() if t.name.startswith("django_pool")
            )
        except BaseException as error:  # noqa: BLE001 - reported to the parent
            report["error"] = repr(error)
        os.write(write_end, json.dumps(report).encode())
        os._exit(0)

    os.close(write_end)
    _, status = os.waitpid(pid, 0)
    with os.fdopen(read_end) as pipe:
        report = json.loads(pipe.read() or "{}")
    assert status == 0 and "error" not in report, report
    inherited = {held_pid, idle_pid, parked_pid}
    assert not inherited & set(report["pids"]), "the child used the parent's connections"
    # Threads of its own: its pool's worker, and the events thread its signals started.
    assert report["threads"] == ["django_pool events", "django_pool worker default"]

    assert backend_pid(holder) == held_pid  # the borrowed one still works
    assert backend_pid(parker) == parked_pid  # the parked one, taken back
    assert backend_pid(idler) == idle_pid  # and the idle one
    for wrapper in (parker, idler, holder):
        wrapper.close()
    alive = server.query(
        "SELECT count(*) FROM pg_stat_activity WHERE pid IN %s", [(held_pid, idle_pid, parked_pid)]
    )
    assert alive == [(3,)]


def test_thread_ending_with_a_connection_gives_its_slot_back(pooled, server):
    wrapper = pooled(min_size=0, max_size=1, timeout=5.0)
    leaked = []

    def forgetful():
        mine = wrapper.copy()
        leaked.append(backend_pid(mine))  # and never closes it

    thread = threading.Thread(target=forgetful)
    thread.start()
    thread.join()
    started = time.monotonic()
    reused = backend_pid(wrapper)
    waited = time.monotonic() - started
    wrapper.close()

    assert waited < 2.0, f"waited {waited:.2f} s for the slot of a dead thread"
    assert reused != leaked[0]
    assert wrapper.pool.stats()["connections_reclaimed"] == 1
    gone = server.query("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", [leaked[0]])
    assert gone == [(0,)], "the reclaimed connection is closed on the server"


@pytest.mark.timing
def test_connection_held_past_leak_timeout_warns_once_with_the_stack(pooled, rounds, caplog):
    wrapper = pooled(min_size=0, max_size=1, leak_timeout=0.2)
    caplog.set_level(logging.WARNING, logger="django_pool")
    backend_pid(wrapper)
    wait_until(lambda: wrapper.pool.stats()["connections_leaked"] == 1)
    seen = rounds[wrapper.alias]
    wait_until(lambda: rounds[wrapper.alias] >= seen + 3)  # more rounds that saw it
    wrapper.close()
    leaks = [r for r in caplog.records if "leak" in r.getMessage().lower()]
    assert len(leaks) == 1
    assert (
        "test_connection_held_past_leak_timeout_warns_once_with_the_stack" in leaks[0].getMessage()
    )
    assert wrapper.pool.stats()["connections_leaked"] == 1


@pytest.mark.django_db(transaction=True)
def test_time_zone_set_by_a_request_does_not_reach_the_next(live_server):
    pool = connections["default"].pool
    changed = get_json(f"{live_server.url}/set-time-zone/")
    wait_until(lambda: pool.stats()["pool_in_use"] == 0)
    seen = get_json(f"{live_server.url}/time-zone/")
    assert seen["pid"] == changed["pid"], "the next request should reuse the same connection"
    assert seen["zone"] == "UTC"
    assert pool.stats()["sessions_restored"] >= 1


@pytest.mark.parametrize(
    ("statement", "show", "expected"),
    [
        ("SET DateStyle TO 'German'", "SHOW DateStyle", "ISO, MDY"),
        ("SET IntervalStyle TO 'sql_standard'", "SHOW IntervalStyle", "postgres"),
        ("SET application_name TO 'someone else'", "SHOW application_name", None),
        ("SET default_transaction_read_only TO on", "SHOW default_transaction_read_only", "off"),
        ("SET search_path TO pg_catalog", "SHOW search_path", '"$user", public'),
    ],
)
def test_reported_settings_are_restored_on_return(pooled, statement, show, expected):
    wrapper = pooled(min_size=0, max_size=1)
    if "search_path" in show and wrapper.pg_version < 180000:
        # Documented: only PostgreSQL 18+ reports search_path (CI runs 18: never skipped there).
        pytest.skip(f"server {wrapper.pg_version} does not report search_path")
    with wrapper.cursor() as cursor:
        cursor.execute(show)
        before = cursor.fetchone()[0]
        cursor.execute(statement)
    wrapper.close()
    with wrapper.cursor() as cursor:
        cursor.execute(show)
        after = cursor.fetchone()[0]
    wrapper.close()
    assert before == after
    assert after == expected or expected is None and after.startswith("django_pool:")
    stats = wrapper.pool.stats()
    assert (stats["connections_num"], stats["sessions_restored"]) == (1, 1)


def test_changed_client_encoding_discards_the_connection(pooled):
    wrapper = pooled(min_size=0, max_size=1)
    first = backend_pid(wrapper)
    with wrapper.cursor() as cursor:
        cursor.execute("SET client_encoding TO 'LATIN1'")
    wrapper.close()
    assert backend_pid(wrapper) != first
    wrapper.close()
    assert wrapper.pool.stats()["returns_bad"] == 1


@pytest.mark.parametrize(("reset", "expected"), [("rollback", "5s"), ("discard", "0")])
def test_unreported_settings_reset_only_with_discard(pooled, reset, expected):
    wrapper = pooled(min_size=0, max_size=1, reset=reset)
    with wrapper.cursor() as cursor:
        cursor.execute("SET statement_timeout TO '5s'")
    wrapper.close()
    with wrapper.cursor() as cursor:
        cursor.execute("SHOW statement_timeout")
        assert cursor.fetchone()[0] == expected
    wrapper.close()


def test_discard_keeps_the_configured_role_and_time_zone(pooled, server):
    require_embedded_server("creates a role")
    if not server.query("SELECT 1 FROM pg_roles WHERE rolname = 'django_pool_app'"):
        server.execute("CREATE ROLE django_pool_app NOLOGIN")
    wrapper = pooled(options={"assume_role": "django_pool_app"}, min_size=0, reset="discard")
    wrapper.settings_dict["TIME_ZONE"] = "America/Chicago"
    seen = []
    for _ in range(2):
        with wrapper.cursor() as cursor:
            cursor.execute("SELECT current_user, current_setting('TimeZone')")
            seen.append(cursor.fetchone())
        wrapper.close()
    assert seen == [("django_pool_app", "America/Chicago")] * 2


def test_unchanged_session_costs_no_restore(pooled):
    wrapper = pooled(min_size=0, max_size=1)
    for _ in range(5):
        backend_pid(wrapper)
        wrapper.close()
    assert wrapper.pool.stats()["sessions_restored"] == 0


def test_min_size_opens_in_the_background_after_first_use(pooled, server):
    wrapper = pooled(min_size=3, max_size=4)
    assert server.connections(wrapper.alias) == 0
    backend_pid(wrapper)
    wrapper.close()
    wait_until(lambda: server.connections(wrapper.alias) == 3)
    assert wrapper.pool.stats()["pool_size"] == 3


def test_each_pool_has_a_worker_of_its_own(pooled):
    wrappers = [pooled(min_size=1, max_size=2) for _ in range(3)]
    for wrapper in wrappers:
        backend_pid(wrapper)
        wrapper.close()
    names = {t.name for t in threading.enumerate() if t.name.startswith("django_pool worker")}
    assert {f"django_pool worker {wrapper.alias}" for wrapper in wrappers} <= names


def test_missing_database_reaches_the_first_borrower_as_the_servers_error(pooled):
    wrapper = pooled(min_size=0, max_size=2, timeout=10.0)
    wrapper.settings_dict["NAME"] = "django_pool_no_such_database"
    started = time.monotonic()
    with pytest.raises(OperationalError, match="does not exist"):
        wrapper.ensure_connection()
    assert time.monotonic() - started < 5.0


def test_refused_connection_fails_fast_then_names_the_server(pooled):
    wrapper = pooled(min_size=0, max_size=2, timeout=10.0)
    wrapper.settings_dict.update(HOST="127.0.0.1", PORT="1")
    with pytest.raises(OperationalError) as first:
        wrapper.ensure_connection()
    assert not isinstance(first.value.__cause__, ServerUnavailable), "the server's own error"
    started = time.monotonic()
    with pytest.raises(OperationalError) as second:
        wrapper.copy().ensure_connection()
    assert time.monotonic() - started < 1.0
    message = str(second.value)
    assert wrapper.alias in message and "host=127.0.0.1 port=1" in message


def manage_py_check(database_url: str) -> subprocess.CompletedProcess:
    return manage_py("check", "--database", "default", database_url=database_url)


@pytest.mark.django_db(transaction=True)
def test_manage_py_check_reports_a_missing_database():
    require_embedded_server("connects through the embedded server's socket")
    result = manage_py_check(socket_url("postgres", name="django_pool_no_such_database"))
    assert result.returncode != 0
    assert "django_pool.E006" in result.stderr and "does not exist" in result.stderr


def test_manage_py_check_reports_an_unreachable_server():
    result = manage_py_check("postgres://postgres@127.0.0.1:1/anything")
    assert result.returncode != 0
    assert "django_pool.E006" in result.stderr and "127.0.0.1" in result.stderr


@pytest.mark.django_db(transaction=True)
def test_wrong_password_is_the_servers_error(password_role):
    user, password = password_role
    wrong = "Xq7-not-the-password"
    result = manage_py_check(socket_url(user, wrong))
    assert result.returncode != 0
    assert "django_pool.E006" in result.stderr
    assert "password authentication failed" in result.stderr
    assert wrong not in result.stdout + result.stderr, "passwords never appear"
    right = manage_py_check(socket_url(user, password))
    assert right.returncode == 0, right.stderr


@pytest.mark.django_db(transaction=True)
def test_interpreter_exits_promptly_with_a_busy_pool():
    code = (
        "import django, os, threading;"
        "os.environ['DJANGO_SETTINGS_MODULE'] = 'tests.settings';"
        "django.setup();"
        "from django.db import connection;"
        "connection.settings_dict['NAME'] = os.environ['TEST_DATABASE'];"
        "connection.ensure_connection();"
        "print(connection.pool.stats()['pool_size'])"
    )
    # The test database: it exists under DATABASE_URL too, unlike the settings' own NAME.
    env = {**os.environ, "TEST_DATABASE": connections["default"].settings_dict["NAME"]}
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - started < 10.0


# Connects that fail or never answer, and connections in unusual hands


@pytest.fixture
def limited_role(server):
    """A role that may hold at most 2 server connections at once."""
    role = "django_pool_limited"
    if not server.query("SELECT 1 FROM pg_roles WHERE rolname = %s", [role]):
        server.execute(f'CREATE ROLE "{role}" LOGIN CONNECTION LIMIT 2')
    server.execute(f'GRANT ALL ON DATABASE "{server.dbname}" TO "{role}"')
    return role


def test_a_refused_connect_waits_for_a_returned_connection(pooled, limited_role):
    wrapper = pooled(min_size=0, max_size=4, timeout=5.0)
    wrapper.settings_dict["USER"] = limited_role
    holders = [wrapper.copy() for _ in range(2)]
    for holder in holders:
        backend_pid(holder)  # the role's two connections, both borrowed
    results: list = []

    def borrow():
        mine = wrapper.copy()
        started = time.monotonic()
        try:
            results.append((backend_pid(mine), time.monotonic() - started))
        except OperationalError as error:
            results.append(error)
        finally:
            mine.close()

    third = threading.Thread(target=borrow)
    third.start()
    wait_until(lambda: wrapper.pool.stats()["connections_errors"] >= 1)
    time.sleep(0.05)
    fourth = threading.Thread(target=borrow)
    fourth.start()
    time.sleep(0.6)
    assert results == [], "a refused connect failed borrowers that a return could serve"
    for holder in holders:
        holder.close()
    third.join(5)
    fourth.join(5)
    assert len(results) == 2 and all(isinstance(result, tuple) for result in results), results
    assert all(waited >= 0.5 for _, waited in results)
    assert "too many connections" in wrapper.pool.stats()["last_connect_error"]


def test_a_server_that_never_answers_stalls_only_its_own_pool(pooled, blackhole):
    hung = pooled(min_size=0, max_size=2, timeout=0.5, options={"connect_timeout": 2})
    hung.settings_dict.update(HOST="127.0.0.1", PORT=str(blackhole))
    healthy = pooled(min_size=0, max_size=2, timeout=2.0)
    started = time.monotonic()
    with pytest.raises(OperationalError) as info:
        hung.ensure_connection()
    assert time.monotonic() - started < 1.5
    message = str(info.value)
    assert f"host=127.0.0.1 port={blackhole}" in message
    assert "waiting" in message and "for the server to answer" in message
    # The hung pool's worker is still in connect(): the other pool opens connections anyway.
    started = time.monotonic()
    backend_pid(healthy)
    assert time.monotonic() - started < 1.0
    healthy.close()
    # connect_timeout (from OPTIONS) ends the hung connect; the pool then says what happened.
    wait_until(lambda: hung.pool.stats()["connections_errors"] == 1, 5.0)
    assert "timeout" in hung.pool.stats()["last_connect_error"]


def test_connects_have_a_deadline_by_default(pooled):
    wrapper = pooled(min_size=0, max_size=1)
    connector = PhysicalConnector(wrapper.settings_dict, wrapper.alias)
    params = {}
    connector.wrapper.get_new_connection = lambda conn_params: params.update(conn_params)
    with contextlib.suppress(Exception):
        connector()
    assert params["connect_timeout"] == DEFAULT_CONNECT_TIMEOUT
    wrapper = pooled(min_size=0, max_size=1, options={"connect_timeout": 3})
    connector = PhysicalConnector(wrapper.settings_dict, wrapper.alias)
    params.clear()
    connector.wrapper.get_new_connection = lambda conn_params: params.update(conn_params)
    with contextlib.suppress(Exception):
        connector()
    assert params["connect_timeout"] == 3


def driver_connection_class(wrapper) -> type:
    if wrapper.Database.__name__ == "psycopg2":
        return wrapper.Database.extensions.connection
    return wrapper.Database.Connection


@pytest.mark.django_db(transaction=True)
def test_a_connection_being_opened_at_a_fork_is_detached_in_the_child(server):
    default = connections["default"]
    connector = PhysicalConnector(default.settings_dict, "forking")
    opened, release = threading.Event(), threading.Event()
    in_hand: list = []

    class SlowDriver(type(driver_for(default.Database))):
        def session_state(self, conn):
            if not opened.is_set():  # the first call: the worker is taking it into the pool
                in_hand.append(conn)
                opened.set()
                release.wait(10)
            return super().session_state(conn)

    config = PoolConfig(name="forking", min_size=1, max_size=1)
    pool = ConnectionPool(connector, config, SlowDriver(setup=connector.setup))
    try:
        with contextlib.suppress(PoolTimeout):
            pool.getconn(timeout=0.01)  # starts the worker, which connects for min_size
        assert opened.wait(10)
        (conn,) = in_hand
        fd = conn.fileno()
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child, while the parent's worker holds the new connection
            report = {}
            try:
                os.close(read_end)
                report["fd"] = os.readlink(f"/proc/self/fd/{fd}")
                # Whatever the child finalizes, however it found it, sends nothing to the server.
                cls = driver_connection_class(default)
                # (All but the test's own view of the server, which is no pool's.)
                # type(), not isinstance(): a lazy object's __class__ would set it up, and
                # one that GeoDjango leaves around (debug_toolbar imports it) needs GEOS.
                reachable = [obj for obj in gc.get_objects() if issubclass(type(obj), cls)]
                for found in [obj for obj in reachable if obj is not server.conn]:
                    with contextlib.suppress(Exception):
                        found.close()
            except BaseException as error:  # noqa: BLE001 - reported to the parent
                report["error"] = repr(error)
            os.write(write_end, json.dumps(report).encode())
            os._exit(0)
        os.close(write_end)
        os.waitpid(pid, 0)
        with os.fdopen(read_end) as pipe:
            report = json.loads(pipe.read() or "{}")
        assert report == {"fd": "/dev/null"}
        release.set()
        lent = pool.getconn(timeout=5)
        assert lent is conn
        with lent.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            backend = cursor.fetchone()[0]
        pool.putconn(lent)
        alive = server.query("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", [backend])
        assert alive == [(1,)]
    finally:
        release.set()
        pool.close()


@pytest.mark.django_db(transaction=True)
def test_a_connection_shared_with_another_thread_outlives_its_borrower(server):
    connections.close_all()  # this thread's, from set-up: the test borrows all max_size=4
    shared = {}

    def runner():  # Django's own ThreadTests.test_default_connection_thread_local
        wrapper = connections["default"]
        wrapper.inc_thread_sharing()
        shared[backend_pid(wrapper)] = wrapper

    for _ in range(2):
        thread = threading.Thread(target=runner)
        thread.start()
        thread.join()
    pool = connections["default"].pool
    holders = [connections["default"].copy() for _ in range(2)]
    for holder in holders:
        backend_pid(holder)  # now all 4 are borrowed
    with pytest.raises(PoolTimeout):
        pool.getconn(timeout=0.3)  # an exhausted pool reclaims orphans first: there are none
    for holder in holders:
        holder.close()
    assert pool.stats()["connections_reclaimed"] == 0
    for pid, wrapper in shared.items():
        assert backend_pid(wrapper) == pid  # still its own, from this thread
        wrapper.close()  # gives it back: no exception
        wrapper.dec_thread_sharing()
    assert pool.in_use() == 0
    assert server.query(
        "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(%s)", [list(shared)]
    ) == [(2,)]


@pytest.mark.django_db(transaction=True)
def test_signal_receivers_may_use_the_orm(pooled):
    wrapper = pooled(min_size=0, max_size=2, timeout=5.0)
    seen = []

    def count_users(sender, alias, **kwargs):
        # The ORM on a pool with nothing idle: the worker must be free to open a connection.
        if alias == wrapper.alias:
            seen.append((User.objects.count(), threading.current_thread().name))

    close_all_pools()
    signals.connection_created.connect(count_users)
    try:
        started = time.monotonic()
        backend_pid(wrapper)
        assert background.flush(5)
        assert time.monotonic() - started < 2.0
        assert seen == [(0, "django_pool events")]
        wrapper.close()
        assert connections["default"].pool.in_use() == 0, "the receiver gave its connection back"
    finally:
        signals.connection_created.disconnect(count_users)


@pytest.mark.django_db(transaction=True)
def test_publishing_to_a_database_cache_on_the_pooled_alias_does_not_stall(settings):
    settings.CACHES = {
        **settings.CACHES,
        "pools": {"BACKEND": "django.core.cache.backends.db.DatabaseCache", "LOCATION": "pc"},
    }
    settings.DJANGO_POOL = {"CACHE": "pools"}
    call_command("createcachetable", "pc")
    close_all_pools()  # the default pool starts empty: publishing needs a new connection
    started = time.monotonic()
    background.dispatch(publish._publish_in_background)
    assert background.flush(10)
    assert time.monotonic() - started < 2.0
    assert connections["default"].pool.in_use() == 0, "the events thread gave it back"
    entries = publish.process_snapshots()
    assert any(entry["pid"] == os.getpid() for entry in entries)
    assert caches["pools"].get(publish.INDEX_KEY)
