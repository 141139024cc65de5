"""Take docs/toolbar-panel.png and -dark.png: the toolbar's Pool panel on the demo site.

Run by hand after changing the panel: ``.venv/bin/python docs/panel_screenshot.py``. It sets
up the demo database as ``make demo`` does, serves the demo site with runserver on a free port,
opens /mistakes/slow-call/ in Debian's Chromium, opens the toolbar's Pool panel, and checks
that the panel shows its warning before it saves the picture.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import expect, sync_playwright

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(url: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def main() -> int:
    manage = [sys.executable, str(ROOT / "manage.py")]
    subprocess.run([*manage, "migrate", "--no-input", "-v", "0"], cwd=ROOT, check=True)
    port = free_port()
    server = subprocess.Popen(
        [*manage, "runserver", f"127.0.0.1:{port}", "--noreload"],
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for(base + "/")
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 820})
            page.goto(base + "/")  # a first request warms the SQL panel up (see the tests)
            page.goto(base + "/mistakes/slow-call/")
            handle = page.locator("#djShowToolBarButton")
            if handle.is_visible():  # the toolbar opens collapsed where a cookie says so
                handle.click()
            page.click("#djdt-PoolPanel a")
            panel = page.locator(".djp-panel")
            expect(panel).to_contain_text("outside the database", timeout=10_000)
            expect(panel).to_contain_text("Product.objects.order_by")
            page.screenshot(path=str(ROOT / "docs" / "toolbar-panel.png"))
            # The toolbar's theme button goes auto, then the other theme: click to dark.
            button = page.locator("#djToggleThemeButton")
            while page.locator("#djDebug").get_attribute("data-theme") != "dark":
                button.click()
            page.screenshot(path=str(ROOT / "docs" / "toolbar-panel-dark.png"))
            browser.close()
    finally:
        server.terminate()
        server.wait(10)
    print("wrote docs/toolbar-panel.png and docs/toolbar-panel-dark.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
