"""The server's view of who is connected, against a real PostgreSQL and a second process."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from django.db import connections

from demo_project import devdb
from django_pool.backends.postgresql.base import application_name
from django_pool.server import group_backends, parse_application_name, server_view
from tests.test_backend import backend_pid, wait_until

# A second process on the test database: it sets itself up as the test run did (same
# settings module, same driver), holds or publishes pooled connections as asked, prints one
# JSON line, and waits for its stdin to close.
CHILD_SCRIPT = r"""
import json, os, sys

if os.environ.get("DJANGO_POOL_DRIVER") == "psycopg2":
    sys.modules["psycopg"] = None  # the driver of the parent's run
request = json.loads(os.environ["DJANGO_POOL_CHILD"])

from django.conf import settings

settings.DATABASES["default"]["NAME"] = request["database"]
for name, value in request["settings"].items():
    setattr(settings, name, value)

import django

django.setup()

from django.db import connections


def backend_pid(wrapper):
    with wrapper.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


first = connections["default"]
report = {"pid": os.getpid(), "driver": first.Database.__name__}
if request["hold"]:
    in_transaction, idle, returned = first, first.copy(), first.copy()
    in_transaction.set_autocommit(False)
    report["in_transaction"] = backend_pid(in_transaction)  # and stays in it
    report["idle"] = backend_pid(idle)
    report["returned"] = backend_pid(returned)
    returned.close()
    report["pool_size"] = first.pool.stats()["pool_size"]
if request["publish"]:
    backend_pid(first)
    first.close()
    from django_pool.publish import publish

    publish()
print(json.dumps(report), flush=True)
if request["wait"]:
    sys.stdin.readline()
"""


@contextmanager
def child_process(
    server, *, hold: bool = False, publish: bool = False, wait: bool = True, settings=None
) -> Iterator[dict]:
    """Run CHILD_SCRIPT; yield its report; end it and wait until its connections are gone."""
    request = {
        "database": connections["default"].settings_dict["NAME"],
        "hold": hold,
        "publish": publish,
        "wait": wait,
        "settings": settings or {},
    }
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DJANGO_POOL_CHILD": json.dumps(request),
    }
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD_SCRIPT],
        cwd=devdb.ROOT,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        ready, _, _ = select.select([child.stdout], [], [], 60.0)
        line = child.stdout.readline() if ready else ""
        if not line:
            child.kill()
            pytest.fail(f"the child process did not report: {child.communicate()[1]}")
        yield json.loads(line)
    finally:
        _end(child, server)


def _end(child: subprocess.Popen, server) -> None:
    try:
        child.communicate(timeout=30)  # closes its stdin: it exits
    except subprocess.TimeoutExpired:
        child.kill()
        child.communicate()
    # Its backends end a moment after it does; later tests count connections.
    pattern = f"django_pool:%:{child.pid}@%"
    sql = "SELECT pid FROM pg_stat_activity WHERE application_name LIKE %s"
    deadline = time.monotonic() + 5.0
    while server.query(sql, [pattern]) and time.monotonic() < deadline:
        time.sleep(0.02)
    server.query(f"SELECT pg_terminate_backend(pid) FROM ({sql}) AS left_over", [pattern])


def by_pid(view: dict, pid: int) -> dict[str, dict]:
    """Return this process's entries of the view by alias."""
    return {entry["alias"]: entry for entry in view["processes"] if entry["pid"] == pid}


def test_two_processes_their_counts_and_states(pooled, server):
    wrapper = pooled(min_size=0, max_size=3)
    held = wrapper
    spare = wrapper.copy()
    held_pid, spare_pid = backend_pid(held), backend_pid(spare)
    spare.close()  # idle in the pool; held stays borrowed, idle on the server
    try:
        with child_process(server, hold=True) as child:
            time.sleep(0.3)  # the child's transaction has been idle this long at least
            view = server_view()
    finally:
        held.close()

    mine = by_pid(view, os.getpid())
    pool_entry = mine[wrapper.alias]
    assert pool_entry["connections"] == wrapper.pool.stats()["pool_size"] == 2
    assert pool_entry["states"] == {"idle": 2}
    assert pool_entry["longest"] is None  # idle is what pooled connections do
    assert {b["pid"] for b in pool_entry["backends"]} == {held_pid, spare_pid}
    assert pool_entry["application_name"] == application_name(wrapper.alias)
    # server_view's own query is running on this process's default pool.
    assert mine["default"]["states"].get("active") == 1

    assert child["driver"] == connections["default"].Database.__name__
    theirs = by_pid(view, child["pid"])
    assert set(theirs) == {"default"}
    entry = theirs["default"]
    assert entry["connections"] == child["pool_size"] == 3
    assert entry["states"] == {"idle": 2, "idle in transaction": 1}
    backends = {b["pid"]: b for b in entry["backends"]}
    assert set(backends) == {child["in_transaction"], child["idle"], child["returned"]}
    stuck = backends[child["in_transaction"]]
    assert stuck["state"] == "idle in transaction"
    assert 0.3 <= stuck["seconds_in_state"] < 60
    assert stuck["xact_seconds"] >= stuck["seconds_in_state"]
    assert backends[child["idle"]]["xact_seconds"] is None
    assert entry["longest"] == {
        "state": "idle in transaction",
        "seconds": stuck["seconds_in_state"],
    }
    assert stuck["database"] == connections["default"].settings_dict["NAME"]
    assert stuck["user"] == server.query("SELECT current_user")[0][0]

    host = entry["host"]
    assert host == mine["default"]["host"]  # one machine: the same host name
    assert view["by_host"][host] >= 3 + 2 + 1
    assert view["connections"] == sum(e["connections"] for e in view["processes"])
    assert view["connections"] == sum(view["by_host"].values())


def test_settings_and_other_clients(server):
    view = server_view("default")
    expected = server.query(
        "SELECT current_setting('max_connections')::int,"
        " current_setting('superuser_reserved_connections')::int"
    )[0]
    assert view["max_connections"] == expected[0]
    assert view["reserved"] >= expected[1]
    # The fixture's own connection is not ours: grouped by address and application name.
    others = [e for e in view["processes"] if e["alias"] is None and e["pid"] is None]
    assert any(e["connections"] >= 1 for e in others)
    assert all(e["host"] == (e["client_addr"] or "local") for e in others)
    json.dumps(view)  # JSON-ready
    assert "query" not in json.dumps(view)


@pytest.mark.django_db(transaction=True)
def test_leaves_a_connection_it_did_not_open_open():
    connection = connections["default"]
    pid = backend_pid(connection)
    server_view("default")
    assert connection.connection is not None
    assert backend_pid(connection) == pid
    connection.close()


@pytest.mark.django_db(transaction=True)
def test_gives_back_the_connection_it_opened():
    connection = connections["default"]
    connection.close()
    server_view("default")
    assert connection.connection is None
    wait_until(lambda: connection.pool.in_use() == 0)


def test_parses_our_names_even_cut_at_63_bytes():
    assert parse_application_name("django_pool:default:123@web-1") == {
        "alias": "default",
        "pid": 123,
        "host": "web-1",
    }
    # An alias with a colon, and a host name cut short: still the right pid.
    assert parse_application_name("django_pool:a:b:42@very-long-host")["pid"] == 42
    assert parse_application_name("django_pool:a:b:42@very-long-host")["alias"] == "a:b"
    # Cut before the "@": the digits may be only part of the pid, so none is reported.
    assert parse_application_name("django_pool:default:12") == {
        "alias": "default",
        "pid": None,
        "host": None,
    }
    assert parse_application_name("psql") is None
    assert parse_application_name("") is None


def test_groups_ours_by_process_and_others_by_address_and_name():
    rows = [
        (1, "db", "u", "django_pool:default:7@web", None, "active", 2.0, 2.5),
        (2, "db", "u", "django_pool:default:7@web", None, "idle", 9.0, None),
        (3, "db", "u", "django_pool:default:8@web", None, "idle", 1.0, None),
        (4, "db", "u", "psql", "10.0.0.5", "idle in transaction", 3.0, 4.0),
        (5, "db", "u", "psql", None, None, 0.0, None),
        (6, "db", "u", "django_pool:a-very-long-alias:9", "10.0.0.6", "idle", 1.0, None),
    ]
    groups = group_backends(rows)
    keys = [(g["host"], g["pid"], g["alias"], g["application_name"]) for g in groups]
    assert keys == [
        ("10.0.0.5", None, None, "psql"),
        ("10.0.0.6", None, "a-very-long-alias", "django_pool:a-very-long-alias:9"),
        ("local", None, None, "psql"),
        ("web", 7, "default", "django_pool:default:7@web"),
        ("web", 8, "default", "django_pool:default:8@web"),
    ]
    web7 = groups[3]
    assert web7["connections"] == 2
    assert web7["states"] == {"active": 1, "idle": 1}
    assert web7["longest"] == {"state": "active", "seconds": 2.0}
    assert [b["pid"] for b in web7["backends"]] == [2, 1]  # longest in its state first
    assert groups[0]["longest"] == {"state": "idle in transaction", "seconds": 3.0}
    assert groups[2]["states"] == {"unknown": 1}  # another user's row, without privilege
