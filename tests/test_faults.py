"""Faults provoked against a real PostgreSQL: restarts, forks, dead threads, leaked state."""

from __future__ import annotations

import gc
import json
import logging
import os
import subprocess
import sys
import threading
import time

import pytest
from django.db import OperationalError, connections

from demo_project import devdb
from django_pool import registry
from django_pool.errors import ServerUnavailable
from tests.conftest import require_embedded_server
from tests.test_backend import backend_pid, get_json, wait_until

ROOT = devdb.ROOT


def close_all_pools() -> None:
    for wrapper in connections.all(initialized_only=True):
        wrapper.close()
    for alias in list(registry.pools()):
        registry.close_pool(alias)


@pytest.mark.timing
def test_server_restart_under_load(pooled, capsys):
    require_embedded_server("stops and starts the server")
    wrapper = pooled(min_size=2, max_size=4, timeout=5.0)
    outcomes: list[tuple[float, float, bool]] = []  # (start, end, ok)
    stop = threading.Event()

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

    threads = [threading.Thread(target=client) for _ in range(16)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(0.5)
        down_at = time.monotonic()
        devdb.stop_embedded()
        time.sleep(1.5)
        devdb.start_embedded()
        up_at = time.monotonic()
        time.sleep(8.0)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
        close_all_pools()

    before = [ok for start, _, ok in outcomes if start < down_at]
    while_down = [ok for start, _, ok in outcomes if down_at <= start < up_at]
    first_ok = min(end for start, end, ok in outcomes if ok and start >= up_at)
    recovery = first_ok - up_at
    after = [ok for start, _, ok in outcomes if start >= first_ok]
    slowest_failure = max((end - start for start, end, ok in outcomes if not ok), default=0.0)

    assert all(before), "requests failed before the restart"
    assert while_down.count(False) > 0, "the server was down: some requests should fail"
    assert recovery < 6.0, f"recovery took {recovery:.2f} s"
    assert after and all(after), f"{after.count(False)} requests failed after recovery"
    # Failing fast: nobody waited out the 5 s timeout while the server was unreachable.
    assert slowest_failure < 2.5
    with capsys.disabled():
        print(
            f"\n[restart] {len(while_down)} requests while down, "
            f"{while_down.count(False)} failed; slowest failure {slowest_failure * 1000:.0f} ms; "
            f"recovered {recovery * 1000:.0f} ms after the server was back; "
            f"{len(after)} requests after recovery, all succeeded"
        )


@pytest.mark.django_db(transaction=True)
def test_fork_child_neither_uses_nor_closes_the_parents_connections(server):
    holder = connections["default"]  # the forking thread's own wrapper, as in gunicorn
    idler = holder.copy()
    held_pid = backend_pid(holder)  # stays borrowed across the fork
    idle_pid = backend_pid(idler)
    idler.close()  # now idle in the pool
    read_end, write_end = os.pipe()

    pid = os.fork()
    if pid == 0:  # the child
        report = {}
        try:
            os.close(read_end)
            report["pids"] = [backend_pid(holder), backend_pid(holder.copy())]
            # What a child exiting or collecting garbage does to what it inherited.
            connections.close_all()
            gc.collect()
            report["threads"] = sum(t.name.startswith("django_pool") for t in threading.enumerate())
        except BaseException as error:  # noqa: BLE001 - reported to the parent
            report["error"] = repr(error)
        os.write(write_end, json.dumps(report).encode())
        os._exit(0)

    os.close(write_end)
    _, status = os.waitpid(pid, 0)
    with os.fdopen(read_end) as pipe:
        report = json.loads(pipe.read() or "{}")
    assert status == 0 and "error" not in report, report
    assert not {held_pid, idle_pid} & set(report["pids"]), "the child used its own connections"
    assert report["threads"] == 1, "the child restarted the maintenance thread"

    assert backend_pid(holder) == held_pid  # the borrowed one still works
    assert backend_pid(idler) == idle_pid  # and so does the idle one
    idler.close()
    holder.close()
    alive = server.query(
        "SELECT count(*) FROM pg_stat_activity WHERE pid IN (%s, %s)", [held_pid, idle_pid]
    )
    assert alive == [(2,)]


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
def test_connection_held_past_leak_timeout_warns_once_with_the_stack(pooled, caplog):
    wrapper = pooled(min_size=0, max_size=1, leak_timeout=0.2)
    caplog.set_level(logging.WARNING, logger="django_pool")
    backend_pid(wrapper)
    time.sleep(1.0)
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


def test_one_maintenance_thread_for_all_pools(pooled):
    for _ in range(3):
        wrapper = pooled(min_size=1, max_size=2)
        backend_pid(wrapper)
        wrapper.close()
    names = [t.name for t in threading.enumerate() if t.name.startswith("django_pool")]
    assert len(names) == 1, names


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
    env = {**os.environ, "DATABASE_URL": database_url}
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--database", "default"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def socket_url(user: str, name: str, password: str = "") -> str:
    settings = connections["default"].settings_dict
    host = settings["HOST"].replace("/", "%2F")
    auth = f"{user}:{password}" if password else user
    return f"postgres://{auth}@{host}:{settings['PORT']}/{name}"


@pytest.mark.django_db(transaction=True)
def test_manage_py_check_reports_a_missing_database():
    require_embedded_server("connects through the embedded server's socket")
    result = manage_py_check(socket_url("postgres", "django_pool_no_such_database"))
    assert result.returncode != 0
    assert "django_pool.E006" in result.stderr and "does not exist" in result.stderr


def test_manage_py_check_reports_an_unreachable_server():
    result = manage_py_check("postgres://postgres@127.0.0.1:1/anything")
    assert result.returncode != 0
    assert "django_pool.E006" in result.stderr and "127.0.0.1" in result.stderr


@pytest.mark.django_db(transaction=True)
def test_wrong_password_is_the_servers_error(password_role):
    user, password = password_role
    name = connections["default"].settings_dict["NAME"]
    wrong = "Xq7-not-the-password"
    result = manage_py_check(socket_url(user, name, wrong))
    assert result.returncode != 0
    assert "django_pool.E006" in result.stderr
    assert "password authentication failed" in result.stderr
    assert wrong not in result.stdout + result.stderr, "passwords never appear"
    right = manage_py_check(socket_url(user, name, password))
    assert right.returncode == 0, right.stderr


def test_interpreter_exits_promptly_with_a_busy_pool():
    code = (
        "import django, os, threading;"
        "os.environ['DJANGO_SETTINGS_MODULE'] = 'tests.settings';"
        "django.setup();"
        "from django.db import connection;"
        "connection.ensure_connection();"
        "print(connection.pool.stats()['pool_size'])"
    )
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - started < 10.0
