"""The pool dashboard in a real browser (Debian's Chromium, driven by Playwright).

``DJANGO_POOL_SCREENSHOTS=1`` also saves docs/dashboard-light.png and docs/dashboard-dark.png
(``python docs/screenshots.py`` does that); without it the test leaves the tree alone.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.db import connections
from django.urls import reverse
from playwright.sync_api import Page, expect, sync_playwright

from django_pool import registry

CHROMIUM = "/usr/bin/chromium"
# As root in a container Chromium's sandbox cannot start; there is no GPU either.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu"]
USERNAME, PASSWORD = "pool-admin", "browser-test-password"
DOCS = Path(__file__).resolve().parent.parent / "docs"

INTERVAL_S = 2  # the shortest the page offers, to keep the test short
CARD = 'section.pool-card[data-alias="default"]'
# The in-use line (not the max_size line beside it, which stays put).
CHART = f'{CARD} svg[data-chart="in_use"] polyline[data-series="in_use"]'


def require_chromium() -> None:
    """Skip outside CI when Debian's Chromium is missing; fail in CI (make test installs it)."""
    if not os.path.exists(CHROMIUM):
        reason = f"needs Debian's Chromium at {CHROMIUM} (make browser installs it)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)


def log_in(page: Page) -> None:
    """Log in through the admin's own login form, as a person would."""
    page.goto("/admin/login/?next=/admin/")
    page.fill("#id_username", USERNAME)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    expect(page.locator("#user-tools")).to_contain_text(USERNAME)


@pytest.fixture
def superuser(live_server, django_user_model):
    """Create the superuser the browser logs in as (before Playwright starts: see admin_page)."""
    return django_user_model.objects.create_superuser(USERNAME, "admin@example.com", PASSWORD)


@pytest.fixture
def admin_page(superuser, live_server) -> Iterator[Page]:
    """Yield a page of a fresh browser, logged in to the live server's admin as a superuser."""
    require_chromium()
    # Playwright's sync API keeps an event loop running in this thread, and Django refuses
    # the ORM where a loop runs; so the browser lives only inside this fixture, after the
    # user is created and before pytest-django flushes the database.
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(
            base_url=live_server.url, viewport={"width": 1280, "height": 900}
        )
        context.set_default_timeout(10_000)  # a broken page fails in seconds, not 30 s each
        page = context.new_page()
        log_in(page)
        yield page
        browser.close()


class Load:
    """Borrow from the "default" pool in threads until stopped, as concurrent requests do.

    The live server runs in this process, so the dashboard shows this very pool.
    """

    def __init__(self, threads: int = 2, hold_s: float = 0.2) -> None:
        self.hold_s = hold_s
        self.stopped = threading.Event()
        self.errors: list[BaseException] = []
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stopped.set()
        for thread in self.threads:
            thread.join(timeout=10)
        assert not self.errors, self.errors

    def _run(self) -> None:
        # A wrapper of its own: Django's wrappers refuse to be shared between threads.
        wrapper = connections["default"].copy()
        try:
            while not self.stopped.is_set():
                self._borrow(wrapper)
        except Exception as error:  # noqa: BLE001 - reported by __exit__ in the test's thread
            self.errors.append(error)
        finally:
            wrapper.close()

    def _borrow(self, wrapper) -> None:
        with wrapper.cursor() as cursor:
            cursor.execute("SELECT pg_sleep(%s)", [self.hold_s])
        wrapper.close()  # back to the pool, as at the end of a request
        self.stopped.wait(self.hold_s / 2)


def borrows_served() -> int:
    """Return the "default" pool's borrow count, read in Python rather than from the page."""
    return registry.pools()["default"].snapshot()["stats"]["requests_num"]


class Polls:
    """Count the page's requests to the JSON endpoint: started, and not yet finished."""

    def __init__(self, page: Page) -> None:
        self.url = reverse("admin:django_pool_dashboard_data")
        self.started = self.in_flight = 0
        page.on("request", self._started)
        page.on("requestfinished", self._ended)
        page.on("requestfailed", self._ended)

    def _is_poll(self, request) -> bool:
        return urlsplit(request.url).path == self.url

    def _started(self, request) -> None:
        if self._is_poll(request):
            self.started += 1
            self.in_flight += 1

    def _ended(self, request) -> None:
        if self._is_poll(request):
            self.in_flight -= 1

    def settle(self, page: Page) -> None:
        """Wait until no poll is under way and the last one's answer is drawn."""
        # Playwright delivers the events while it waits, so wait in small steps.
        for _ in range(100):
            if not self.in_flight:
                break
            page.wait_for_timeout(50)
        assert not self.in_flight, "a poll never finished"
        page.wait_for_timeout(200)  # the script parses and draws after the body arrives


def wait_for_new_points(page: Page, before: str | None) -> None:
    """Wait until the line is redrawn (its first point comes when a 10 s history slot ends)."""
    page.wait_for_function(
        "([line, before]) => document.querySelector(line).getAttribute('points') !== before",
        arg=[CHART, before],
        timeout=15_000,
    )


def check_updates_without_reload(page: Page) -> None:
    """The numbers and a chart change by polling, while the page stays the same document."""
    page.evaluate("window.__marker = 1")  # a reload or a navigation would drop it
    borrows = page.locator(f'{CARD} [data-field="requests_num"]')
    number, points = borrows.inner_text(), page.locator(CHART).get_attribute("points")
    expect(borrows).not_to_have_text(number, timeout=10_000)
    wait_for_new_points(page, points)
    assert page.evaluate("window.__marker") == 1


def check_pause_and_resume(page: Page, polls: Polls) -> None:
    """Paused, the page stops polling for over two intervals while the pool keeps working."""
    borrows = page.locator(f'{CARD} [data-field="requests_num"]')
    pause = page.locator("#pool-pause")
    pause.click()
    polls.settle(page)  # a poll under way when the button was pressed still lands
    held, started, served = borrows.inner_text(), polls.started, borrows_served()
    page.wait_for_timeout(2.25 * INTERVAL_S * 1000)
    assert borrows_served() > served, "the load stopped: the pause would prove nothing"
    assert polls.started == started, "the page polled while paused"
    expect(borrows).to_have_text(held)
    expect(page.locator("#pool-refresh-status")).to_contain_text("paused", ignore_case=True)
    pause.click()
    expect(borrows).not_to_have_text(held, timeout=INTERVAL_S * 1000 + 3_000)


def close_idle(page: Page) -> None:
    """Run the "close idle" action: accept the confirmation, land back with a success message."""
    page.once("dialog", lambda dialog: dialog.accept())
    page.locator(f'{CARD} form[data-action="close_idle"] [type=submit]').click()
    expect(page.locator("ul.messagelist li.success")).to_contain_text("idle connection")
    expect(page.locator(CARD)).to_be_visible()


def save_screenshots(page: Page) -> None:
    """Save the dashboard light and dark, full page, after a minute of changing load."""
    # Each phase (extra borrowers, seconds) fills a history slot or so, giving the charts a shape;
    # eight borrowers beside the test's two make some wait for the pool's four connections.
    for threads, seconds in ((1, 10), (4, 10), (8, 10), (2, 10), (6, 10), (0, 10)):
        with Load(threads=threads):
            page.wait_for_timeout(seconds * 1000)
    for scheme in ("light", "dark"):
        page.emulate_media(color_scheme=scheme)
        page.screenshot(path=DOCS / f"dashboard-{scheme}.png", full_page=True)
    page.emulate_media(color_scheme="light")


def test_dashboard_updates_live_pauses_and_closes_idle(admin_page):
    page = admin_page
    polls = Polls(page)
    page.goto(reverse("admin:django_pool_dashboard"))
    page.select_option("#pool-interval", str(INTERVAL_S))
    with Load():
        check_updates_without_reload(page)
        if os.environ.get("DJANGO_POOL_SCREENSHOTS") == "1":
            save_screenshots(page)
        check_pause_and_resume(page, polls)
    close_idle(page)
