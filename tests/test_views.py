"""The health and stats endpoints: status codes, permissions, and what they never show."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth.models import Permission
from django.db import OperationalError, connections
from django.test import Client
from django.urls import reverse

STATUSES = {"ok", "warning", "critical"}
# Not a real password: the unreachable server refuses the connection before anyone asks.
UNREACHABLE_PASSWORD = "Zr4-never-shown"


@pytest.fixture
def unreachable(pooled):
    """Register a pool whose server refuses every connection, as a load balancer would meet it."""
    wrapper = pooled(min_size=0, max_size=2, timeout=1.0)
    wrapper.settings_dict.update(HOST="127.0.0.1", PORT="1", PASSWORD=UNREACHABLE_PASSWORD)
    with pytest.raises(OperationalError):
        wrapper.ensure_connection()
    return wrapper


@pytest.fixture
def user_client(django_user_model):
    """Return a function making a Client logged in as a new user with the given flags."""
    users = iter(range(1000))

    def make(*, staff: bool = False, perm: bool = False, superuser: bool = False) -> Client:
        user = django_user_model.objects.create_user(
            username=f"user{next(users)}", is_staff=staff, is_superuser=superuser
        )
        if perm:
            user.user_permissions.add(
                Permission.objects.get(content_type__app_label="django_pool", codename="view_pool")
            )
        client = Client()
        client.force_login(user)
        return client

    return make


def keys(value) -> set[str]:
    """Return every dict key anywhere in a decoded JSON value."""
    if isinstance(value, dict):
        return set(value) | {key for item in value.values() for key in keys(item)}
    if isinstance(value, list):
        return {key for item in value for key in keys(item)}
    return set()


# health/


def test_health_is_public_and_ok(db):
    connections["default"].ensure_connection()  # the default pool exists and works
    response = Client().get(reverse("django_pool:health"))
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["pools"]["default"] == "ok"
    assert "no-cache" in response["Cache-Control"]


def test_health_is_503_when_a_pool_is_critical_and_shows_no_details(unreachable):
    response = Client().get(reverse("django_pool:health"))
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "critical"
    assert body["pools"][unreachable.alias] == "critical"
    assert set(body) == {"status", "pools"}
    assert set(body["pools"].values()) <= STATUSES
    text = response.content.decode()
    for detail in ("127.0.0.1", "host", "server", "pid", "refused", str(unreachable.pool._pid)):
        assert detail not in text


def test_health_recovers_when_the_critical_pool_is_gone(unreachable):
    unreachable.close_pool()
    assert Client().get(reverse("django_pool:health")).status_code == 200


# stats.json


@pytest.mark.parametrize(
    "flags",
    [
        pytest.param({}, id="no-staff-no-perm"),
        pytest.param({"staff": True}, id="staff-without-perm"),
        pytest.param({"perm": True}, id="perm-without-staff"),
    ],
)
def test_stats_is_forbidden_without_staff_and_permission(user_client, flags):
    assert user_client(**flags).get(reverse("django_pool:stats")).status_code == 403


def test_stats_is_forbidden_to_anonymous_users(db):
    # A JSON endpoint: a 403, not a redirect to a login page that may not exist.
    assert Client().get(reverse("django_pool:stats")).status_code == 403


@pytest.mark.parametrize(
    "flags",
    [
        pytest.param({"staff": True, "perm": True}, id="staff-with-perm"),
        pytest.param({"staff": True, "superuser": True}, id="superuser"),
    ],
)
def test_stats_shows_local_snapshots_with_health_and_all_processes(user_client, flags):
    connections["default"].ensure_connection()
    response = user_client(**flags).get(reverse("django_pool:stats"))
    assert response.status_code == 200
    assert "no-cache" in response["Cache-Control"]
    body = response.json()
    default = body["local"]["default"]
    assert default["stats"]["pool_max"] == 4
    assert default["health"]["status"] in STATUSES
    assert {"reasons", "recommendations"} <= set(default["health"])
    (process,) = body["processes"]  # no CACHE: just this process
    assert "default" in process["pools"]


def test_stats_reports_the_unreachable_pool_as_critical(user_client, unreachable):
    client = user_client(staff=True, superuser=True)
    local = client.get(reverse("django_pool:stats")).json()["local"]
    assert local[unreachable.alias]["health"]["status"] == "critical"
    assert local[unreachable.alias]["stats"]["server_down_ms"] > 0


# All endpoints


@pytest.mark.parametrize("name", ["health", "stats", "metrics"])
@pytest.mark.parametrize("method", ["post", "put", "delete"])
def test_only_safe_methods_are_allowed(user_client, settings, name, method):
    settings.DJANGO_POOL = {"METRICS": True}
    client = user_client(staff=True, superuser=True)
    response = getattr(client, method)(reverse(f"django_pool:{name}"))
    assert response.status_code == 405
    assert response["Allow"] == "GET, HEAD"


@pytest.mark.django_db(transaction=True)
def test_load_balancers_may_probe_health_with_head():
    assert Client().head(reverse("django_pool:health")).status_code == 200


def test_no_endpoint_shows_a_password(user_client, unreachable, settings):
    settings.DJANGO_POOL = {"METRICS": True}
    client = user_client(staff=True, superuser=True)
    passwords = {UNREACHABLE_PASSWORD} | {
        db["PASSWORD"] for db in settings.DATABASES.values() if db.get("PASSWORD")
    }
    for name in ("health", "stats", "metrics"):
        response = client.get(reverse(f"django_pool:{name}"))
        text = response.content.decode()
        assert response.status_code in (200, 503)
        assert not any(password in text for password in passwords), name
        if name == "metrics":
            assert "password" not in text.lower()
        else:
            assert not any("password" in key.lower() for key in keys(json.loads(text))), name
