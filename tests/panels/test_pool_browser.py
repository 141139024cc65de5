"""PoolPanel in a real browser: the toolbar's JavaScript fetches it, its styles apply.

From django-debug-toolbar 7.0 the toolbar lives in a shadow DOM that no outside stylesheet
reaches, so the panel's template carries its styles; this checks that they apply there.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.conf import settings
from django.contrib.staticfiles.handlers import StaticFilesHandler
from django.test import override_settings
from django.test.testcases import LiveServerThread
from playwright.sync_api import expect, sync_playwright

from tests.test_dashboard_browser import CHROMIUM, CHROMIUM_ARGS, require_chromium

pytestmark = pytest.mark.django_db(transaction=True)

TOOLBAR = "debug_toolbar.middleware.DebugToolbarMiddleware"
WARNING_COLOUR = "rgb(163, 82, 0)"  # --djp-warn in the light theme


@pytest.fixture
def toolbar_server() -> Iterator[str]:
    """Serve the test URLs with the toolbar in a server thread of this process."""
    # A server of its own: pytest-django's live_server loaded its middleware at start.
    middleware = [TOOLBAR, *settings.MIDDLEWARE]
    hosts = [*settings.ALLOWED_HOSTS, "127.0.0.1"]
    with override_settings(DEBUG=True, MIDDLEWARE=middleware, ALLOWED_HOSTS=hosts):
        server = LiveServerThread("127.0.0.1", StaticFilesHandler, port=0)
        server.daemon = True
        server.start()
        server.is_ready.wait()
        if server.error:
            raise server.error
        try:
            yield f"http://127.0.0.1:{server.port}"
        finally:
            server.terminate()


def test_the_panel_opens_in_the_toolbar_with_its_warning_and_styles(toolbar_server):
    require_chromium()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.set_default_timeout(10_000)
        page.goto(toolbar_server + "/panel/borrows/1/")  # the SQL panel's first query: warm up
        page.goto(toolbar_server + "/panel/hold/?ms=150")
        handle = page.locator("#djShowToolBarButton")
        if handle.is_visible():
            handle.click()
        subtitle = page.locator("#djdt-PoolPanel small span")
        expect(subtitle).to_contain_text("default: 1 borrow, held")
        expect(subtitle).to_contain_text("1 warning")
        page.click("#djdt-PoolPanel a")
        warning = page.locator(".djp-panel .djp-warnings li")
        expect(warning).to_contain_text("outside the database")
        expect(warning).to_contain_text("tests/panels/views.py")
        # The panel's own <style> reached it, wherever the toolbar renders (shadow DOM or not).
        assert warning.evaluate("element => getComputedStyle(element).color") == WARNING_COLOUR
        expect(page.locator(".djp-panel table")).to_have_count(2)
        browser.close()
