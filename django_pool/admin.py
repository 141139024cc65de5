"""The admin dashboard: "Connection pools" on the admin index, live numbers, charts, actions."""

from __future__ import annotations

import os
import socket
import time
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.decorators import method_decorator
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST, require_safe

from . import dashboard, registry
from .conf import get_config
from .models import PoolStatus, can_change_pools, can_view_pools
from .publish import local_entry, process_snapshots
from .server import server_views

# What the poll-interval select offers, in seconds; the first page load uses the default.
POLL_INTERVALS = (2, 5, 10, 30)
DEFAULT_POLL_INTERVAL = 5


def _close_idle(alias: str, count: int, where: str) -> str:
    plural = "s" * (count != 1)
    return f"Closed {count} idle connection{plural} of pool “{alias}” {where}."


def _recycle(alias: str, count: int, where: str) -> str:
    plural = "s" * (count != 1)
    return (
        f"Recycling pool “{alias}” {where}: {count} connection{plural}, the idle ones closed "
        "now and the borrowed ones when they are returned."
    )


# action: (pool method, button label, confirmation, what the message says it did)
ACTIONS = {
    "close_idle": (
        "close_idle",
        "Close idle connections",
        "Close the idle connections of pool “{alias}” in this process? "
        "It opens new ones as they are needed.",
        _close_idle,
    ),
    "recycle": (
        "recycle",
        "Recycle the pool",
        "Replace every connection of pool “{alias}” in this process? Idle ones close now, "
        "borrowed ones when they are returned.",
        _recycle,
    ),
}


@admin.register(PoolStatus)
class PoolStatusAdmin(admin.ModelAdmin):
    """The pools dashboard in place of a change list: there is no table to list."""

    dashboard_template = "admin/django_pool/dashboard.html"

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return can_view_pools(request.user)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return can_change_pools(request.user)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_urls(self) -> list[URLPattern]:
        wrap = self.admin_site.admin_view
        changelist = f"{self.opts.app_label}_{self.opts.model_name}_changelist"
        # Only these: the default add/change/delete views would query a table that does
        # not exist. The change list's name stays, because the admin index links to it.
        return [
            path("", wrap(self.dashboard_view), name="django_pool_dashboard"),
            path("data.json", wrap(self.data_view), name="django_pool_dashboard_data"),
            path(
                "<str:alias>/<str:action>/",
                wrap(self.action_view),
                name="django_pool_dashboard_action",
            ),
            path("", wrap(self.changelist_view), name=changelist),
        ]

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        return self.dashboard_view(request)

    @method_decorator(never_cache)
    @method_decorator(require_safe)
    def dashboard_view(self, request: HttpRequest) -> HttpResponse:
        """Render the dashboard: one card per pool of this process, the processes, the server."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        show_server = request.GET.get("server") == "1"
        data = self.dashboard_data(show_server)
        site = self.admin_site.name
        poll_url = reverse(f"{site}:django_pool_dashboard_data", current_app=site)
        page_url = reverse(f"{site}:django_pool_dashboard", current_app=site)
        can_change = self.has_change_permission(request)
        context = {
            **self.admin_site.each_context(request),
            "title": self.opts.verbose_name_plural.capitalize(),
            "opts": self.opts,
            "app_label": self.opts.app_label,
            "data": data,
            "cards": [self._card_context(card, can_change) for card in data["cards"]],
            "show_server": show_server,
            "server_url": f"{page_url}?server=1",
            "page_url": page_url,
            "poll_url": f"{poll_url}?server=1" if show_server else poll_url,
            "poll_intervals": POLL_INTERVALS,
            "poll_interval": DEFAULT_POLL_INTERVAL,
            "can_change": can_change,
        }
        request.current_app = site
        return TemplateResponse(request, self.dashboard_template, context)

    @method_decorator(never_cache)
    @method_decorator(require_safe)
    def data_view(self, request: HttpRequest) -> JsonResponse:
        """Return what the page shows, for its script to redraw."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        # The charts the page already draws ("key,key"): unchanged ones are not sent again.
        have = frozenset(key for key in request.GET.get("have", "").split(",") if key)
        return JsonResponse(self.dashboard_data(request.GET.get("server") == "1", have))

    @method_decorator(never_cache)
    @method_decorator(require_POST)
    def action_view(self, request: HttpRequest, alias: str, action: str) -> HttpResponse:
        """Run an operator action on this process's pool, log it, and go back to the page."""
        if not self.has_change_permission(request):
            raise PermissionDenied
        if action not in ACTIONS:
            raise Http404(f"no action {action!r}")
        pool = registry.pools().get(alias)
        if pool is None:
            raise Http404(f"this process has no pool {alias!r}")
        method, _, _, describe = ACTIONS[action]
        count = getattr(pool, method)()
        message = describe(alias, count, _this_process())
        LogEntry.objects.create(
            user_id=request.user.pk,
            content_type_id=ContentType.objects.get_for_model(
                PoolStatus, for_concrete_model=False
            ).pk,
            object_id=alias,
            object_repr=f"pool {alias}"[:200],
            action_flag=CHANGE,
            change_message=message,
        )
        messages.success(request, message)
        site = self.admin_site.name
        page = reverse(f"{site}:django_pool_dashboard", current_app=site)
        # Back to the page as it was: with the server's connections if they were shown.
        return HttpResponseRedirect(
            page + ("?server=1" if request.POST.get("server") == "1" else "")
        )

    def dashboard_data(
        self, show_server: bool, have: frozenset[str] = frozenset()
    ) -> dict[str, Any]:
        """Return ``dashboard.build()`` for this process now (with the server's view if asked)."""
        local = {alias: pool.snapshot() for alias, pool in registry.pools().items()}
        # Entries change once per PUBLISH_INTERVAL: dashboards open in many tabs share a read
        # of up to half that ago (at most 5 s) rather than each loading every entry again.
        config = get_config()
        max_age = min(5.0, config["PUBLISH_INTERVAL"] / 2)
        processes = None
        if config["CACHE"] is not None:
            processes = process_snapshots(max_age, own=local_entry(local))
        return dashboard.build(
            local,
            processes=processes,
            servers=server_views(sorted(local)) if show_server else None,
            now=time.time(),
            tz=timezone.get_current_timezone(),
            host=socket.gethostname(),
            pid=os.getpid(),
            have=have,
        )

    def _card_context(self, card: dict[str, Any], can_change: bool) -> dict[str, Any]:
        site = self.admin_site.name
        actions = []
        if can_change:
            for name, (_, label, confirm, _) in ACTIONS.items():
                url = reverse(
                    f"{site}:django_pool_dashboard_action",
                    kwargs={"alias": card["alias"], "action": name},
                    current_app=site,
                )
                actions.append(
                    {
                        "name": name,
                        "label": label,
                        "confirm": confirm.format(alias=card["alias"]),
                        "url": url,
                    }
                )
        return {**card, "actions": actions}


def _this_process() -> str:
    return f"in process {os.getpid()} on {socket.gethostname()}"
