"""The view_pool permission: a real permission on a model without a table."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import AnonymousUser, Permission
from django.db import connection

from django_pool.models import PoolStatus, can_change_pools, can_view_pools


@pytest.fixture
def make_user(django_user_model):
    """Make a user with the given flags, view_pool when ``perm`` and change_pool when ``change``."""
    users = iter(range(1000))

    def make(*, perm: bool = False, change: bool = False, **flags):
        user = django_user_model.objects.create_user(username=f"user{next(users)}", **flags)
        if perm:
            user.user_permissions.add(Permission.objects.get(codename="view_pool"))
        if change:
            user.user_permissions.add(Permission.objects.get(codename="change_pool"))
        return django_user_model.objects.get(pk=user.pk)  # a fresh permission cache

    return make


def test_the_permissions_exist_and_the_model_has_no_table(db):
    permissions = Permission.objects.filter(content_type__app_label="django_pool")
    assert {p.codename: p.name for p in permissions} == {
        "view_pool": "Can view connection pool status",
        "change_pool": "Can change connection pools",
    }
    assert PoolStatus._meta.db_table not in connection.introspection.table_names()


@pytest.mark.parametrize(
    "flags, allowed",
    [
        ({"is_staff": True, "perm": True}, True),
        ({"is_staff": True, "is_superuser": True}, True),
        ({"is_staff": True}, False),
        ({"perm": True}, False),
        ({"is_superuser": True}, False),  # not staff: no admin, no stats
        ({"is_staff": True, "perm": True, "is_active": False}, False),
    ],
)
def test_can_view_pools_needs_active_staff_with_the_permission(make_user, flags, allowed):
    assert can_view_pools(make_user(**flags)) is allowed


def test_anonymous_users_cannot_view_pools():
    assert can_view_pools(AnonymousUser()) is False


@pytest.mark.parametrize(
    "flags, allowed",
    [
        ({"is_staff": True, "perm": True, "change": True}, True),
        ({"is_staff": True, "is_superuser": True}, True),
        ({"is_staff": True, "perm": True}, False),
        ({"is_staff": True, "change": True}, False),  # acting on what one cannot see
        ({"perm": True, "change": True}, False),
        ({"is_staff": True, "perm": True, "change": True, "is_active": False}, False),
    ],
)
def test_can_change_pools_needs_view_and_change(make_user, flags, allowed):
    assert can_change_pools(make_user(**flags)) is allowed
