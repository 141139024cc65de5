"""A tiny Django project served by gunicorn for the HTTP benchmark (``demo_project.bench.http``).

The names both the runner and the site's settings need live here, so that the runner can use
them without importing the settings (which resolve the database).
"""

CONFIGS = ("no_pool", "persistent", "native_pool", "dbcp", "django_pool", "ceiling")
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
    "django_pool_request": "request",
    "django_pool_transaction": "transaction",
}
# Same pool size for every pooled config: 4 per worker process for its 8 gthread threads, so
# the pools hold half the server connections persistent connections do (one per thread). A
# request holds its connection for one short query, so 4 serve 8 threads with little waiting.
POOL = {"min_size": 2, "max_size": 4}
# The oversubscribed section (``demo_project.bench.oversubscribed``): 4 workers x 16 threads
# against a server taking 40 connections; a pool of 8 per worker needs 32 of them at most.
OVERSUBSCRIBED_CONFIGS = ("persistent", "django_pool_max8")
OVERSUBSCRIBED_POOL = {**POOL, "max_size": 8}
FIELDS = ("NAME", "USER", "PASSWORD", "HOST", "PORT")
# pg_stat_activity counts only connections with this name; each runner picks its own, so two
# benchmark runs on one server never count each other's connections.
DEFAULT_APPLICATION_NAME = "django_pool_bench_http"
