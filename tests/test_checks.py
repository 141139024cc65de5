"""Every bad pool setting is reported by a system check with its id and a fix."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import override_settings

from django_pool.checks import ENGINE, check_app_settings, check_pool_settings
from django_pool.options import OPTION_NAMES

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
    assert app_ids(settings, METRICS=True) == ["django_pool.W002"]


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
