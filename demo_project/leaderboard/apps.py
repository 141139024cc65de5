from django.apps import AppConfig


class LeaderboardConfig(AppConfig):
    name = "demo_project.leaderboard"
    label = "leaderboard"
