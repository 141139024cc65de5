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
