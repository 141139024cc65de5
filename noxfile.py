"""The test matrix behind ``make test``: each supported Django on a Python it supports.

``make test`` lints, starts the database, then runs ``nox`` (``python -m nox -l`` lists the
legs). The Django 5.2 leg runs in the project's own ``.venv``; the others get virtualenvs of
their own under ``.nox/``. A leg whose Python is not on this machine is skipped with a
message, and fails instead when ``CI`` is set (nox's ``--error-on-missing-interpreters``).
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import nox

ROOT = Path(__file__).resolve().parent

nox.options.default_venv_backend = "venv"
nox.options.reuse_existing_virtualenvs = True
nox.options.download_python = "never"  # only interpreters this machine has: no downloads


def interpreter(version: str) -> str:
    """Return Python ``version``: from pyenv's versions (its shims may be off), else by name."""
    root = os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")
    found = sorted(glob.glob(f"{root}/versions/{version}.*/bin/python{version}"))
    found += [path for path in [shutil.which(f"python{version}")] if path]
    for path in found:
        # A pyenv shim for a version that is not selected exists but does not run.
        if subprocess.run([path, "-c", "pass"], capture_output=True).returncode == 0:
            return path
    return version  # nox says it is missing: skipped here, an error in CI


# make test must stay within 10 minutes on 2 cores, so each leg runs what it is there for.
# Each Django leg runs the whole suite under psycopg 3, except:
# - a browser test runs in one leg: the dashboard's on 5.2 (the LTS most sites run), the
#   toolbar panel's on 6.1 (with the newest toolbar, whose shadow DOM it checks);
# - the pool core's tests on a fake driver (test_pool.py) depend on Python, not Django: 3.11
#   (5.2) and 3.13 (6.0) run them; its model-based test (test_pool_model.py, about 20 s) runs
#   once, on 5.2;
# - the server fault tests (test_faults.py) run on 5.2 and 6.1, under both drivers on 5.2;
# - the demo site's tests run on 5.2 and 6.1, its traffic simulator's on 5.2.
DASHBOARD_BROWSER = "--ignore=tests/test_dashboard_browser.py"
PANEL_BROWSER = "--ignore=tests/panels/test_pool_browser.py"
CORE = "--ignore=tests/test_pool.py"
MODEL = "--ignore=tests/test_pool_model.py"
FAULTS = "--ignore=tests/test_faults.py"
DEMO = "--ignore=tests/test_demo.py"
SIMULATOR = "--ignore=tests/test_simulate_traffic.py"

# Not run again under psycopg2: the pool core on a fake driver, pure functions, pages, the
# browser tests, the demo site, and modules whose driver work happens in a subprocess (which
# psycopg2_only does not reach).
NO_DRIVER = (
    DASHBOARD_BROWSER,
    PANEL_BROWSER,
    *(
        f"--ignore=tests/{name}.py"
        for name in (
            "test_pool",
            "test_pool_model",
            "test_stats",
            "test_health",
            "test_options",
            "test_dashboard",
            "test_dashboard_data",
            "test_publish",
            "test_pool_status",
            "test_urls",
            "test_demo",
            "test_simulate_traffic",
        )
    ),
)

# On 6.1, psycopg2 runs where the driver makes a difference with Django's own code: the
# driver adapters, the ENGINE, release at transaction end and the panel's hooks (the rest runs
# under psycopg2 on 5.2).
PSYCOPG2_CORE = (
    "tests/test_drivers.py",
    "tests/test_backend.py",
    "tests/test_release.py",
    "tests/test_parking.py",
    "tests/panels/test_pool.py",
)


def run_pytest(session: nox.Session, python: str, *args: str) -> None:
    session.run(python, "-m", "pytest", *args, *session.posargs, external=True)


def check_django(session: nox.Session, python: str, version: str) -> None:
    """Fail unless the leg runs the Django it is named after."""
    session.run(
        python,
        "-c",
        f"import django, sys; v = django.get_version(); print('Django', v); "
        f"sys.exit(not v.startswith('{version}'))",
        external=True,
        silent=False,
    )


@nox.session(name="django-5.2", python=False)
def django_5_2(session: nox.Session) -> None:
    """Django 5.2 LTS on this Python (.venv): psycopg 3, then psycopg2."""
    check_django(session, sys.executable, "5.2")
    run_pytest(session, sys.executable, PANEL_BROWSER)
    run_pytest(session, sys.executable, "-p", "tests.psycopg2_only", *NO_DRIVER)


@nox.session(name="django-6.1", python=interpreter("3.12"))
def django_6_1(session: nox.Session) -> None:
    """Django 6.1 on Python 3.12: psycopg 3, then the driver-core tests under psycopg2."""
    session.install("-e", ".[test]", "Django~=6.1.0")
    check_django(session, "python", "6.1")
    run_pytest(session, "python", DASHBOARD_BROWSER, CORE, MODEL, SIMULATOR)
    run_pytest(session, "python", "-p", "tests.psycopg2_only", *PSYCOPG2_CORE)


@nox.session(name="django-6.0", python=interpreter("3.13"))
def django_6_0(session: nox.Session) -> None:
    """Django 6.0 on Python 3.13, under psycopg 3."""
    session.install("-e", ".[test]", "Django~=6.0.0")
    check_django(session, "python", "6.0")
    run_pytest(session, "python", DASHBOARD_BROWSER, PANEL_BROWSER, MODEL, FAULTS, DEMO, SIMULATOR)


@nox.session(name="toolbar-6.0", python=False)
def toolbar_6_0(session: nox.Session) -> None:
    """The lowest django-debug-toolbar we support (6.0, on Django 5.2): the panel's tests.

    The other legs run the highest (8.x) with the whole suite. Toolbar 6.0.0 goes into a
    directory of its own, put before .venv's site-packages, so .venv keeps its 8.x.
    """
    target = ROOT / ".nox" / "toolbar-6.0"
    session.run(
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--no-deps",
        "--upgrade",
        "--target",
        str(target),
        "django-debug-toolbar==6.0.0",
        external=True,
    )
    env = {"PYTHONPATH": str(target)}
    check_django(session, sys.executable, "5.2")
    session.run(
        sys.executable,
        "-c",
        "import debug_toolbar, sys; print('django-debug-toolbar', debug_toolbar.VERSION); "
        "sys.exit(debug_toolbar.VERSION != '6.0.0')",
        env=env,
        external=True,
        silent=False,
    )
    # Toolbar 8's shadow DOM is the browser test's concern: the 6.1 leg runs it.
    args = ("-m", "pytest", "tests/panels", PANEL_BROWSER, *session.posargs)
    session.run(sys.executable, *args, env=env, external=True)


@nox.session(python=interpreter("3.12"))
def package(session: nox.Session) -> None:
    """Build the sdist and wheel, check them, and use the wheel beside Django 6.1 elsewhere."""
    session.install("build", "twine")
    dist = Path(tempfile.mkdtemp(prefix="django_pool_dist_"))
    session.run("python", "-m", "build", "--outdir", str(dist), ".")
    session.run("python", "-m", "twine", "check", "--strict", *map(str, dist.iterdir()))
    (wheel,) = dist.glob("*.whl")
    # A database of its own on the tests' server (DATABASE_URL's, or the embedded one).
    database = subprocess.run(
        [sys.executable, "-c", DATABASE],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    session.run(
        "python",
        str(ROOT / "tests" / "check_wheel.py"),
        str(wheel),
        "6.1",
        env={"CHECK_WHEEL_DATABASE": database},
    )
    shutil.rmtree(dist)


# Printed by the project's own Python, which can start the embedded server.
DATABASE = (
    "import json; from demo_project.devdb import scratch_database; "
    "print(json.dumps(scratch_database('django_pool_check_wheel')))"
)
