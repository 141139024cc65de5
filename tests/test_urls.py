"""Including the endpoints' URLs without the app installed says how to fix it."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from demo_project import devdb

SETTINGS = """
SECRET_KEY = "tests-only-not-secret"
INSTALLED_APPS = ["django.contrib.auth", "django.contrib.contenttypes"]
ROOT_URLCONF = "no_app_urls"
"""
URLS = """
from django.urls import include, path

urlpatterns = [path("pool/", include("django_pool.urls"))]
"""


@pytest.mark.parametrize("command", ["check", "migrate"])
def test_urls_without_the_app_in_installed_apps_say_to_add_it(tmp_path, command):
    # A project of its own: the app registry of this process has the app installed.
    (tmp_path / "no_app_settings.py").write_text(SETTINGS)
    (tmp_path / "no_app_urls.py").write_text(URLS)
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "no_app_settings",
        "PYTHONPATH": os.pathsep.join([str(tmp_path), str(devdb.ROOT)]),
    }
    result = subprocess.run(
        [sys.executable, "-m", "django", command],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line == (
        'django.core.exceptions.ImproperlyConfigured: include("django_pool.urls") needs the '
        'django_pool app: add "django_pool" to INSTALLED_APPS (its views use the app\'s '
        "permission model)."
    )
