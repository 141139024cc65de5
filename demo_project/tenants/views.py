"""A tenant's page: one write and two reads on the tenant's own database alias and pool."""

from django.conf import settings
from django.db import connections
from django.http import Http404
from django.shortcuts import render

from .models import Visit


def tenant(request, name: str):
    alias = settings.DEMO_TENANTS.get(name)
    if alias is None:
        raise Http404(f"No tenant {name!r}: the demo has {', '.join(settings.DEMO_TENANTS)}.")
    Visit.objects.using(alias).create(path=request.path)
    pool = connections[alias].pool
    context = {
        "name": name,
        "alias": alias,
        "visits": Visit.objects.using(alias).count(),
        "recent": list(Visit.objects.using(alias)[:5]),
        "pool": pool.stats() if pool else None,
        "tenants": settings.DEMO_TENANTS,
    }
    return render(request, "tenants/tenant.html", context)
