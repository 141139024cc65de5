"""The benchmark views: one ``SELECT 1``, one with a slow external call after it, or nothing;
and ``pool``, what the load did to django_pool's pool, for the report."""

from __future__ import annotations

import time

from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse

from django_pool.pool import ConnectionPool

# How long ``external_call`` waits, as if on another service; sleeping releases the GIL as a
# socket read would, so the thread holds nothing but (maybe) its database connection.
EXTERNAL_CALL_SECONDS = 0.05


def one_query() -> int:
    """Run ``SELECT 1`` and return its value."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        (value,) = cursor.fetchone()
    return value


def db(request: HttpRequest) -> HttpResponse:
    """Run one query and answer with its result."""
    return HttpResponse(str(one_query()), content_type="text/plain")


def external_call(request: HttpRequest) -> HttpResponse:
    """Run one query, then wait on a simulated external call, and answer."""
    value = one_query()
    time.sleep(EXTERNAL_CALL_SECONDS)
    return HttpResponse(str(value), content_type="text/plain")


def nodb(request: HttpRequest) -> HttpResponse:
    """Answer without touching the database."""
    return HttpResponse("1", content_type="text/plain")


def pool(request: HttpRequest) -> HttpResponse:
    """Answer django_pool's borrow counts and its wait and hold histograms (404 without one)."""
    found = connection.pool  # Django's own pool is a psycopg_pool one: not ours
    if not isinstance(found, ConnectionPool):
        return JsonResponse(
            {"error": f"no django_pool pool here: {type(found).__name__}"}, status=404
        )
    snapshot = found.snapshot()
    return JsonResponse(
        {
            "borrows": snapshot["stats"]["requests_num"],
            "queued": snapshot["stats"]["requests_queued"],
            "wait_ms": [count for _, count in snapshot["wait_ms"]["buckets"]],
            "hold_ms": [count for _, count in snapshot["hold_ms"]["buckets"]],
        }
    )
