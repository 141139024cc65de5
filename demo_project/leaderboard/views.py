"""The leaderboard: async views on the async ORM, which borrows from the pool per query."""

from __future__ import annotations

import json

from django.db.models import Max
from django.http import JsonResponse
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from .models import Player, Score

TOP = 10


async def top_players(limit: int = TOP) -> list[dict]:
    """Return the best score of each of the ``limit`` best players, best first."""
    best = Player.objects.annotate(best=Max("scores__points")).filter(best__isnull=False)
    return [
        {"player": player.name, "best": player.best}
        async for player in best.order_by("-best", "name")[:limit]
    ]


@require_GET
async def leaderboard(request):
    """The top players as a page, or as JSON with ``?format=json``."""
    top = await top_players()
    if request.GET.get("format") == "json":
        return JsonResponse({"top": top})
    return render(
        request, "leaderboard/top.html", {"top": top, "scores": await Score.objects.acount()}
    )


# An API for scripts (manage.py simulate_traffic): no cookies, so no CSRF token to check.
@csrf_exempt
@require_POST
async def submit_score(request):
    """Record ``{"player": name, "points": n}``; 201, or 400 saying what is wrong."""
    try:
        body = json.loads(request.body or b"{}")
    except json.JSONDecodeError as error:
        return JsonResponse({"error": f"The body is not JSON: {error}."}, status=400)
    name, points = (
        (body.get("player"), body.get("points")) if isinstance(body, dict) else (None, None)
    )
    if not isinstance(name, str) or not 1 <= len(name.strip()) <= 50:
        return JsonResponse({"error": '"player" must be a name of 1 to 50 characters.'}, status=400)
    if not isinstance(points, int) or isinstance(points, bool) or points < 0:
        return JsonResponse({"error": '"points" must be a whole number, 0 or more.'}, status=400)
    player, _ = await Player.objects.aget_or_create(name=name.strip())
    score = await Score.objects.acreate(player=player, points=points)
    return JsonResponse({"score": score.pk, "player": player.name, "points": points}, status=201)
