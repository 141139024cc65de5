"""Settings of the uvicorn server that tests/test_asgi.py runs: the test settings, with changes.

The server is a process of its own, so it learns the name of the database pytest-django created
from DJANGO_POOL_TEST_DATABASE. Its pool is small and reports leaks soon, and the pool's
warnings and Django's request errors go to stderr, where the test reads them.
"""

import os

from tests import settings as base
from tests.settings import *  # noqa: F403

ALLOWED_HOSTS = ["127.0.0.1"]

DATABASES = {
    "default": {
        **base.DATABASES["default"],
        "NAME": os.environ["DJANGO_POOL_TEST_DATABASE"],
        "OPTIONS": {
            **base.DATABASES["default"]["OPTIONS"],
            # A request holds a connection for milliseconds; one held 2 s is reported as a leak.
            "pool": {"min_size": 1, "max_size": 4, "timeout": 10.0, "leak_timeout": 2.0},
        },
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler"}},
    "loggers": {
        "django_pool": {"handlers": ["stderr"], "level": "WARNING"},
        "django.request": {"handlers": ["stderr"], "level": "ERROR"},
    },
}
