"""URLs of the pool endpoints: ``path("pool/", include("django_pool.urls"))``."""

from django.apps import apps
from django.core.exceptions import ImproperlyConfigured
from django.urls import path


def _require_installed_app() -> None:
    # The views import the permission's model: without the app, Django would fail with a
    # RuntimeError about an app_label that does not say what to do.
    if not apps.is_installed("django_pool"):
        raise ImproperlyConfigured(
            'include("django_pool.urls") needs the django_pool app: add "django_pool" to '
            "INSTALLED_APPS (its views use the app's permission model)."
        )


_require_installed_app()

from . import views  # noqa: E402 - only once the app is known to be installed

app_name = "django_pool"

urlpatterns = [
    path("health/", views.health, name="health"),
    path("metrics/", views.metrics, name="metrics"),
    path("stats.json", views.stats, name="stats"),
]
