"""Settings for the test suite: two pooled aliases on DATABASE_URL or the embedded server."""

from pathlib import Path

from demo_project.devdb import database_settings

SECRET_KEY = "tests-only-not-secret"
USE_TZ = True
TIME_ZONE = "UTC"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
ROOT_URLCONF = "tests.urls"
STATIC_URL = "static/"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_pool",
    "tests.testapp",
    "demo_project.shop",
    "demo_project.leaderboard",
    "demo_project.tenants",
    "debug_toolbar",
]

# The panel tests put DebugToolbarMiddleware in MIDDLEWARE (tests/panels/); elsewhere the
# toolbar is installed but never runs. It shows on every request that has its middleware.
DEBUG_TOOLBAR_CONFIG = {
    "IS_RUNNING_TESTS": False,
    "SHOW_TOOLBAR_CALLBACK": "tests.panels.views.show_toolbar",
}
DEBUG_TOOLBAR_PANELS = [
    "debug_toolbar.panels.sql.SQLPanel",
    "django_pool.panels.PoolPanel",
]

# Sessions and auth let the endpoint tests log users in; they touch no table unless used.
# CSRF and messages are what the admin dashboard's actions need.
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [Path(__file__).resolve().parent.parent / "templates"],  # the demo's pages
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

_default = database_settings(
    "django_pool_tests",
    OPTIONS={"pool": {"min_size": 1, "max_size": 4, "timeout": 10.0}},
)
DATABASES = {
    "default": _default,
    # A second alias with its own pool and its own time zone.
    "other": database_settings(
        "django_pool_tests_other",
        TIME_ZONE="Asia/Tokyo",
        # Its own test database also when DATABASE_URL gives both aliases one NAME, named
        # after that NAME so that runs on different databases of one server never collide.
        TEST={"NAME": f"test_{_default['NAME']}_other"},
        OPTIONS={"pool": {"min_size": 0, "max_size": 2}},
    ),
}

# The demo's tenants (tests/test_demo.py): a small tier on "other" (max_size 2) and a large one
# on "default" (max_size 4), each alias with its own pool.
DEMO_TENANTS = {"small": "other", "large": "default"}
