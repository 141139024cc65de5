"""Settings of the HTTP benchmark site; ``BENCH_CONFIG`` picks how the database is reached.

The benchmark runner passes the server's connection fields as JSON in ``BENCH_DB`` so that
workers never start or query the embedded server themselves; without it they are read from
``demo_project.devdb`` (``DATABASE_URL`` wins when set).
"""

from __future__ import annotations

import json
import os

from demo_project.bench.site import (
    CONFIGS,
    DEFAULT_APPLICATION_NAME,
    DJANGO_POOL_RELEASE,
    FIELDS,
    OVERSUBSCRIBED_CONFIGS,
    OVERSUBSCRIBED_POOL,
    POOL,
    RELEASE_CONFIGS,
    pool_size,
)

# Lets the runner count exactly this site's server connections in pg_stat_activity.
APPLICATION_NAME = os.environ.get("BENCH_APPLICATION_NAME", DEFAULT_APPLICATION_NAME)

SECRET_KEY = "bench-only-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS: list[str] = []
MIDDLEWARE: list[str] = []
ROOT_URLCONF = "demo_project.bench.site.urls"
WSGI_APPLICATION = "demo_project.bench.site.wsgi.application"
USE_TZ = True
TIME_ZONE = "UTC"
LOGGING_CONFIG = None


def server_fields() -> dict:
    """Return NAME, USER, PASSWORD, HOST and PORT of the benchmark database."""
    if "BENCH_DB" in os.environ:
        return json.loads(os.environ["BENCH_DB"])
    from demo_project.devdb import database_settings

    settings = database_settings("django_pool_bench")
    return {key: settings.get(key, "") for key in FIELDS}


def database(config: str) -> dict:
    """Return the ``default`` database entry for one benchmark configuration."""
    base = {**server_fields(), "OPTIONS": {"application_name": APPLICATION_NAME}}
    options = base["OPTIONS"]
    django_engine = "django.db.backends.postgresql"
    if config in ("no_pool", "ceiling"):  # ceiling never touches it
        return {**base, "ENGINE": django_engine, "CONN_MAX_AGE": 0}
    if config == "persistent":
        return {**base, "ENGINE": django_engine, "CONN_MAX_AGE": 600}
    if config in ("native_pool", "native_pool_equal"):
        pooled = {**options, "pool": pool_size(config)}
        return {**base, "ENGINE": django_engine, "CONN_MAX_AGE": 0, "OPTIONS": pooled}
    if config == "dbcp":
        return {
            **base,
            "ENGINE": "dj_db_conn_pool.backends.postgresql",
            "CONN_MAX_AGE": 0,
            "POOL_OPTIONS": {"POOL_SIZE": POOL["max_size"], "MAX_OVERFLOW": 0},
        }
    if config == "pg_real_pool":  # Django's native pool, given back after each query
        pooled = {**options, "pool": POOL}
        return {**base, "ENGINE": "django_pg_real_pool", "CONN_MAX_AGE": 0, "OPTIONS": pooled}
    if config in DJANGO_POOL_RELEASE:
        release = DJANGO_POOL_RELEASE[config]
        pool = pool_size(config) if release is None else {**POOL, "release": release}
        return {
            **base,
            "ENGINE": "django_pool.backends.postgresql",
            "CONN_MAX_AGE": 0,
            "OPTIONS": {**options, "pool": pool},
        }
    if config == "django_pool_max8":
        pooled = {**options, "pool": OVERSUBSCRIBED_POOL}
        engine = "django_pool.backends.postgresql"
        return {**base, "ENGINE": engine, "CONN_MAX_AGE": 0, "OPTIONS": pooled}
    known = ", ".join(dict.fromkeys(CONFIGS + RELEASE_CONFIGS + OVERSUBSCRIBED_CONFIGS))
    raise ValueError(f"BENCH_CONFIG must be one of {known}, not {config!r}")


BENCH_CONFIG = os.environ.get("BENCH_CONFIG", "django_pool")
DATABASES = {"default": database(BENCH_CONFIG)}
