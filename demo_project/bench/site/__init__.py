"""A tiny Django project served by gunicorn for the HTTP benchmark (``demo_project.bench.http``).

The names both the runner and the site's settings need live here, so that the runner can use
them without importing the settings (which resolve the database).
"""

# Run in this order in every round: each of our rows between the rows it is judged against
# (the native pool at the same size, persistent connections), so a slow spell touches them alike.
CONFIGS = (
    "no_pool",
    "native_pool_equal",
    "django_pool_equal",
    "persistent",
    "django_pool",
    "native_pool",
    "dbcp",
    "ceiling",
)
# The release section (``demo_project.bench.release``): when a pooled connection goes back.
RELEASE_CONFIGS = (
    "persistent",
    "native_pool",
    "pg_real_pool",
    "django_pool_request",
    "django_pool_transaction",
)
# django_pool's configurations -> their pool's "release" option (None: the default).
DJANGO_POOL_RELEASE = {
    "django_pool": None,
    "django_pool_equal": None,
    "django_pool_request": "request",
    "django_pool_transaction": "transaction",
}
# Pool size per worker process. Persistent connections hold one per thread, 8 per worker of
# the HTTP comparison: POOL holds half as many (4 shared by 8 threads), POOL_EQUAL as many,
# for the "_equal" configurations. Every other pooled configuration uses POOL.
POOL = {"min_size": 2, "max_size": 4}
POOL_EQUAL = {"min_size": 4, "max_size": 8}
# The oversubscribed section (``demo_project.bench.oversubscribed``): 4 workers x 16 threads
# against a server taking 40 connections; a pool of 8 per worker needs 32 of them at most.
OVERSUBSCRIBED_CONFIGS = ("persistent", "django_pool_max8")
OVERSUBSCRIBED_POOL = {**POOL, "max_size": 8}


def pool_size(config: str) -> dict:
    """Return the pool size per worker of a pooled configuration."""
    return POOL_EQUAL if config.endswith("_equal") else POOL


FIELDS = ("NAME", "USER", "PASSWORD", "HOST", "PORT")
# pg_stat_activity counts only connections with this name; each runner picks its own, so two
# benchmark runs on one server never count each other's connections.
DEFAULT_APPLICATION_NAME = "django_pool_bench_http"
