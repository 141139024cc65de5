"""Fixtures shared by the tests that talk to PostgreSQL."""

from __future__ import annotations

import itertools
import os
import socket
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg2
import pytest
from django.db import connections
from hypothesis import HealthCheck, settings

from demo_project import devdb
from django_pool import registry
from django_pool.backends.postgresql.base import DatabaseWrapper
from django_pool.pool import ConnectionPool

_aliases = itertools.count()

# The model-based tests (tests/test_pool_model.py): bounded and the same every run in
# make test; --hypothesis-profile=long explores anew, for as long as a developer waits.
settings.register_profile(
    "django_pool",
    max_examples=1000,
    stateful_step_count=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "long",
    max_examples=5000,
    stateful_step_count=80,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("django_pool")


def raw_connection(settings_dict: dict):
    """Open an unpooled psycopg2 connection to the database of ``settings_dict``."""
    conn = psycopg2.connect(**devdb.connect_params(settings_dict))
    conn.autocommit = True
    return conn


def manage_py(*args: str, database_url: str | None = None) -> subprocess.CompletedProcess:
    """Run ``manage.py`` with the test settings in a new process, as a person or a probe would."""
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"}
    if database_url is not None:
        env["DATABASE_URL"] = database_url
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=devdb.ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def socket_url(user: str, password: str = "", name: str | None = None) -> str:
    """Return a DATABASE_URL through the embedded server's socket (default: the test database)."""
    settings = connections["default"].settings_dict
    host = settings["HOST"].replace("/", "%2F")
    auth = f"{user}:{password}" if password else user
    return f"postgres://{auth}@{host}:{settings['PORT']}/{name or settings['NAME']}"


def require_embedded_server(why: str) -> None:
    """Skip outside CI when the tests run on a server we may not change; fail in CI."""
    if os.environ.get("DATABASE_URL"):
        reason = f"{why}: needs the embedded server, not DATABASE_URL"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)


class ServerView:
    """What the server sees, through a connection of its own (never pooled)."""

    def __init__(self, settings_dict: dict) -> None:
        self.dbname = settings_dict["NAME"]
        self.conn = raw_connection(settings_dict)

    def query(self, sql: str, params=()):
        with self.conn.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall()

    def execute(self, sql: str, params=()) -> None:
        with self.conn.cursor() as cursor:
            cursor.execute(sql, params)

    def connections(self, alias: str | None = None, pid: int | None = None) -> int:
        """Count client connections to the test database (only ``alias``'s pool's, if given).

        ``pid`` is the process whose pool to count (default: this one).
        """
        sql = (
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s "
            "AND pid <> pg_backend_pid() AND backend_type = 'client backend' "
            "AND application_name LIKE %s"
        )
        # Pooled connections are named django_pool:<alias>:<pid>@<host>.
        name = "%" if alias is None else f"django_pool:{alias}:{pid or os.getpid()}@%"
        return self.query(sql, [self.dbname, name])[0][0]

    def terminate(self, pid: int) -> None:
        self.query("SELECT pg_terminate_backend(%s)", [pid])

    def close(self) -> None:
        self.conn.close()


@pytest.fixture
def rounds(monkeypatch) -> Counter:
    """Count each pool's finished maintenance rounds, by pool name.

    A test that waits for the worker to have done something (or nothing) waits for rounds
    to have run, instead of sleeping and hoping they did.
    """
    counts: Counter = Counter()
    maintain = ConnectionPool._maintain

    def counting(pool: ConnectionPool) -> None:
        maintain(pool)
        counts[pool.name] += 1

    monkeypatch.setattr(ConnectionPool, "_maintain", counting)
    return counts


@pytest.fixture
def blackhole():
    """A local TCP port that accepts connections and never answers (a hung server)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)  # the kernel completes handshakes; nobody ever reads
    yield listener.getsockname()[1]
    listener.close()


@pytest.fixture
def server(transactional_db):
    view = ServerView(connections["default"].settings_dict)
    yield view
    view.close()


@pytest.fixture
def pooled(transactional_db):
    """Make wrappers of a fresh alias on the test database with the given pool options."""
    aliases = []

    def make(*, options: dict | None = None, **pool_options) -> DatabaseWrapper:
        alias = f"pooled_{next(_aliases)}"
        aliases.append(alias)
        base = connections["default"].settings_dict
        all_options = {**base["OPTIONS"], **(options or {}), "pool": pool_options or True}
        return DatabaseWrapper({**base, "OPTIONS": all_options}, alias)

    yield make
    for alias in aliases:
        registry.close_pool(alias)


@contextmanager
def default_pool(**pool_options) -> Iterator[DatabaseWrapper]:
    """Give the default alias a fresh pool with these options changed, then the usual one."""
    wrapper = connections["default"]
    wrapper.close()
    registry.close_pool("default")
    options = wrapper.settings_dict["OPTIONS"]
    saved = options["pool"]
    # Set back here, not by monkeypatch: its undo comes after pytest-django's flush, which
    # would make the next test's pool with these options.
    options["pool"] = {**saved, **pool_options}
    try:
        yield wrapper
    finally:
        wrapper.close()
        registry.close_pool("default")
        options["pool"] = saved


@pytest.fixture
def per_transaction(transactional_db):
    """Give the default alias a pool of 2 in release="transaction" mode for the test."""
    with default_pool(release="transaction", max_size=2, min_size=0) as wrapper:
        yield wrapper


@pytest.fixture
def password_role(server):
    """Make a role that must log in with a password (embedded server only: edits pg_hba.conf)."""
    require_embedded_server("edits pg_hba.conf")
    user, password = "django_pool_pw", "Kd9-right-password"
    hba = devdb.PGDATA / "pg_hba.conf"
    rule = f"local all {user} scram-sha-256\n"
    text = hba.read_text()
    if rule not in text:
        hba.write_text(rule + text)  # the first matching line wins
    server.query("SELECT pg_reload_conf()")
    if not server.query("SELECT 1 FROM pg_roles WHERE rolname = %s", [user]):
        server.execute(f'CREATE ROLE "{user}" LOGIN')
    server.execute(f'ALTER ROLE "{user}" PASSWORD %s', [password])
    return user, password
