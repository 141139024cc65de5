"""System checks for the settings of every database that uses the pooled ENGINE."""

from __future__ import annotations

import importlib.util

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register
from django.core.exceptions import ImproperlyConfigured
from django.db import DatabaseError, connections

from .conf import CONFIG_DEFAULTS, get_config
from .connect_errors import diagnose
from .options import Problem, is_number, validate_options

ENGINE = "django_pool.backends.postgresql"

# One id per kind of problem, so that users can silence or search for them.
_IDS = {
    "unknown": "django_pool.E001",
    "type": "django_pool.E002",
    "value": "django_pool.E003",
    "sizes": "django_pool.E004",
}
# What each option takes, said once for both of its problem kinds (wrong type, bad value).
_OPTION_HINTS = {
    "pool": "Set OPTIONS['pool'] to True (the defaults), False (no pool) or a dict of options.",
    "min_size": "Use an integer >= 0: the connections kept open when idle.",
    "max_size": "Use an integer >= 1: the most connections this process opens.",
    "max_waiting": "Use an integer >= 0: the borrowers allowed to queue (0 = no limit).",
    "timeout": "Use a number of seconds greater than 0.",
    "max_lifetime": "Use a number of seconds greater than 0.",
    "max_idle": "Use a number of seconds greater than 0.",
    "leak_timeout": "Use a number of seconds greater than 0, or None for no leak warnings.",
    "check": 'Use "always", "never", or a number of seconds >= 0 of idleness after which '
    "a connection is checked on borrow.",
    "reset": 'Use "rollback" (roll back an open transaction) or "discard" (DISCARD ALL).',
    "release": 'Use "request" (hold a connection from the first query to the end of the '
    'request) or "transaction" (give it back whenever no transaction is open).',
    "park": "Use True (keep a connection for its thread's next request) or False (give it "
    "back at every request's end).",
    "name": "Use a non-empty string, or None for the alias.",
}


def _hint(problem: Problem) -> str:
    """Say how to fix one problem, for its kind and key."""
    if problem.kind == "unknown":
        return "Remove or rename the key; see the options table in django_pool's README."
    if problem.kind == "sizes":
        return "Lower min_size or raise max_size so that min_size <= max_size."
    # An option added to options.py without a hint here still gets a pointer, not a KeyError.
    return _OPTION_HINTS.get(problem.key, "See the options table in django_pool's README.")


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
                hint=_hint(problem),
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


def _settings_errors(alias: str, database: dict) -> list[Error]:
    return _option_errors(alias, database) + _conn_max_age_errors(alias, database)


@register()
def check_pool_settings(app_configs=None, **kwargs) -> list[Error]:
    """Report bad OPTIONS['pool'] values and CONN_MAX_AGE != 0 on pooled databases."""
    errors = []
    for alias, database in _pooled_databases():
        errors += _settings_errors(alias, database)
    return errors


@register(Tags.database)
def check_pool_connections(app_configs=None, databases=None, **kwargs) -> list[Error]:
    """With ``check --database``, connect once and report the server's error if any."""
    errors = []
    for alias in databases or ():
        database = connections[alias].settings_dict
        # Each problem once, under its own id: a bad setting is not also a failed connect.
        if database.get("ENGINE") == ENGINE and not _settings_errors(alias, database):
            errors += _connection_errors(alias, database)
    return errors


def _connection_errors(alias: str, database: dict) -> list[Error]:
    error = _connect(alias, database)
    if error is None:
        return []
    if isinstance(error, ImproperlyConfigured):
        hint = "Fix the setting that the message names."  # Django's own: no server involved
    else:
        advice = diagnose(str(error)).advice
        hint = f"{advice[:1].upper()}{advice[1:]}."
    return [
        Error(
            f"DATABASES[{alias!r}]: cannot connect: {str(error).strip()}",
            hint=hint,
            id="django_pool.E006",
        )
    ]


def _connect(alias: str, database: dict) -> Exception | None:
    """Open and close one unpooled connection; return the error if that fails."""
    # Imported here: they import the driver, which only a pooled alias needs.
    from django.db.backends.postgresql.base import DatabaseWrapper

    from .backends.postgresql.base import DEFAULT_CONNECT_TIMEOUT, without_pool

    # Not through the pool: the probe must leave no pool behind, and a pool logs a failed
    # connect ("server marked down") to the console before the check's own report. Without
    # OPTIONS["pool"], which Django's backend would read as psycopg_pool's options; with the
    # pool's deadline, so that a host that never answers does not hang the check.
    settings_dict = without_pool(database)
    settings_dict["OPTIONS"].setdefault("connect_timeout", DEFAULT_CONNECT_TIMEOUT)
    wrapper = DatabaseWrapper(settings_dict, alias)
    try:
        wrapper.ensure_connection()
    except (DatabaseError, ImproperlyConfigured) as error:
        return error
    finally:
        wrapper.close()
    return None


def _number_errors(config: dict) -> list[Error]:
    errors = []
    for key in ("RETRY_AFTER", "PUBLISH_INTERVAL", "PUBLISH_TTL"):
        value = config[key]
        if not is_number(value) or value <= 0:
            errors.append(
                Error(
                    f"DJANGO_POOL[{key!r}] must be a positive number of seconds, got {value!r}.",
                    hint=f"Set it to a number > 0, or remove it for the default "
                    f"({CONFIG_DEFAULTS[key]}).",
                    id="django_pool.E008",
                )
            )
    return errors + _panel_errors(config)


# The debug toolbar panel's thresholds: what each must be, and in which unit.
_PANEL_NUMBERS = {
    "PANEL_SLOW_WAIT_MS": "a positive number of milliseconds",
    "PANEL_HOLD_OUTSIDE_MS": "a positive number of milliseconds",
    "PANEL_MANY_BORROWS": "a whole number of borrows, 2 or more",
    "PANEL_NEAR_EXHAUSTION": "a share of max_size above 0 and at most 1 (0.8 is 80%)",
}


def _panel_errors(config: dict) -> list[Error]:
    errors = []
    for key, what in _PANEL_NUMBERS.items():
        value = config[key]
        if key == "PANEL_MANY_BORROWS":
            valid = isinstance(value, int) and not isinstance(value, bool) and value >= 2
        elif key == "PANEL_NEAR_EXHAUSTION":
            valid = is_number(value) and 0 < value <= 1
        else:
            valid = is_number(value) and value > 0
        if not valid:
            errors.append(
                Error(
                    f"DJANGO_POOL[{key!r}] must be {what}, got {value!r}.",
                    hint=f"Set it so, or remove it for the default ({CONFIG_DEFAULTS[key]}).",
                    id="django_pool.E010",
                )
            )
    return errors


def _cache_errors(config: dict) -> list[Error | Warning]:
    name = config["CACHE"]
    if name is None:
        return []
    if name not in getattr(settings, "CACHES", {}):
        return [
            Error(
                f"DJANGO_POOL['CACHE'] names the cache {name!r}, which settings.CACHES lacks.",
                hint="Name a cache from settings.CACHES that every process reaches (Redis, "
                "Memcached, a shared file cache), or set it to None to turn publishing off.",
                id="django_pool.E009",
            )
        ]
    if config["PUBLISH_TTL"] < config["PUBLISH_INTERVAL"]:
        return [
            Warning(
                f"DJANGO_POOL['PUBLISH_TTL'] ({config['PUBLISH_TTL']}) is shorter than "
                f"PUBLISH_INTERVAL ({config['PUBLISH_INTERVAL']}): processes drop out of the "
                "all-processes view between two publications.",
                hint="Make PUBLISH_TTL about three times PUBLISH_INTERVAL.",
                id="django_pool.W001",
            )
        ]
    return []


def _metrics_warnings(config: dict) -> list[Warning]:
    if not config["METRICS"]:
        return []
    warnings = []
    if importlib.util.find_spec("prometheus_client") is None:
        warnings.append(
            Warning(
                "DJANGO_POOL['METRICS'] is on but prometheus_client is not installed: "
                "metrics/ answers 501.",
                hint="pip install 'django-pool[metrics]'",
                id="django_pool.W002",
            )
        )
    if not config["METRICS_TOKEN"]:
        warnings.append(
            Warning(
                "DJANGO_POOL['METRICS'] is on without a METRICS_TOKEN: metrics/ shows every "
                "pool's alias, host name and process ids to anyone who asks.",
                hint="Set DJANGO_POOL['METRICS_TOKEN'] to a long random secret and have "
                "Prometheus send it (authorization: {credentials: ...} in the scrape config), "
                "or, if only your own network reaches metrics/, silence this warning with "
                "SILENCED_SYSTEM_CHECKS = ['django_pool.W003'].",
                id="django_pool.W003",
            )
        )
    return warnings


@register()
def check_app_settings(app_configs=None, **kwargs) -> list[Error | Warning]:
    """Report unknown or bad DJANGO_POOL settings."""
    user = getattr(settings, "DJANGO_POOL", {})
    if not isinstance(user, dict):
        return [
            Error(
                f"DJANGO_POOL must be a dict, got {type(user).__name__}.",
                hint="Set DJANGO_POOL = {...} with the keys from django_pool's README.",
                id="django_pool.E007",
            )
        ]
    unknown = sorted(set(user) - set(CONFIG_DEFAULTS))
    errors = [
        Error(
            f"Unknown DJANGO_POOL setting {key!r}.",
            hint=f"Known settings: {', '.join(CONFIG_DEFAULTS)}.",
            id="django_pool.E007",
        )
        for key in unknown
    ]
    config = get_config()
    return errors + _number_errors(config) + _cache_errors(config) + _metrics_warnings(config)
