"""Each tenant's data lives in its own database alias, with its own pool; the rest in default."""

from django.conf import settings


def tenant_aliases() -> set[str]:
    return set(settings.DEMO_TENANTS.values())


class TenantRouter:
    """Migrate the tenants app only on tenant aliases, and every other app only off them."""

    def allow_migrate(self, db, app_label, **hints):
        return (app_label == "tenants") == (db in tenant_aliases())
