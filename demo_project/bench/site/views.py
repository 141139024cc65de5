"""The two benchmark views: one ``SELECT 1``, or nothing at all (the ceiling)."""

from __future__ import annotations

from django.db import connection
from django.http import HttpRequest, HttpResponse


def db(request: HttpRequest) -> HttpResponse:
    """Run one query and answer with its result."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        (value,) = cursor.fetchone()
    return HttpResponse(str(value), content_type="text/plain")


def nodb(request: HttpRequest) -> HttpResponse:
    """Answer without touching the database."""
    return HttpResponse("1", content_type="text/plain")
