"""Take docs/dashboard-light.png and docs/dashboard-dark.png: the admin dashboard under load.

Run by hand after changing the page: ``.venv/bin/python docs/screenshots.py``. It runs the
browser test with ``DJANGO_POOL_SCREENSHOTS=1``, which adds a minute of changing load so that
the charts have some history; ``DATABASE_URL`` is used when set, as by the tests.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    env = {**os.environ, "DJANGO_POOL_SCREENSHOTS": "1"}
    command = [sys.executable, "-m", "pytest", "-q", "tests/test_dashboard_browser.py"]
    return subprocess.run(command, cwd=ROOT, env=env).returncode


if __name__ == "__main__":
    sys.exit(main())
