"""Views that the tests call through a real server: WSGI (live_server) and ASGI (uvicorn)."""

import asyncio
import os

from asgiref.sync import sync_to_async
from django.db import connection, connections, transaction
from django.http import JsonResponse

from tests.testapp.models import Item


def _backend_pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def items(request):
    """Create an item and count them with the ORM."""
    Item.objects.create(name="from-view")
    return JsonResponse({"count": Item.objects.count(), "pid": _backend_pid()})


def leave_transaction(request):
    """Open a transaction behind Django's back and return without ending it."""
    with connection.cursor() as cursor:
        cursor.execute("BEGIN")
        cursor.execute("INSERT INTO testapp_item (name, quantity) VALUES ('leaked', 1)")
    return JsonResponse({"pid": _backend_pid()})


def session_state(request):
    """Report what the next borrower sees of the connection."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM testapp_item WHERE name = 'leaked'")
        leaked = cursor.fetchone()[0]
        cursor.execute("SELECT now() = statement_timestamp()")
        fresh_transaction = cursor.fetchone()[0]
    return JsonResponse({"pid": _backend_pid(), "leaked": leaked, "fresh": fresh_transaction})


def mixed(request):
    """Count, write two items in an atomic block, count again: three borrows per transaction."""
    before = Item.objects.count()
    with transaction.atomic():
        Item.objects.create(name="mixed-1")
        Item.objects.create(name="mixed-2")
        inside = Item.objects.count()
    return JsonResponse({"before": before, "inside": inside, "after": Item.objects.count()})


@transaction.non_atomic_requests
def atomic_request(request):
    """Write inside transaction.atomic, fail, and report that nothing was written."""
    try:
        with transaction.atomic():
            Item.objects.create(name="rolled-back")
            raise RuntimeError("roll back")
    except RuntimeError:
        pass
    return JsonResponse({"count": Item.objects.filter(name="rolled-back").count()})


def set_time_zone(request):
    """Change a reported session setting outside any transaction, and keep the connection."""
    with connection.cursor() as cursor:
        cursor.execute("SET TIME ZONE 'Asia/Tokyo'")
    return JsonResponse({"pid": _backend_pid()})


def time_zone(request):
    """Report the session's time zone as the next borrower sees it."""
    with connection.cursor() as cursor:
        cursor.execute("SHOW TIME ZONE")
        zone = cursor.fetchone()[0]
    return JsonResponse({"pid": _backend_pid(), "zone": zone})


async def async_count(request):
    """Count items with the async ORM."""
    return JsonResponse({"count": await Item.objects.acount()})


async def async_item(request, pk: int):
    """Read one item with the async ORM."""
    item = await Item.objects.aget(pk=pk)
    return JsonResponse({"name": item.name, "quantity": item.quantity})


async def async_create(request):
    """Create an item with the async ORM."""
    item = await Item.objects.acreate(name="from-async", quantity=1)
    return JsonResponse({"id": item.pk})


async def async_await_between_queries(request):
    """Query, give the event loop to others for ``?seconds=`` (default 5 ms), query again."""
    # With release="request" the connection stays borrowed across the await, until the
    # request ends; with release="transaction" it goes back after each query.
    before = await Item.objects.acount()
    await asyncio.sleep(float(request.GET.get("seconds", 0.005)))
    return JsonResponse({"before": before, "after": await Item.objects.acount()})


async def async_in_executor_thread(request):
    """Count in a thread of the event loop's executor; close the connection there if ``?close``."""

    def count() -> int:
        try:
            return Item.objects.count()
        finally:
            if "close" in request.GET:
                connection.close()

    # thread_sensitive=False: not the request's thread, which Django's request_finished closes.
    return JsonResponse({"count": await sync_to_async(count, thread_sensitive=False)()})


def pool_stats(request):
    """Report this process's pid, driver and default pool's stats (reading them borrows nothing)."""
    wrapper = connections["default"]
    return JsonResponse(
        {"pid": os.getpid(), "driver": wrapper.Database.__name__, **wrapper.pool.stats()}
    )
