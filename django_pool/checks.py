"""System checks for the settings of every database that uses the pooled ENGINE."""

from __future__ import annotations

from django.conf import settings
from django.core.checks import Error, Tags, register
from django.core.exceptions import ImproperlyConfigured
from django.db import DatabaseError, connections

from .config import validate_options

ENGINE = "django_pool.backends.postgresql"

# One id per kind of problem, so that users can silence or search for them.
_IDS = {
    "unknown": "django_pool.E001",
    "type": "django_pool.E002",
    "value": "django_pool.E003",
    "sizes": "django_pool.E004",
}
_HINTS = {
    "unknown": "Remove or rename the key; see the options table in django_pool's README.",
    "type": "Use a value of the documented type; see the options table in django_pool's README.",
    "value": "Use a positive value; see the options table in django_pool's README.",
    "sizes": "Lower min_size or raise max_size so that min_size <= max_size.",
}


def _pooled_databases():
    for alias, database in settings.DATABASES.items():
        if database.get("ENGINE") == ENGINE:
            yield alias, database


def _option_errors(alias: str, database: dict) -> list[Error]:
    options = (database.get("OPTIONS") or {}).get("pool", True)
    errors = []
    for problem in validate_options(options):
        errors.append(
            Error(
                f"DATABASES[{alias!r}]['OPTIONS']['pool']: {problem.message}",
                hint=_HINTS[problem.kind],
                id=_IDS[problem.kind],
            )
        )
    return errors


def _conn_max_age_errors(alias: str, database: dict) -> list[Error]:
    max_age = database.get("CONN_MAX_AGE", 0)
    pooled = (database.get("OPTIONS") or {}).get("pool", True) is not False
    if not pooled or max_age == 0:
        return []
    return [
        Error(
            f"DATABASES[{alias!r}] sets CONN_MAX_AGE={max_age!r} with the pooled ENGINE.",
            hint="Set CONN_MAX_AGE to 0: the pool owns connection lifetime "
            "(tune OPTIONS['pool']['max_lifetime'] and ['max_idle'] instead).",
            id="django_pool.E005",
        )
    ]


@register()
def check_pool_settings(app_configs=None, **kwargs) -> list[Error]:
    """Report bad OPTIONS['pool'] values and CONN_MAX_AGE != 0 on pooled databases."""
    errors = []
    for alias, database in _pooled_databases():
        errors += _option_errors(alias, database)
        errors += _conn_max_age_errors(alias, database)
    return errors


@register(Tags.database)
def check_pool_connections(app_configs=None, databases=None, **kwargs) -> list[Error]:
    """With ``check --database``, borrow a connection and report the server's error if any."""
    errors = []
    for alias in databases or ():
        connection = connections[alias]
        if connection.settings_dict.get("ENGINE") != ENGINE:
            continue
        try:
            connection.ensure_connection()
        except (DatabaseError, ImproperlyConfigured) as error:
            errors.append(
                Error(
                    f"DATABASES[{alias!r}]: cannot connect: {error}".strip(),
                    hint="Check NAME, HOST, PORT, USER and PASSWORD, and that the server "
                    "is running and accepts connections from this host.",
                    id="django_pool.E006",
                )
            )
        finally:
            connection.close()
    return errors
