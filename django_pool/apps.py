from django.apps import AppConfig


class DjangoPoolConfig(AppConfig):
    """The django_pool app: system checks, snapshot publishing, endpoints and commands."""

    name = "django_pool"
    verbose_name = "Connection pool"
    default_auto_field = "django.db.models.AutoField"

    def ready(self) -> None:
        from . import checks  # noqa: F401 - registers the system checks
        from .publish import start_publishing

        start_publishing()  # no-op unless DJANGO_POOL["CACHE"] is set
