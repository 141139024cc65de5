"""Install a built wheel beside a given Django, outside the checkout, and use it in a project.

``python tests/check_wheel.py WHEEL DJANGO_VERSION`` (run by ``nox -s package``): a fresh
virtualenv gets that Django first, then the wheel, which must leave Django as it is. A minimal
project there runs ``check --database``, ``migrate`` and ``makemigrations --check``, borrows a
connection and finds the dashboard's template and static files, so a file missing from the wheel
(a migration, a template, a script) fails. The database comes from ``CHECK_WHEEL_DATABASE``, a
``DATABASES`` entry as JSON.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import venv
from pathlib import Path

SETTINGS = """
import json, os
SECRET_KEY = "check-wheel-only"
INSTALLED_APPS = [
    "django.contrib.admin", "django.contrib.auth", "django.contrib.contenttypes",
    "django.contrib.sessions", "django.contrib.messages", "django.contrib.staticfiles",
    "django_pool",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
TEMPLATES = [{
    "BACKEND": "django.template.backends.django.DjangoTemplates",
    "APP_DIRS": True,
    "OPTIONS": {"context_processors": [
        "django.template.context_processors.request",
        "django.contrib.auth.context_processors.auth",
        "django.contrib.messages.context_processors.messages",
    ]},
}]
STATIC_URL = "static/"
DATABASES = {"default": {
    **json.loads(os.environ["CHECK_WHEEL_DATABASE"]),
    "ENGINE": "django_pool.backends.postgresql",
    "OPTIONS": {"pool": {"min_size": 0, "max_size": 2}},
}}
ROOT_URLCONF = "urls"
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
"""
URLS = """
from django.contrib import admin
from django.urls import include, path
urlpatterns = [path("pool/", include("django_pool.urls")), path("admin/", admin.site.urls)]
"""
USE = """
import django_pool, sys
from django.db import connection
connection.ensure_connection()
assert connection.pool is not None and connection.pool.in_use() == 1
print("borrowed from", connection.pool, "django_pool from", django_pool.__file__)
assert "site-packages" in django_pool.__file__, "imported from the checkout"
from django.contrib.staticfiles import finders
from django.template.loader import get_template
from django.urls import reverse
get_template("admin/django_pool/dashboard.html")
for name in ("django_pool/dashboard.css", "django_pool/dashboard.js"):
    found = finders.find(name)
    assert found and "site-packages" in found, f"{name} is not in the wheel"
print("dashboard at", reverse("admin:django_pool_dashboard"), "with its template and static files")
"""


def run(*args: str, cwd: Path | None = None) -> str:
    print("+", " ".join(args), flush=True)
    result = subprocess.run(args, cwd=cwd, capture_output=True, text=True)
    print(result.stdout + result.stderr, end="", flush=True)
    if result.returncode:
        sys.exit(f"failed ({result.returncode}): {' '.join(args)}")
    return result.stdout


def main(wheel: str, django: str) -> None:
    home = Path(tempfile.mkdtemp(prefix="django_pool_wheel_"))
    venv.create(home / "venv", with_pip=True)
    python = str(home / "venv" / "bin" / "python")
    run(python, "-m", "pip", "install", "--quiet", f"Django~={django}.0")
    run(python, "-m", "pip", "install", "--quiet", wheel)
    version = run(python, "-c", "import django; print(django.get_version())").strip()
    if not version.startswith(django):
        sys.exit(f"installing the wheel changed Django {django} to {version}")
    project = home / "project"
    project.mkdir()
    (project / "settings.py").write_text(SETTINGS)
    (project / "urls.py").write_text(URLS)
    os.environ["DJANGO_SETTINGS_MODULE"] = "settings"
    os.environ["PYTHONPATH"] = str(project)  # the project, and never the checkout
    admin = (python, "-m", "django")
    run(*admin, "check", "--database", "default", cwd=project)
    run(*admin, "migrate", "--no-input", cwd=project)
    run(*admin, "makemigrations", "--check", "--dry-run", "django_pool", cwd=project)
    run(*admin, "shell", "-c", USE, cwd=project)
    print(f"the wheel works beside Django {version}, which it left as it was")
    shutil.rmtree(home)


if __name__ == "__main__":
    main(*sys.argv[1:])
