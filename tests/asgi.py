"""The test site as an ASGI application, for the uvicorn server that tests/test_asgi.py runs."""

import os

from django.core.asgi import get_asgi_application

# Serve with the driver of the test run that started this server: `-p tests.psycopg2_only` sets
# DJANGO_POOL_DRIVER, and psycopg 3 must be hidden before Django sets up and imports a driver.
if os.environ.get("DJANGO_POOL_DRIVER") == "psycopg2":
    import tests.psycopg2_only  # noqa: F401

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
application = get_asgi_application()
