"""Views that borrow in the ways the PoolPanel tests need, and the toolbar's show callback."""

import contextvars
import threading
import time

from asgiref.sync import sync_to_async
from django.db import connection, connections
from django.http import HttpResponse

from tests.testapp.models import Item

PAGE = "<!DOCTYPE html><html><head><title>t</title></head><body>{}</body></html>"

# Set by a test to let the borrowing thread of leak_in_thread give its connection back.
release = threading.Event()


def show_toolbar(request) -> bool:
    return True


def page(text) -> HttpResponse:
    return HttpResponse(PAGE.format(text))


def borrows(request, count: int):
    """Borrow ``count`` times, one query each, holding each connection ``hold`` ms."""
    hold = float(request.GET.get("hold", 0)) / 1000.0
    for _ in range(count):
        list(Item.objects.all()[:1])
        time.sleep(hold)
        connection.close()
    return page(f"{count} borrows")


def hold(request):
    """Run one query, then sleep while holding the connection (a slow external call)."""
    Item.objects.count()
    time.sleep(float(request.GET.get("ms", 150)) / 1000.0)
    return page("held")


def other(request):
    """Borrow from the 'other' alias (max_size 2)."""
    with connections["other"].cursor() as cursor:
        cursor.execute("SELECT 1")
    return page("other")


def leave_transaction(request):
    """Open a transaction behind Django's back and give the connection back with it open."""
    with connection.cursor() as cursor:
        cursor.execute("BEGIN")
        cursor.execute("SELECT 1")
    connection.close()
    return page("left open")


def set_time_zone(request):
    """Change a session setting the server reports, and give the connection back."""
    with connection.cursor() as cursor:
        cursor.execute("SET TIME ZONE 'Asia/Tokyo'")
    connection.close()
    return page("time zone set")


def leak_in_thread(request):
    """Borrow in another thread (with this request's context) that gives it back later."""
    borrowed = threading.Event()

    def borrow_and_hold():
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        borrowed.set()
        release.wait(10)
        connection.close()

    context = contextvars.copy_context()
    threading.Thread(target=context.run, args=(borrow_and_hold,)).start()
    borrowed.wait(10)
    return page("leaked")


def _give_back() -> None:
    connection.close()  # looked up in the thread that runs it, where the ORM borrowed


async def async_borrows(request, count: int):
    """Borrow ``count`` times through the async ORM, giving each back."""
    for _ in range(count):
        await Item.objects.acount()
        await sync_to_async(_give_back)()
    return page(f"{count} async borrows")
