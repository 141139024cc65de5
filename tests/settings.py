"""Settings for the test suite: two pooled aliases on DATABASE_URL or the embedded server."""

from demo_project.devdb import database_settings

SECRET_KEY = "tests-only-not-secret"
USE_TZ = True
TIME_ZONE = "UTC"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
ROOT_URLCONF = "tests.urls"
STATIC_URL = "static/"

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django_pool",
    "tests.testapp",
]

# Sessions and auth let the endpoint tests log users in; they touch no table unless used.
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]

DATABASES = {
    "default": database_settings(
        "django_pool_tests",
        OPTIONS={"pool": {"min_size": 1, "max_size": 4, "timeout": 10.0}},
    ),
    # A second alias with its own pool and its own time zone.
    "other": database_settings(
        "django_pool_tests_other",
        TIME_ZONE="Asia/Tokyo",
        # Its own test database also when DATABASE_URL gives both aliases one NAME.
        TEST={"NAME": "test_django_pool_tests_other"},
        OPTIONS={"pool": {"min_size": 0, "max_size": 2}},
    ),
}
