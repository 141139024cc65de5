"""PoolOverloadMiddleware: an exhausted pool answers 503 with Retry-After, not 500."""

from __future__ import annotations

import pytest
from django.db import OperationalError, connections
from django.test import Client, RequestFactory

from django_pool.errors import PoolClosed, TooManyRequests
from django_pool.middleware import PoolOverloadMiddleware

OVERLOAD = ["django_pool.middleware.PoolOverloadMiddleware"]


@pytest.fixture
def saturated(transactional_db):
    """Make the default pool 2 connections with a 0.2 s timeout, both borrowed elsewhere."""
    default = connections["default"]
    options = default.settings_dict["OPTIONS"]
    configured = options["pool"]
    default.close()
    default.close_pool()
    options["pool"] = {"min_size": 0, "max_size": 2, "timeout": 0.2}
    holders = [default.copy() for _ in range(2)]
    try:
        for holder in holders:
            holder.ensure_connection()
        yield
    finally:
        for holder in holders:
            holder.close()
        default.close()
        options["pool"] = configured
        default.close_pool()  # the next use builds the pool from the configured options


def test_saturated_pool_answers_503_with_retry_after(saturated, settings):
    settings.MIDDLEWARE = OVERLOAD
    response = Client().get("/items/")
    assert response.status_code == 503
    assert response["Retry-After"] == "1"
    assert b"retry in 1 s" in response.content


def test_retry_after_comes_from_settings(saturated, settings):
    settings.MIDDLEWARE = OVERLOAD
    settings.DJANGO_POOL = {"RETRY_AFTER": 7}
    assert Client().get("/items/")["Retry-After"] == "7"


def test_without_the_middleware_it_is_a_500(saturated, settings):
    settings.MIDDLEWARE = []
    assert Client(raise_request_exception=False).get("/items/").status_code == 500


def wrapped(error: Exception) -> OperationalError:
    """Raise ``error`` the way Django's error wrapper does and return what it raised."""
    try:
        try:
            raise error
        except Exception as cause:
            raise OperationalError(*cause.args) from cause
    except OperationalError as django_error:
        return django_error


def test_too_many_requests_is_a_503_too():
    middleware = PoolOverloadMiddleware(lambda request: None)
    request = RequestFactory().get("/")
    response = middleware.process_exception(request, wrapped(TooManyRequests("full")))
    assert response.status_code == 503


@pytest.mark.parametrize("error", [PoolClosed("closed"), OperationalError("other"), ValueError()])
def test_other_errors_pass_through(error):
    middleware = PoolOverloadMiddleware(lambda request: None)
    assert middleware.process_exception(RequestFactory().get("/"), error) is None
