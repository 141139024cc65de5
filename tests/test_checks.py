"""Every bad pool setting is reported by a system check with its id and a fix."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.db import connections
from django.test import override_settings

from django_pool import registry
from django_pool.backends.postgresql import base
from django_pool.backends.postgresql.base import DatabaseWrapper
from django_pool.checks import (
    ENGINE,
    check_app_settings,
    check_pool_connections,
    check_pool_settings,
)
from django_pool.options import OPTION_NAMES
from tests.conftest import manage_py

pytestmark = pytest.mark.filterwarnings("ignore:Overriding setting DATABASES")


def database(pool=True, **extra) -> dict:
    return {"ENGINE": ENGINE, "NAME": "x", "CONN_MAX_AGE": 0, "OPTIONS": {"pool": pool}, **extra}


def ids_for(**databases) -> list[str]:
    with override_settings(DATABASES=databases):
        errors = check_pool_settings()
    for error in errors:
        assert error.hint, f"{error.id} must say how to fix it"
    return [error.id for error in errors]


@pytest.mark.parametrize(
    ("pool", "expected"),
    [
        ({"max_sise": 5}, ["django_pool.E001"]),
        ({"max_size": "10"}, ["django_pool.E002"]),
        ({"timeout": "soon"}, ["django_pool.E002"]),
        ({"check": "sometimes"}, ["django_pool.E002"]),
        ("yes", ["django_pool.E002"]),
        ({"max_size": 0}, ["django_pool.E003"]),
        ({"min_size": -1}, ["django_pool.E003"]),
        ({"timeout": 0}, ["django_pool.E003"]),
        ({"max_lifetime": -5.0}, ["django_pool.E003"]),
        ({"reset": "truncate"}, ["django_pool.E003"]),
        ({"park": "yes"}, ["django_pool.E002"]),
        ({"min_size": 5, "max_size": 2}, ["django_pool.E004"]),
    ],
)
def test_bad_pool_options(pool, expected):
    assert ids_for(default=database(pool)) == expected


def test_conn_max_age_with_the_pool():
    assert ids_for(default=database(True, CONN_MAX_AGE=60)) == ["django_pool.E005"]
    assert ids_for(default=database(True, CONN_MAX_AGE=None)) == ["django_pool.E005"]


def test_good_settings_pass():
    good = database({"min_size": 0, "max_size": 20, "check": "always", "leak_timeout": 30})
    assert ids_for(default=good, plain=database(True), off=database(False, CONN_MAX_AGE=60)) == []


def test_other_engines_are_not_checked():
    other = {"ENGINE": "django.db.backends.postgresql", "NAME": "x", "CONN_MAX_AGE": 60}
    assert ids_for(default=other) == []


def test_messages_name_the_alias_and_key():
    with override_settings(DATABASES={"replica": database({"max_sise": 5})}):
        (error,) = check_pool_settings()
    assert "DATABASES['replica']" in error.msg and "'max_sise'" in error.msg
    assert "max_size" in error.msg  # the known options are listed


def test_registered_with_manage_py_check():
    with (
        override_settings(DATABASES={"default": database({"max_size": 0})}),
        pytest.raises(SystemCheckError, match="django_pool.E003"),
    ):
        call_command("check")


def app_ids(settings, **config) -> list[str]:
    settings.DJANGO_POOL = config
    errors = check_app_settings()
    for error in errors:
        assert error.hint, f"{error.id} must say how to fix it"
    return [error.id for error in errors]


def test_app_settings_defaults_pass(settings):
    assert app_ids(settings) == []


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"CACHES": "default"}, ["django_pool.E007"]),
        ({"RETRY_AFTER": 0}, ["django_pool.E008"]),
        ({"PUBLISH_INTERVAL": "10"}, ["django_pool.E008"]),
        ({"CACHE": "nowhere"}, ["django_pool.E009"]),
        ({"PANEL_SLOW_WAIT_MS": -1}, ["django_pool.E010"]),
        ({"PANEL_HOLD_OUTSIDE_MS": "100"}, ["django_pool.E010"]),
        ({"PANEL_MANY_BORROWS": 1}, ["django_pool.E010"]),
        ({"PANEL_MANY_BORROWS": 2.5}, ["django_pool.E010"]),
        ({"PANEL_NEAR_EXHAUSTION": 80}, ["django_pool.E010"]),
        ({"PANEL_NEAR_EXHAUSTION": 0}, ["django_pool.E010"]),
        ({"CACHE": "default", "PUBLISH_TTL": 5, "PUBLISH_INTERVAL": 10}, ["django_pool.W001"]),
    ],
)
def test_bad_app_settings(settings, config, expected):
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    assert app_ids(settings, **config) == expected


def test_app_settings_must_be_a_dict(settings):
    settings.DJANGO_POOL = ["CACHE"]
    assert [error.id for error in check_app_settings()] == ["django_pool.E007"]


def test_metrics_without_prometheus_client_warns(settings, monkeypatch):
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    assert app_ids(settings, METRICS=True, METRICS_TOKEN="s3cr3t") == ["django_pool.W002"]


@pytest.mark.parametrize("token", [None, ""])
def test_metrics_without_a_token_warns_that_anyone_can_read_them(settings, token):
    assert app_ids(settings, METRICS=True, METRICS_TOKEN=token) == ["django_pool.W003"]
    (warning,) = check_app_settings()
    assert "METRICS_TOKEN" in warning.hint and "SILENCED_SYSTEM_CHECKS" in warning.hint


def test_metrics_with_a_token_pass(settings):
    assert app_ids(settings, METRICS=True, METRICS_TOKEN="s3cr3t") == []


# Hints fit their problem


@pytest.mark.parametrize(
    ("pool", "says"),
    [
        ({"reset": "truncate"}, 'Use "rollback" (roll back an open transaction) or "discard"'),
        ({"check": -1}, 'Use "always", "never", or a number of seconds >= 0'),
        ({"min_size": -1}, "Use an integer >= 0"),
        ({"max_waiting": -1}, "Use an integer >= 0"),
        ({"max_size": 0}, "Use an integer >= 1"),
        ({"timeout": 0}, "Use a number of seconds greater than 0"),
        ({"leak_timeout": "soon"}, "or None for no leak warnings"),
        ({"name": ""}, "Use a non-empty string"),
        ("yes", "Set OPTIONS['pool'] to True (the defaults), False (no pool) or a dict"),
    ],
)
def test_each_hint_fits_its_problem(pool, says):
    with override_settings(DATABASES={"default": database(pool)}):
        (error,) = check_pool_settings()
    assert says in error.hint
    assert "positive" not in error.hint


def test_every_option_has_a_hint_of_its_own():
    # A value of no option's type: exactly one problem per key.
    bad = dict.fromkeys(OPTION_NAMES, object())
    with override_settings(DATABASES={"default": database(bad)}):
        errors = check_pool_settings()
    assert len(errors) == len(OPTION_NAMES)
    for key, error in zip(OPTION_NAMES, errors, strict=True):
        assert "README" not in error.hint, f"{key!r} needs a hint in checks._OPTION_HINTS"


# check --database: one probe, the server's own error, nothing else

UNREACHABLE = {"HOST": "127.0.0.1", "PORT": "1"}


@contextmanager
def extra_alias(name: str, **fields) -> Iterator[str]:
    """Add alias ``name``: the test database's settings with ``fields`` changed."""
    # Set directly: connections read DATABASES once, and Django's test cases refuse
    # connections to aliases in DATABASES that the test did not declare.
    wrapper = DatabaseWrapper({**connections["default"].settings_dict, **fields}, name)
    connections[name] = wrapper
    try:
        yield name
    finally:
        wrapper.close()
        del connections[name]
        registry.close_pool(name)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"OPTIONS": {"pool": {"reset": "truncate"}}}, "django_pool.E003"),
        ({"CONN_MAX_AGE": 60}, "django_pool.E005"),
        ({"CONN_MAX_AGE": 60, **UNREACHABLE}, "django_pool.E005"),
    ],
)
def test_a_bad_setting_is_reported_once_not_again_as_a_failed_connect(settings, fields, expected):
    with extra_alias("bad", **fields) as alias, pytest.raises(SystemCheckError) as info:
        # check_pool_settings reads settings.DATABASES, the probe the alias's connection.
        settings.DATABASES = {**settings.DATABASES, alias: connections[alias].settings_dict}
        call_command("check", databases=[alias])
    report = str(info.value)
    assert report.count("django_pool.E0") == 1, report
    assert expected in report


@pytest.mark.django_db
def test_a_reachable_server_passes_and_the_probe_leaves_no_pool():
    with extra_alias("reachable") as alias:
        assert check_pool_connections(databases=[alias]) == []
        assert alias not in registry.pools()


@pytest.mark.django_db
def test_an_unreachable_server_is_its_own_error_without_pool_log_records(caplog):
    caplog.set_level(logging.DEBUG, logger="django_pool")
    with extra_alias("unreachable", **UNREACHABLE) as alias:
        (error,) = check_pool_connections(databases=[alias])
        assert alias not in registry.pools()
    assert error.id == "django_pool.E006"
    assert '"127.0.0.1", port 1 failed: Connection refused' in error.msg
    assert "HOST and PORT" in error.hint
    assert [record.getMessage() for record in caplog.records] == []


@pytest.mark.django_db
def test_the_probe_gives_up_on_a_server_that_never_answers(blackhole, monkeypatch):
    monkeypatch.setattr(base, "DEFAULT_CONNECT_TIMEOUT", 1)
    started = time.monotonic()
    with extra_alias("hung", HOST="127.0.0.1", PORT=str(blackhole)) as alias:
        (error,) = check_pool_connections(databases=[alias])
    assert time.monotonic() - started < 5.0
    assert error.id == "django_pool.E006"
    assert "timeout" in error.msg


@pytest.mark.django_db
def test_a_setting_django_refuses_is_reported_without_server_advice():
    with extra_alias("no_name", NAME="") as alias:
        (error,) = check_pool_connections(databases=[alias])
    assert error.id == "django_pool.E006"
    assert "Please supply the NAME" in error.msg
    assert error.hint == "Fix the setting that the message names."


def test_a_refused_login_names_the_password_and_pg_hba(password_role):
    user, _ = password_role
    wrong = "Xq7-not-the-password"
    with extra_alias("wrong_password", USER=user, PASSWORD=wrong) as alias:
        (error,) = check_pool_connections(databases=[alias])
    assert error.id == "django_pool.E006"
    assert f'password authentication failed for user "{user}"' in error.msg
    assert error.hint.startswith("The server said 'password authentication failed")
    assert "PASSWORD" in error.hint and "pg_hba.conf" in error.hint
    assert wrong not in error.msg + error.hint


def test_manage_py_check_prints_its_report_and_no_log_line():
    result = manage_py(
        "check", "--database", "default", database_url="postgres://postgres@127.0.0.1:1/anything"
    )
    assert result.returncode == 1
    assert result.stderr.startswith("SystemCheckError"), result.stderr
    assert result.stderr.count("django_pool.E006") == 1
    assert "Connection refused" in result.stderr
