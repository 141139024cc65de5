"""URLs of the pool endpoints: ``path("pool/", include("django_pool.urls"))``."""

from django.urls import path

from . import views

app_name = "django_pool"

urlpatterns = [
    path("health/", views.health, name="health"),
    path("metrics/", views.metrics, name="metrics"),
    path("stats.json", views.stats, name="stats"),
]
