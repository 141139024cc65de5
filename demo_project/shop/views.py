import time

from django.db import connection
from django.db.models import Sum
from django.shortcuts import render

from .models import Product


def home(request):
    """List the products, and show which server connection served this request."""
    products = list(Product.objects.all())
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        backend_pid = cursor.fetchone()[0]
    context = {
        "products": products,
        "stock": Product.objects.aggregate(total=Sum("stock"))["total"] or 0,
        "backend_pid": backend_pid,
        "pool": connection.pool.stats() if connection.pool else None,
    }
    return render(request, "shop/home.html", context)


# What the slow external call (a payment provider, a shipping quote) takes, in seconds.
EXTERNAL_CALL_S = 0.3


def slow_call(request):
    """A mistake on purpose: hold a pooled connection through a slow call to another service.

    With ``?fixed=1`` the view gives the connection back before the call, as it should: the
    debug toolbar's Pool panel warns about the first and not the second.
    """
    fixed = request.GET.get("fixed") == "1"
    products = list(Product.objects.order_by("name")[:5])
    if fixed:
        connection.close()  # back to the pool now; the next query borrows again
    started = time.monotonic()
    time.sleep(EXTERNAL_CALL_S)  # stands in for requests.get("https://api.example.com/...")
    context = {
        "products": products,
        "fixed": fixed,
        "call_ms": round((time.monotonic() - started) * 1000),
    }
    return render(request, "shop/slow_call.html", context)
