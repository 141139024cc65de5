"""HTTP endpoints: health for load balancers, Prometheus metrics, JSON stats for staff."""

from __future__ import annotations

import hmac
from importlib.util import find_spec

from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from . import registry
from .conf import get_config
from .health import verdict, worst
from .models import can_view_pools
from .publish import process_snapshots


@never_cache
@require_safe
def health(request: HttpRequest) -> JsonResponse:
    """Return each local pool's status, and 503 when any is critical; nothing else."""
    # Public (load balancers): statuses only, never hosts, servers, pids or numbers.
    pools = {alias: verdict(pool.snapshot())["status"] for alias, pool in registry.pools().items()}
    status = worst(pools.values())
    return JsonResponse(
        {"status": status, "pools": pools}, status=503 if status == "critical" else 200
    )


@never_cache
@require_safe
def metrics(request: HttpRequest) -> HttpResponse:
    """Return every process's pool metrics in the Prometheus text format."""
    config = get_config()
    if not config["METRICS"]:
        raise Http404("metrics are off: set DJANGO_POOL['METRICS'] = True")
    token = config["METRICS_TOKEN"]
    if token and not _has_bearer_token(request, token):
        response = HttpResponse("Unauthorized.\n", status=401, content_type="text/plain")
        response["WWW-Authenticate"] = "Bearer"
        return response
    if find_spec("prometheus_client") is None:
        return HttpResponse(
            "Prometheus metrics need prometheus-client: pip install django-pool[metrics]\n",
            status=501,
            content_type="text/plain",
        )
    # Imported here: prometheus-client is an optional extra.
    from prometheus_client.exposition import CONTENT_TYPE_LATEST

    from .metrics import render

    return HttpResponse(render(process_snapshots), content_type=CONTENT_TYPE_LATEST)


@never_cache
@require_safe
def stats(request: HttpRequest) -> JsonResponse:
    """Return local snapshots with their health, and every process's published snapshots."""
    # Without AuthenticationMiddleware there is no user, so nobody may see the stats.
    user = getattr(request, "user", None)
    if user is None or not can_view_pools(user):
        raise PermissionDenied
    local = {}
    for alias, pool in registry.pools().items():
        snapshot = pool.snapshot()
        local[alias] = {**snapshot, "health": verdict(snapshot)}
    return JsonResponse({"local": local, "processes": process_snapshots()})


def _has_bearer_token(request: HttpRequest, token: str) -> bool:
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    # Constant time: the comparison must not tell an attacker how much of the token matched.
    return scheme.lower() == "bearer" and hmac.compare_digest(
        given.strip().encode(), token.encode()
    )
