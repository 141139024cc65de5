"""The permissions to view and act on pools, held by a model with no table (as django-rq does)."""

from __future__ import annotations

from django.db import models

VIEW_PERMISSION = "django_pool.view_pool"
CHANGE_PERMISSION = "django_pool.change_pool"


class PoolStatus(models.Model):
    """Carry the ``view_pool`` and ``change_pool`` permissions; there is no table behind it."""

    class Meta:
        # Unmanaged and without default permissions: migrate creates no table, and the
        # permission system gets exactly the real, assignable permissions listed here.
        managed = False
        default_permissions = ()
        # The view permission keeps its first name: migrate never renames a permission
        # that already exists, so a new name would differ between old and new installs.
        permissions = [
            ("view_pool", "Can view connection pool status"),
            ("change_pool", "Can change connection pools"),
        ]
        verbose_name = "connection pool"
        verbose_name_plural = "connection pools"


def can_view_pools(user) -> bool:
    """Return True for an active staff user with ``django_pool.view_pool`` (or a superuser)."""
    # has_perm already returns True for active superusers and False for inactive users.
    return bool(user.is_active and user.is_staff and user.has_perm(VIEW_PERMISSION))


def can_change_pools(user) -> bool:
    """Return True for a user who may view pools and also holds ``django_pool.change_pool``."""
    # Acting on a pool one cannot see would be acting blind: change implies view.
    return can_view_pools(user) and user.has_perm(CHANGE_PERMISSION)
