"""Each tenant's visits in the admin, read from the tenant's own database alias."""

from django.conf import settings
from django.contrib import admin

from .models import Visit


def _first_tenant() -> str:
    return next(iter(settings.DEMO_TENANTS))


class TenantFilter(admin.SimpleListFilter):
    """Pick the tenant, and so the database alias the list reads from."""

    title = "tenant"
    parameter_name = "tenant"

    def lookups(self, request, model_admin):
        return [(name, f"{name} ({alias})") for name, alias in settings.DEMO_TENANTS.items()]

    def value(self):
        value = super().value()
        return value if value in settings.DEMO_TENANTS else _first_tenant()

    def choices(self, changelist):
        for name, label in self.lookup_choices:
            yield {
                "selected": self.value() == name,
                "query_string": changelist.get_query_string({self.parameter_name: name}),
                "display": label,
            }

    def queryset(self, request, queryset):
        return queryset.using(settings.DEMO_TENANTS[self.value()])


@admin.register(Visit)
class VisitAdmin(admin.ModelAdmin):
    """A read-only list per tenant: the rows live in the tenant's database, not in default."""

    list_display = ["path", "created"]
    list_filter = [TenantFilter]
    list_display_links = None

    def get_queryset(self, request):
        # The first tenant's until the filter picks one: default has no table for visits.
        return super().get_queryset(request).using(settings.DEMO_TENANTS[_first_tenant()])

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
