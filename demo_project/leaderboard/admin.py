from django.contrib import admin

from .models import Player, Score


@admin.register(Player)
class PlayerAdmin(admin.ModelAdmin):
    list_display = ["name"]
    search_fields = ["name"]


@admin.register(Score)
class ScoreAdmin(admin.ModelAdmin):
    list_display = ["player", "points", "created"]
    list_select_related = ["player"]
