"""Views that the backend tests call through a real WSGI server."""

from django.db import connection, transaction
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
