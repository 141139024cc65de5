"""The admin dashboard: who may see it and act, what it shows, and what it never shows."""

from __future__ import annotations

import contextlib
import threading
import time

import psycopg2
import pytest
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.auth.models import Permission
from django.db import OperationalError, connections
from django.test import Client, override_settings
from django.urls import reverse

from demo_project import devdb
from django_pool import registry
from django_pool.models import PoolStatus

DASHBOARD = "admin:django_pool_dashboard"
DATA = "admin:django_pool_dashboard_data"
ACTION = "admin:django_pool_dashboard_action"
HOSTILE = "<script>alert(1)</script>"
SECRET = "Pw7-never-shown-anywhere"


@pytest.fixture
def make_user(django_user_model):
    """Make a user with the given flags and django_pool permission codenames."""
    users = iter(range(1000))

    def make(*perms: str, staff: bool = True, superuser: bool = False):
        user = django_user_model.objects.create_user(
            username=f"user{next(users)}", is_staff=staff, is_superuser=superuser
        )
        user.user_permissions.add(
            *Permission.objects.filter(content_type__app_label="django_pool", codename__in=perms)
        )
        return user

    return make


@pytest.fixture
def client_for(make_user):
    """Return a Client logged in as a new user (see make_user)."""

    def make(*perms: str, csrf: bool = False, **flags) -> Client:
        client = Client(enforce_csrf_checks=csrf)
        client.force_login(make_user(*perms, **flags))
        return client

    return make


@pytest.fixture
def default_pool(db):
    """Return this process's pool of the "default" alias (borrowed from once, so it exists)."""
    connections["default"].ensure_connection()
    return registry.pools()["default"]


def action_url(alias: str, action: str, site: str = "admin") -> str:
    return reverse(
        f"{site}:django_pool_dashboard_action", kwargs={"alias": alias, "action": action}
    )


def card(body: dict, alias: str) -> dict:
    return next(card for card in body["cards"] if card["alias"] == alias)


# Who may see it


def test_anonymous_users_are_sent_to_the_admin_login(db):
    client = Client()
    for url in (reverse(DASHBOARD), reverse(DATA)):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("admin:login"))
    response = client.post(action_url("default", "close_idle"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))


def test_staff_without_the_permission_get_403_for_page_json_and_actions(client_for, default_pool):
    client = client_for()
    assert client.get(reverse(DASHBOARD)).status_code == 403
    assert client.get(reverse(DATA)).status_code == 403
    assert client.post(action_url("default", "close_idle")).status_code == 403


def test_the_change_permission_alone_shows_nothing(client_for, default_pool):
    client = client_for("change_pool")
    assert client.get(reverse(DASHBOARD)).status_code == 403
    assert client.post(action_url("default", "close_idle")).status_code == 403


def test_view_permission_shows_the_page_without_actions(client_for, default_pool):
    client = client_for("view_pool")
    response = client.get(reverse(DASHBOARD))
    assert response.status_code == 200
    assert "no-cache" in response["Cache-Control"]
    html = response.content.decode()
    assert 'id="pool-dashboard"' in html
    assert 'class="pool-card" data-alias="default"' in html
    assert "data-action=" not in html
    assert client.get(reverse(DATA)).status_code == 200
    assert client.post(action_url("default", "close_idle")).status_code == 403


def test_the_changelist_url_is_the_dashboard(client_for, default_pool):
    assert reverse("admin:django_pool_poolstatus_changelist") == reverse(DASHBOARD)
    response = client_for(superuser=True).get(reverse(DASHBOARD))
    assert response.templates[0].name == "admin/django_pool/dashboard.html"


@pytest.mark.parametrize(
    "perms, flags, shown",
    [
        (("view_pool",), {}, True),
        (("view_pool", "change_pool"), {}, True),
        ((), {"superuser": True}, True),
        ((), {}, False),
        (("change_pool",), {}, False),
    ],
)
def test_the_admin_index_lists_connection_pools_only_for_who_may_see_them(
    client_for, perms, flags, shown
):
    response = client_for(*perms, **flags).get(reverse("admin:index"))
    assert response.status_code == 200
    assert ("Connection pools" in response.content.decode()) is shown
    if shown:
        assert f'href="{reverse(DASHBOARD)}"' in response.content.decode()


def test_the_page_has_the_hooks_and_the_parts(client_for, default_pool):
    html = client_for(superuser=True).get(reverse(DASHBOARD)).content.decode()
    assert f'data-poll-url="{reverse(DATA)}" data-interval="5"' in html
    for hook in (
        'data-field="in_use"',
        'data-field="idle"',
        'data-field="max_size"',
        'data-field="waiting"',
        'data-field="requests_num"',
        'class="pool-health" data-status="ok"',
        'id="pool-pause"',
        'id="pool-refresh-status"',
        'id="pool-interval"',
        '<form method="post" action="' + action_url("default", "close_idle"),
        'data-action="close_idle"',
        'data-action="recycle"',
        "csrfmiddlewaretoken",
        "django_pool/dashboard.js",
        "django_pool/dashboard.css",
    ):
        assert hook in html, hook
    for chart in ("in_use", "waiting", "wait_p95_ms", "borrows_per_s", "errors"):
        assert f'<svg data-chart="{chart}"' in html
    assert 'data-series="in_use"' in html and 'data-series="max"' in html
    # Breadcrumbs: Home › the app › Connection pools.
    assert f'<a href="{reverse("admin:index")}">Home</a>' in html
    assert reverse("admin:app_list", kwargs={"app_label": "django_pool"}) in html
    # Without a cache, the page says how to see every process.
    assert 'DJANGO_POOL = {"CACHE": "&lt;alias of a shared cache&gt;"}' in html


# What it shows


class Held:
    """Hold every connection of a pool and queue one more borrower, as a busy process does."""

    def __init__(self, wrapper, count: int) -> None:
        self.wrappers = [wrapper.copy() for _ in range(count)]
        self.thread = threading.Thread(target=self._wait, args=(wrapper,))

    def __enter__(self) -> Held:
        for wrapper in self.wrappers:
            wrapper.ensure_connection()
        self.thread.start()
        pool = self.wrappers[0].pool
        deadline = time.monotonic() + 5
        while pool.waiting() < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        return self

    def __exit__(self, *exc_info) -> None:
        for wrapper in self.wrappers:
            wrapper.close()
        self.thread.join(timeout=10)

    def _wait(self, wrapper) -> None:
        # A wrapper of its own thread: Django's wrappers refuse to be shared between threads.
        waiter = wrapper.copy()
        try:
            waiter.ensure_connection()
        finally:
            waiter.close()


def test_a_pool_under_load_shows_its_numbers_on_the_page_and_in_json(client_for, pooled):
    wrapper = pooled(min_size=0, max_size=2, timeout=5.0)
    client = client_for("view_pool")
    with Held(wrapper, 2):
        html = client.get(reverse(DASHBOARD)).content.decode()
        body = client.get(reverse(DATA)).json()
    fields = card(body, wrapper.alias)["fields"]
    assert (fields["in_use"], fields["idle"], fields["max_size"]) == ("2", "0", "2")
    assert fields["waiting"] == "1"
    assert int(fields["requests_num"]) >= 2
    start = html.index(f'data-alias="{wrapper.alias}"')
    part = html[start : html.index("</section>", start)]
    assert 'data-field="in_use" class="pool-big">2<' in part
    assert 'data-field="waiting" class="pool-big">1<' in part
    assert 'data-field="max_size">2<' in part
    # Every connection in use: the in-use bar fills the gauge.
    assert card(body, wrapper.alias)["gauges"]["in_use"]["width"] == 100.0


def test_the_json_endpoint_has_the_cards_and_no_password(client_for, pooled):
    wrapper = pooled(min_size=0, max_size=2)
    wrapper.settings_dict["PASSWORD"] = SECRET
    # A server that trusts the client ignores the password; one that checks it refuses a
    # wrong one, and the card then shows the error: either way, never the password.
    with contextlib.suppress(OperationalError):
        wrapper.ensure_connection()
    wrapper.close()
    client = client_for(superuser=True)
    for url in (reverse(DATA), reverse(DASHBOARD)):
        for query in ("", "?server=1"):
            response = client.get(url + query)
            assert response.status_code == 200
            assert "no-cache" in response["Cache-Control"]
            assert SECRET not in response.content.decode()
    body = client.get(reverse(DATA)).json()
    pool = card(body, wrapper.alias)
    assert set(pool["charts"]) == {"in_use", "waiting", "wait_p95_ms", "borrows_per_s", "errors"}
    assert pool["health"]["status"] in {"ok", "warning", "critical"}
    assert body["servers"] is None and body["processes"] is None


def test_the_server_view_is_read_only_when_asked(client_for, default_pool):
    client = client_for(superuser=True)
    html = client.get(reverse(DASHBOARD)).content.decode()
    assert "Show server connections" in html and '<table class="pool-table"' not in html
    html = client.get(reverse(DASHBOARD) + "?server=1").content.decode()
    assert 'data-table="server"' in html
    assert "max_connections" in html
    body = client.get(reverse(DATA) + "?server=1").json()
    (server,) = [s for s in body["servers"] if "default" in s["aliases"]]
    assert server["capacity"][0]["text"].startswith("default: this process alone × max_size 4")


def test_a_hostile_application_name_is_shown_as_text(client_for, default_pool):
    settings = connections["default"].settings_dict
    hostile = psycopg2.connect(**devdb.connect_params(settings), application_name=HOSTILE)
    try:
        html = client_for(superuser=True).get(reverse(DASHBOARD) + "?server=1").content.decode()
    finally:
        hostile.close()
    assert HOSTILE not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_with_a_cache_every_process_is_listed(client_for, default_pool):
    caches = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
        "pools": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    }
    with override_settings(CACHES=caches, DJANGO_POOL={"CACHE": "pools"}):
        client = client_for(superuser=True)
        html = client.get(reverse(DASHBOARD)).content.decode()
        body = client.get(reverse(DATA)).json()
    assert 'data-table="processes"' in html
    rows = body["processes"]["rows"]
    mine = [row for row in rows if row["me"] and row["cells"][2]["text"] == "default"]
    assert mine and mine[0]["cells"][1]["text"].endswith("(this one)")


# Actions


def test_close_idle_needs_the_change_permission_and_logs_what_it_did(
    client_for, make_user, default_pool
):
    user = make_user("view_pool", "change_pool")
    client = Client()
    client.force_login(user)
    response = client.post(action_url("default", "close_idle"), follow=True)
    assert response.redirect_chain == [(reverse(DASHBOARD), 302)]
    (message,) = [str(m) for m in response.context["messages"]]
    assert message.startswith("Closed ") and "of pool “default” in process" in message
    entry = LogEntry.objects.get(user=user)
    assert entry.action_flag == CHANGE
    assert entry.object_id == "default"
    assert entry.object_repr == "pool default"
    assert entry.content_type.model_class() is PoolStatus
    assert entry.change_message == message


def test_recycle_expires_the_borrowed_connections(client_for, pooled):
    wrapper = pooled(min_size=0, max_size=2)
    wrapper.ensure_connection()  # borrowed: it closes when it comes back
    try:
        response = client_for(superuser=True).post(action_url(wrapper.alias, "recycle"))
        assert response.status_code == 302
        assert wrapper.pool.stats()["pool_in_use"] == 1
    finally:
        wrapper.close()
    assert wrapper.pool.stats()["pool_size"] == 0
    assert LogEntry.objects.get().change_message.startswith(f"Recycling pool “{wrapper.alias}”")


def test_an_action_from_the_server_view_goes_back_to_it(client_for, default_pool):
    client = client_for(superuser=True)
    html = client.get(reverse(DASHBOARD) + "?server=1").content.decode()
    assert '<input type="hidden" name="server" value="1">' in html
    response = client.post(action_url("default", "close_idle"), {"server": "1"})
    assert response["Location"] == reverse(DASHBOARD) + "?server=1"


def test_actions_need_post_a_known_alias_and_a_known_action(client_for, default_pool):
    client = client_for(superuser=True)
    assert client.get(action_url("default", "close_idle")).status_code == 405
    assert client.post(action_url("nope", "close_idle")).status_code == 404
    assert client.post(action_url("default", "drop_everything")).status_code == 404
    assert not LogEntry.objects.exists()


def test_actions_need_the_csrf_token(client_for, default_pool):
    client = client_for(superuser=True, csrf=True)
    assert client.post(action_url("default", "close_idle")).status_code == 403
    client.get(reverse(DASHBOARD))  # sets the CSRF cookie, as the page's form does
    token = client.cookies["csrftoken"].value
    response = client.post(action_url("default", "close_idle"), {"csrfmiddlewaretoken": token})
    assert response.status_code == 302
    assert LogEntry.objects.count() == 1


def test_view_only_staff_cannot_act_even_with_the_csrf_token(client_for, default_pool):
    client = client_for("view_pool", csrf=True)
    client.get(reverse(DASHBOARD))
    token = client.cookies["csrftoken"].value
    response = client.post(action_url("default", "recycle"), {"csrfmiddlewaretoken": token})
    assert response.status_code == 403
    assert not LogEntry.objects.exists()


# Another admin site


def test_a_custom_admin_site_gets_its_own_urls_links_and_redirects(client_for, default_pool):
    assert reverse("admin:django_pool_dashboard") == "/admin/django_pool/poolstatus/"
    page = reverse("ops:django_pool_dashboard")
    assert page == "/ops/django_pool/poolstatus/"
    client = client_for(superuser=True)
    html = client.get(page).content.decode()
    assert 'data-poll-url="/ops/django_pool/poolstatus/data.json"' in html
    assert 'action="/ops/django_pool/poolstatus/default/close_idle/"' in html
    assert '<a href="/ops/">Home</a>' in html
    assert client.get(reverse("ops:django_pool_dashboard_data")).status_code == 200
    response = client.post(action_url("default", "close_idle", site="ops"))
    assert response["Location"] == page


# Cheap to watch


def test_charts_the_page_already_draws_are_not_sent_again(client_for, default_pool):
    client = client_for(superuser=True)
    page = client.get(reverse(DASHBOARD)).content.decode()
    key = card(client.get(reverse(DATA)).json(), "default")["charts_key"]
    if not key:  # a young pool's first slot has not closed yet: nothing to name its charts
        default_pool._sample(default_pool._next_sample)
        key = card(client.get(reverse(DATA)).json(), "default")["charts_key"]
    assert key.startswith("default:")
    assert 'data-charts-key="' in page
    again = card(client.get(reverse(DATA), {"have": f"{key},other:1:2:3:4"}).json(), "default")
    assert again["charts"] == {} and again["charts_key"] == key
    assert again["fields"]["in_use"]  # the numbers come every time
    stale = card(client.get(reverse(DATA), {"have": "default:0:0:1:4"}).json(), "default")
    assert set(stale["charts"]) == {"in_use", "waiting", "wait_p95_ms", "borrows_per_s", "errors"}
