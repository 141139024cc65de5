"""The django-debug-toolbar panel: what the pool did for this request.

Add ``"django_pool.panels.PoolPanel"`` to ``DEBUG_TOOLBAR_PANELS``. While the toolbar
instruments a request, the ENGINE records each borrow in a context-local recorder
(``django_pool.borrows``); ``generate_stats`` turns the records into JSON-ready stats, from
which the toolbar renders the panel, now or later from its store.
"""

from __future__ import annotations

import threading
from inspect import iscoroutine

from asgiref.sync import sync_to_async
from debug_toolbar.panels import Panel
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html

from . import borrows
from .conf import get_config
from .models import can_view_pools


class PoolPanel(Panel):
    """Each borrow of the request, the pools' state before and after, and what looks wrong."""

    title = "Connection pool"
    nav_title = "Pool"
    template = "django_pool/panels/pool.html"
    is_async = True

    _recorder: borrows.BorrowRecorder | None = None
    _token = None
    _dashboard: tuple[str | None] | None = None  # the dashboard's URL, found early under ASGI

    @property
    def nav_subtitle(self) -> str:
        stats = self.get_stats()
        if not stats.get("warnings"):
            return stats.get("subtitle", "")
        # The toolbar escapes a plain string; this one is built escaped, to carry its colour.
        return format_html(
            '<span style="color: #e8a33d">{} · {} warning{}</span>',
            stats["subtitle"],
            stats["warnings"],
            "" if stats["warnings"] == 1 else "s",
        )

    def enable_instrumentation(self) -> None:
        if self._token is None:
            self._recorder = borrows.BorrowRecorder()
            self._token = borrows.start(self._recorder)

    async def aenable_instrumentation(self) -> None:
        self.enable_instrumentation()
        # Under ASGI the request's sync code (and Django's closing of its connections at the
        # end) runs in one thread of its own: learn which, to tell its borrows from others'.
        self._recorder.request_thread = await sync_to_async(threading.get_ident)()

    def process_request(self, request):
        response = super().process_request(request)
        if iscoroutine(response):  # under ASGI, as the toolbar's RedirectsPanel does
            return self._aprocess_request(request, response)
        return response

    async def _aprocess_request(self, request, response_coroutine):
        response = await response_coroutine
        # request.user may read the session from the database, which generate_stats, called
        # in the event loop, may not: ask in the request's thread, now that the user is known.
        self._dashboard = (await sync_to_async(_unrecorded_dashboard_url)(request),)
        return response

    def disable_instrumentation(self) -> None:
        if self._token is not None:
            borrows.stop(self._token)
            self._token = None

    def generate_stats(self, request, response) -> None:
        config = get_config()
        recorder = self._recorder or borrows.BorrowRecorder()
        stats = borrows.report(
            recorder,
            slow_wait_ms=config["PANEL_SLOW_WAIT_MS"],
            hold_outside_ms=config["PANEL_HOLD_OUTSIDE_MS"],
            many_borrows=config["PANEL_MANY_BORROWS"],
            near_exhaustion=config["PANEL_NEAR_EXHAUSTION"],
        )
        (url,) = self._dashboard or (_dashboard_url(request),)
        self.record_stats({**stats, "dashboard_url": url})

    def generate_server_timing(self, request, response) -> None:
        stats = self.get_stats()
        for alias in stats.get("aliases", []):
            totals = alias["totals"]
            plural = "" if totals["borrows"] == 1 else "s"
            self.record_server_timing(
                f"wait_{alias['alias']}",
                f"Pool wait {alias['alias']} ({totals['borrows']} borrow{plural})",
                totals["waited_ms"],
            )


def _unrecorded_dashboard_url(request) -> str | None:
    with borrows.paused():
        return _dashboard_url(request)


def _dashboard_url(request) -> str | None:
    """Return the admin dashboard's URL if this request's user may see it."""
    user = getattr(request, "user", None)
    if user is None or not can_view_pools(user):
        return None
    try:
        return reverse("admin:django_pool_dashboard")
    except NoReverseMatch:
        return None
