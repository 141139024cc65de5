"""The permission to view pool status, held by a model with no table (as django-rq does)."""

from __future__ import annotations

from django.db import models

VIEW_PERMISSION = "django_pool.view_pool"


class PoolStatus(models.Model):
    """Carry the ``view_pool`` permission; there is no table behind it."""

    class Meta:
        # Unmanaged and without default permissions: migrate creates no table, and the
        # permission system gets exactly one real, assignable permission.
        managed = False
        default_permissions = ()
        permissions = [("view_pool", "Can view connection pool status")]
        verbose_name = "connection pool status"
        verbose_name_plural = "connection pool status"


def can_view_pools(user) -> bool:
    """Return True for an active staff user with ``django_pool.view_pool`` (or a superuser)."""
    # has_perm already returns True for active superusers and False for inactive users.
    return bool(user.is_active and user.is_staff and user.has_perm(VIEW_PERMISSION))
