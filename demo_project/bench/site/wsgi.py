"""WSGI entry point of the benchmark site, for gunicorn."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demo_project.bench.site.settings")
application = get_wsgi_application()
