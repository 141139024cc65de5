import json
import time

from django.conf import settings
from django.db import connection
from django.db.models import Sum
from django.http import JsonResponse
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from .models import Product
from .orders import OrderError, OutOfStock, parse_items, place_order


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
        "tenants": getattr(settings, "DEMO_TENANTS", {}),
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


# An API for scripts (manage.py simulate_traffic): no cookies, so no CSRF token to check.
@csrf_exempt
@require_POST
def create_order(request):
    """Place an order from ``{"customer": ..., "items": [{"product": id, "quantity": n}]}``.

    201 with the order, 409 when an item is out of stock (nothing is ordered), 400 when the
    request is not such an order.
    """
    try:
        body = json.loads(request.body or b"{}")
        if not isinstance(body, dict):
            raise OrderError("The body must be a JSON object.")
        order = place_order(
            str(body.get("customer") or "anonymous")[:100], parse_items(body.get("items"))
        )
    except json.JSONDecodeError as error:
        return JsonResponse({"error": f"The body is not JSON: {error}."}, status=400)
    except OutOfStock as error:
        return JsonResponse({"error": str(error)}, status=409)
    except OrderError as error:
        return JsonResponse({"error": str(error)}, status=400)
    return JsonResponse({"order": order.pk, "total": str(order.total)}, status=201)
