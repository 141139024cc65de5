"""PoolPanel, the django-debug-toolbar pattern: requests through DebugToolbarMiddleware.

Each request goes through the toolbar with the panel's instrumentation on, then the test reads
the panel's stats, renders it again from the toolbar's store (as the browser asks for it), and
parses the HTML. Views are in ``tests/panels/views.py``.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import threading
import time

import html5lib
import pytest
from asgiref.sync import ThreadSensitiveContext, sync_to_async
from debug_toolbar.toolbar import DebugToolbar
from django.conf import settings
from django.contrib.auth.models import User
from django.db import connection, connections
from django.test import AsyncClient, Client, RequestFactory, override_settings

from django_pool import borrows
from django_pool.panels import PoolPanel
from tests.panels import views

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "other"])

TOOLBAR = "debug_toolbar.middleware.DebugToolbarMiddleware"
SQL_PANEL = "debug_toolbar.panels.sql.SQLPanel"
POOL_PANEL = "django_pool.panels.PoolPanel"


_warm = []


@pytest.fixture(autouse=True)
def toolbar_on():
    # Django's test client keeps a thread's connection across requests (it disconnects
    # close_old_connections): give it back so that each request borrows as under a server.
    connections.close_all()
    with override_settings(DEBUG=True, MIDDLEWARE=[TOOLBAR, *settings.MIDDLEWARE]):
        if not _warm:
            # The SQL panel's first query in a process reads the source of every frame of
            # its stack (about 0.1 s), inside our borrow: once, before the measured requests.
            get("/panel/borrows/1/")
            _warm.append(True)
        yield
    connections.close_all()


_toolbar: contextvars.ContextVar[DebugToolbar | None] = contextvars.ContextVar("toolbar")


def _remember(sender, toolbar=None, **kwargs):
    _toolbar.set(toolbar)


def get(path: str, client: Client | None = None):
    """GET through the toolbar; return the response, with the request's toolbar attached."""
    _toolbar.set(None)
    DebugToolbar._created.connect(_remember)
    try:
        response = (client or Client()).get(path)
    finally:
        DebugToolbar._created.disconnect(_remember)
    connections.close_all()
    response.toolbar = _toolbar.get()
    return response


async def aget(path: str, client: AsyncClient | None = None):
    """GET through the toolbar under ASGI, in this task's context."""
    _toolbar.set(None)
    # Each request's sync code in a thread of its own, as Django's ASGIHandler runs it (the
    # test client's handler does not).
    async with ThreadSensitiveContext():
        response = await (client or AsyncClient()).get(path)
        # Django's ASGIHandler gives the request thread's connections back when the request
        # finishes; its test client does not: close them in that thread, as get() does.
        await sync_to_async(connections.close_all)()
    response.toolbar = _toolbar.get()
    return response


def stats(response) -> dict:
    return response.toolbar.get_panel_by_id("PoolPanel").get_stats()


def alias_stats(response, alias: str = "default") -> dict:
    (found,) = [entry for entry in stats(response)["aliases"] if entry["alias"] == alias]
    return found


def assert_valid_html(content: str) -> None:
    parser = html5lib.HTMLParser()
    parser.parseFragment(content)
    assert not parser.errors, parser.errors


def stored_content(response, client: Client | None = None) -> str:
    """Render the panel from the store, as the toolbar's JavaScript asks for it."""
    reply = (client or Client()).get(
        "/__debug__/render_panel/",
        {"request_id": response.toolbar.request_id, "panel_id": "PoolPanel"},
    )
    assert reply.status_code == 200
    return reply.json()["content"]


def test_records_each_borrow_in_order():
    response = get("/panel/borrows/3/")
    assert response.status_code == 200
    entry = alias_stats(response)
    assert [borrow["queries"] for borrow in entry["borrows"]] == [1, 1, 1]
    for borrow in entry["borrows"]:
        assert borrow["returned"] and borrow["how"] in {"reused", "opened", "checked"}
        assert isinstance(borrow["pid"], int)
        assert borrow["held_ms"] >= borrow["query_ms"] > 0
        assert borrow["where"]["file"].endswith("tests/panels/views.py")
        assert borrow["where"]["code"] == "list(Item.objects.all()[:1])"
        assert not (borrow["rollback"] or borrow["restore"] or borrow["broken"])
    assert entry["totals"]["borrows"] == 3 and entry["totals"]["queries"] == 3
    assert entry["before"]["max_size"] == 4 and entry["after"]["in_use"] == 0
    assert entry["health"]["status"] in {"ok", "warning", "critical"}
    assert entry["warnings"] == []
    subtitle = response.toolbar.get_panel_by_id("PoolPanel").nav_subtitle
    assert subtitle.startswith("default: 3 borrows, held ") and subtitle.endswith(" ms")
    assert "<span" not in subtitle  # no warning colour


def test_the_stats_survive_the_store_and_render_valid_html():
    response = get("/panel/hold/?ms=120")
    before = stats(response)
    # The toolbar's stores keep JSON: the panel must render from what JSON gives back.
    assert json.loads(json.dumps(before)) == before
    stored = response.toolbar.store.panel(response.toolbar.request_id, "PoolPanel")
    assert stored == before
    content = stored_content(response)
    assert_valid_html(content)
    assert "<style>" in content  # its styles come with it into the toolbar's shadow DOM
    assert "held" in content and "views.py" in content
    assert "Item.objects.count()" in content
    # The toolbar shows the nav subtitle in the page it inserts the toolbar into.
    assert "default: 1 borrow, held" in response.content.decode()


def test_server_timing_has_the_pool_wait():
    response = get("/panel/borrows/2/")
    waited = alias_stats(response)["totals"]["waited_ms"]
    assert (
        f'PoolPanel_wait_default;dur={waited};desc="Pool wait default (2 borrows)"'
        in response["Server-Timing"]
    )


def test_a_connection_held_through_a_slow_call_is_flagged_with_its_line():
    response = get("/panel/hold/?ms=150")
    (borrow,) = alias_stats(response)["borrows"]
    assert borrow["held_ms"] >= 150 and borrow["query_ms"] < 100
    (warning,) = alias_stats(response)["warnings"]
    assert f"held {borrow['held_ms']:g} ms, queries {borrow['query_ms']:g} ms" in warning
    assert "outside the database" in warning
    assert 'With OPTIONS["pool"]["release"] = "transaction" the connection' in warning
    assert f"tests/panels/views.py:{borrow['where']['line']} (hold)" in warning
    subtitle = response.toolbar.get_panel_by_id("PoolPanel").nav_subtitle
    assert "<span style=" in subtitle and "1 warning" in subtitle


def test_release_per_transaction_shows_each_borrow_and_no_slow_call(per_transaction):
    response = get("/panel/hold/?ms=150")
    entry = alias_stats(response)
    (borrow,) = entry["borrows"]
    assert entry["release"] == "transaction"
    assert borrow["held_ms"] < 150 and borrow["returned"]
    assert entry["warnings"] == []
    response = get("/panel/borrows/10/")
    entry = alias_stats(response)
    assert len(entry["borrows"]) == 10 and entry["warnings"] == []
    assert "release: transaction" in stored_content(response)
    response = get("/panel/set-time-zone/")
    (warning,) = alias_stats(response)["warnings"]
    assert 'with release="transaction" they do not carry to the next query' in warning


def test_a_wait_on_an_exhausted_pool_is_flagged():
    # 'other' has max_size 2: two threads hold both connections for 0.4 s.
    held, go = threading.Barrier(3), threading.Event()

    def hold():
        with connections["other"].cursor() as cursor:
            cursor.execute("SELECT 1")
        held.wait(10)
        go.wait(10)
        time.sleep(0.4)
        connections["other"].close()

    holders = [threading.Thread(target=hold) for _ in range(2)]
    for thread in holders:
        thread.start()
    held.wait(10)
    go.set()
    response = get("/panel/other/")
    for thread in holders:
        thread.join()
    entry = alias_stats(response, "other")
    (borrow,) = entry["borrows"]
    assert borrow["waited_ms"] >= 200
    waited, exhausted = entry["warnings"]
    assert f"Borrow 1 waited {borrow['waited_ms']} ms for a connection (over 20 ms)" in waited
    assert "2 of 2 were in use when it asked" in waited
    assert "near exhaustion: up to 2 of 2 connections in use" in exhausted


def test_a_transaction_left_open_is_flagged():
    response = get("/panel/leave-transaction/")
    (borrow,) = alias_stats(response)["borrows"]
    assert borrow["rollback"] and borrow["returned"]
    (warning,) = alias_stats(response)["warnings"]
    assert "given back with a transaction open: the pool rolled it back" in warning
    assert "transaction open: rolled back" in stored_content(response)


def test_changed_session_settings_are_shown_restored():
    response = get("/panel/set-time-zone/")
    (borrow,) = alias_stats(response)["borrows"]
    assert borrow["restore"] and not borrow["rollback"] and borrow["returned"]
    assert alias_stats(response)["warnings"] == []
    assert "session settings changed: restored" in stored_content(response)
    # The next borrower gets the connection with the time zone set back.
    with connection.cursor() as cursor:
        cursor.execute("SHOW TIME ZONE")
        assert cursor.fetchone()[0] == "UTC"


def test_many_borrows_are_flagged():
    response = get("/panel/borrows/10/")
    (warning,) = alias_stats(response)["warnings"]
    assert warning.startswith("10 borrows in one request")


def test_a_connection_still_borrowed_by_another_thread_is_flagged():
    views.release.clear()
    try:
        response = get("/panel/leak/")
        entry = alias_stats(response)
        (borrow,) = entry["borrows"]
        assert not borrow["returned"] and not borrow["request_thread"]
        (warning,) = entry["warnings"]
        assert f"(thread {borrow['thread']}) was still borrowed when the response left" in warning
        assert "not yet (thread" in stored_content(response)
    finally:
        views.release.set()


def test_the_request_threads_connection_is_not_flagged():
    # Borrowed by the request's own thread, given back by Django when the request ends.
    client = Client()
    with override_settings(DEBUG=True):
        _toolbar.set(None)
        DebugToolbar._created.connect(_remember)
        try:
            response = client.get("/panel/hold/?ms=0")
        finally:
            DebugToolbar._created.disconnect(_remember)
        response.toolbar = _toolbar.get()
    (borrow,) = alias_stats(response)["borrows"]
    assert not borrow["returned"] and borrow["request_thread"]
    assert alias_stats(response)["warnings"] == []
    assert "at the end of the request" in stored_content(response)


def test_concurrent_threads_see_only_their_own_borrows():
    counts = [1, 2, 3, 4, 5, 6]
    results: dict[int, dict] = {}
    start = threading.Barrier(len(counts))

    def request(count: int):
        start.wait(10)
        response = get(f"/panel/borrows/{count}/?hold=30")
        results[count] = {
            "stats": alias_stats(response),
            "thread": threading.current_thread().name,
        }

    threads = [threading.Thread(target=request, args=(count,)) for count in counts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for count in counts:
        entry = results[count]["stats"]
        assert entry["totals"]["borrows"] == count
        assert {borrow["thread"] for borrow in entry["borrows"]} == {results[count]["thread"]}


def test_concurrent_async_tasks_see_only_their_own_borrows():
    counts = [1, 2, 3, 4]

    async def main():
        DebugToolbar._created.connect(_remember)
        try:
            return await asyncio.gather(*(aget(f"/panel/async/{count}/") for count in counts))
        finally:
            DebugToolbar._created.disconnect(_remember)

    responses = asyncio.run(main())
    for count, response in zip(counts, responses, strict=True):
        assert response.status_code == 200
        entry = alias_stats(response)
        assert entry["totals"]["borrows"] == count, entry
        assert all(borrow["returned"] and borrow["request_thread"] for borrow in entry["borrows"])
        # Four requests at once may well have all four connections in use: that one is fair.
        assert [w for w in entry["warnings"] if "near exhaustion" not in w] == []


@override_settings(DEBUG_TOOLBAR_PANELS=[POOL_PANEL])
def test_the_panel_alone():
    response = get("/panel/borrows/2/")
    assert [panel.panel_id for panel in response.toolbar.enabled_panels] == ["PoolPanel"]
    assert alias_stats(response)["totals"]["borrows"] == 2
    assert_valid_html(stored_content(response))


@override_settings(DEBUG_TOOLBAR_PANELS=[SQL_PANEL, POOL_PANEL])
def test_beside_the_sql_panel_both_count_the_same_queries():
    response = get("/panel/borrows/3/")
    sql = response.toolbar.get_panel_by_id("SQLPanel").get_stats()
    sql_queries = [query for query in sql["queries"] if query["alias"] == "default"]
    assert alias_stats(response)["totals"]["queries"] == len(sql_queries) == 3


def test_dashboard_link_only_for_users_who_may_see_it():
    anonymous = get("/panel/borrows/1/")
    assert stats(anonymous)["dashboard_url"] is None
    assert "pool dashboard" not in stored_content(anonymous)
    admin = User.objects.create_superuser("root", password="pw")
    client = Client()
    client.force_login(admin)
    connections.close_all()
    response = get("/panel/borrows/1/", client)
    assert stats(response)["dashboard_url"] == "/admin/django_pool/poolstatus/"
    assert 'href="/admin/django_pool/poolstatus/"' in stored_content(response, client)


def noop(request):
    return None


def test_dashboard_link_under_asgi_for_a_signed_in_user():
    # request.user reads the session from the database: not in the event loop.
    signed_in = Client()
    signed_in.force_login(User.objects.create_superuser("root", password="pw"))
    client = AsyncClient()
    client.cookies["sessionid"] = signed_in.cookies["sessionid"].value

    async def main():
        DebugToolbar._created.connect(_remember)
        try:
            return await aget("/panel/async/1/", client)
        finally:
            DebugToolbar._created.disconnect(_remember)

    response = asyncio.run(main())
    assert response.status_code == 200
    assert stats(response)["dashboard_url"] == "/admin/django_pool/poolstatus/"
    assert alias_stats(response)["totals"]["borrows"] == 1


def test_instrumentation_is_idempotent_and_does_not_leak():
    panel = PoolPanel(DebugToolbar(RequestFactory().get("/"), noop), noop)
    panel.enable_instrumentation()
    recorder = borrows.current()
    panel.enable_instrumentation()
    assert borrows.current() is recorder is not None
    connection.ensure_connection()
    connection.close()
    assert len(recorder.borrows) == 1
    panel.disable_instrumentation()
    panel.disable_instrumentation()
    assert borrows.current() is None
    connection.ensure_connection()
    assert connection._borrow is None and connection.execute_wrappers == []
    connection.close()
    assert len(recorder.borrows) == 1


def test_requests_in_one_thread_do_not_share_records():
    first = get("/panel/borrows/2/")
    second = get("/panel/borrows/1/")
    assert alias_stats(first)["totals"]["borrows"] == 2
    assert alias_stats(second)["totals"]["borrows"] == 1


def test_a_users_execute_wrapper_keeps_working_around_a_recorded_borrow():
    panel = PoolPanel(DebugToolbar(RequestFactory().get("/"), noop), noop)
    seen = []

    def mine(execute, sql, params, many, context):
        seen.append(sql)
        return execute(sql, params, many, context)

    panel.enable_instrumentation()
    try:
        # The cursor borrows inside the user's block.
        with connection.execute_wrapper(mine), connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        assert connection.execute_wrappers == [connection._borrow]
        with connection.cursor() as cursor:
            cursor.execute("SELECT 2")
        connection.close()
        assert seen == ["SELECT 1"]
        assert connection.execute_wrappers == []
    finally:
        panel.disable_instrumentation()


def test_a_wrapper_made_by_hand_is_recorded_as_not_the_requests(pooled):
    wrapper = pooled(min_size=0, max_size=1)  # an alias that is not in DATABASES
    panel = PoolPanel(DebugToolbar(RequestFactory().get("/"), noop), noop)
    panel.enable_instrumentation()
    try:
        with wrapper.cursor() as cursor:
            cursor.execute("SELECT 1")
        (borrow,) = borrows.current().borrows
        assert borrow.alias == wrapper.alias and not borrow.request_thread
        assert borrow.queries == 1
    finally:
        wrapper.close()
        panel.disable_instrumentation()
