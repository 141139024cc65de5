from django.apps import AppConfig


class DjangoPoolConfig(AppConfig):
    """The django_pool app: system checks now; dashboard and commands as they come."""

    name = "django_pool"
    verbose_name = "Connection pool"

    def ready(self) -> None:
        from . import checks  # noqa: F401 - registers the system checks
