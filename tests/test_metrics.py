"""The Prometheus endpoint: off by default, the token, and the series parsed back from the text."""

from __future__ import annotations

import os
import socket
import sys

import pytest
from django.db import OperationalError
from django.test import Client
from django.urls import reverse
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from django_pool import publish, registry
from django_pool.metrics import render

ON = {"METRICS": True}


def get(**headers):
    return Client().get(reverse("django_pool:metrics"), headers=headers)


def parse(text: bytes | str) -> dict[str, Metric]:
    text = text.decode() if isinstance(text, bytes) else text
    return {family.name: family for family in text_string_to_metric_families(text)}


def scrape() -> dict[str, Metric]:
    response = get()
    assert response.status_code == 200, response.content
    return parse(response.content)


def value(families: dict[str, Metric], family: str, sample: str = "", **labels) -> float:
    """Return the one value of ``sample`` (default: the family's own) with these labels."""
    metric = families[family]
    sample = sample or (f"{family}_total" if metric.type == "counter" else family)
    found = [
        s.value for s in metric.samples if s.name == sample and labels.items() <= s.labels.items()
    ]
    assert len(found) == 1, (family, sample, labels, found)
    return found[0]


def borrow(wrapper, times: int) -> None:
    for _ in range(times):
        wrapper.ensure_connection()
        wrapper.close()


# Access


def test_metrics_are_off_by_default():
    assert get().status_code == 404


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer wrong-token", "Basic s3cr3t-token", "Bearer", "s3cr3t-token"],
)
def test_a_token_is_required_when_set(settings, authorization):
    settings.DJANGO_POOL = {**ON, "METRICS_TOKEN": "s3cr3t-token"}
    response = get(Authorization=authorization) if authorization else get()
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Bearer"
    assert b"s3cr3t" not in response.content


def test_the_right_token_gets_the_metrics(settings):
    settings.DJANGO_POOL = {**ON, "METRICS_TOKEN": "s3cr3t-token"}
    response = get(Authorization="Bearer s3cr3t-token")
    assert response.status_code == 200
    assert response["Content-Type"] == CONTENT_TYPE_LATEST
    assert "no-cache" in response["Cache-Control"]


def test_without_prometheus_client_it_says_what_to_install(settings, monkeypatch):
    settings.DJANGO_POOL = ON
    monkeypatch.setitem(sys.modules, "prometheus_client", None)  # makes it unimportable
    response = get()
    assert response.status_code == 501
    assert b"pip install django-pool[metrics]" in response.content


# Series


def test_series_match_the_pools_stats(settings, pooled):
    settings.DJANGO_POOL = ON
    wrapper = pooled(min_size=0, max_size=2)
    borrow(wrapper, 3)
    wrapper.close_if_unusable_or_obsolete()  # a request's end: its 3 borrows are counted
    families = scrape()
    snapshot = wrapper.pool.snapshot()
    stats = snapshot["stats"]
    ours = {"alias": wrapper.alias, "pid": str(os.getpid()), "host": socket.gethostname()}

    assert value(families, "django_pool_requests", **ours) == 3
    assert value(families, "django_pool_django_requests", **ours) == 1
    assert value(families, "django_pool_request_borrows", **ours) == 3
    assert stats["requests_num"] == 3
    assert value(families, "django_pool_connections", state="in_use", **ours) == 0
    assert value(families, "django_pool_connections", state="idle", **ours) == 1
    assert value(families, "django_pool_connections_max", **ours) == 2
    assert value(families, "django_pool_connections_min", **ours) == 0
    assert value(families, "django_pool_requests_waiting", **ours) == 0
    assert value(families, "django_pool_server_up", **ours) == 1
    opened = value(families, "django_pool_connections_opened", **ours)
    assert opened == stats["connections_num"] == 1
    for family in ("django_pool_connections_lost", "django_pool_connection_errors"):
        assert value(families, family, **ours) == 0
    for reason in ("timeout", "too_many", "other"):
        assert value(families, "django_pool_request_errors", reason=reason, **ours) == 0

    hold = snapshot["hold_ms"]
    assert (
        value(families, "django_pool_hold_seconds", "django_pool_hold_seconds_count", **ours) == 3
    )
    assert hold["count"] == 3
    assert value(
        families, "django_pool_hold_seconds", "django_pool_hold_seconds_sum", **ours
    ) == pytest.approx(hold["sum"] / 1000.0)
    wait_les = [
        s.labels["le"]
        for s in families["django_pool_wait_seconds"].samples
        if s.name == "django_pool_wait_seconds_bucket" and s.labels["alias"] == wrapper.alias
    ]
    assert wait_les[-1] == "+Inf"
    assert [float(le) for le in wait_les[:-1]] == [
        pytest.approx(bound / 1000.0) for bound, _ in snapshot["wait_ms"]["buckets"][:-1]
    ]
    assert (
        value(families, "django_pool_connect_seconds", "django_pool_connect_seconds_count", **ours)
        == 1
    )


def test_every_series_carries_alias_pid_and_host(settings, pooled):
    settings.DJANGO_POOL = ON
    borrow(pooled(min_size=0), 1)
    for family in scrape().values():
        for sample in family.samples:
            assert {"alias", "pid", "host"} <= set(sample.labels), sample


def test_a_timeout_is_counted_by_reason(settings, pooled):
    settings.DJANGO_POOL = ON
    holder = pooled(min_size=0, max_size=1, timeout=0.1)
    holder.ensure_connection()
    with pytest.raises(OperationalError):
        holder.copy().ensure_connection()
    holder.close()
    families = scrape()
    labels = {"alias": holder.alias}
    for reason, expected in (("timeout", 1), ("too_many", 0), ("other", 0)):
        assert value(families, "django_pool_request_errors", reason=reason, **labels) == expected


def test_an_unreachable_server_is_down(settings, pooled):
    settings.DJANGO_POOL = ON
    wrapper = pooled(min_size=0, timeout=1.0)
    wrapper.settings_dict.update(HOST="127.0.0.1", PORT="1")
    with pytest.raises(OperationalError):
        wrapper.ensure_connection()
    families = scrape()
    labels = {"alias": wrapper.alias}
    assert value(families, "django_pool_server_up", **labels) == 0
    assert value(families, "django_pool_connection_errors", **labels) >= 1


def test_one_scrape_sees_every_process_publishing_to_the_cache(settings, pooled, tmp_path):
    # A file cache: shared by the forked child and this process, as Redis would be by workers.
    settings.CACHES = {
        **settings.CACHES,
        "pool": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(tmp_path),
        },
    }
    settings.DJANGO_POOL = {**ON, "CACHE": "pool"}
    wrapper = pooled(min_size=0, max_size=2)
    borrow(wrapper, 3)

    child = os.fork()
    if child == 0:
        status = 1
        try:
            borrow(wrapper, 2)  # from the child's own pool
            publish.publish()
            registry.close_pool(wrapper.alias)
            status = 0
        finally:
            os._exit(status)
    _, status = os.waitpid(child, 0)
    assert status == 0

    requests = {
        sample.labels["pid"]: sample.value
        for sample in scrape()["django_pool_requests"].samples
        if sample.labels["alias"] == wrapper.alias
    }
    assert requests == {str(os.getpid()): 3, str(child): 2}


def test_histograms_are_converted_to_seconds():
    pools = {"default": fake_snapshot(buckets=[[5, 1], [10, 3], ["+Inf", 4]], total=30.0)}
    families = parse(render(lambda: [{"host": "web1", "pid": 7, "pools": pools}]))
    buckets = {
        s.labels["le"]: s.value
        for s in families["django_pool_wait_seconds"].samples
        if s.name == "django_pool_wait_seconds_bucket"
    }
    assert buckets == {"0.005": 1, "0.01": 3, "+Inf": 4}
    labels = {"alias": "default", "pid": "7", "host": "web1"}
    sum_ = value(families, "django_pool_wait_seconds", "django_pool_wait_seconds_sum", **labels)
    assert sum_ == pytest.approx(0.03)


def test_a_histogram_without_an_inf_bucket_gets_one():
    pools = {"default": fake_snapshot(buckets=[[5, 1]], total=2.0, count=2)}
    families = parse(render(lambda: [{"host": "web1", "pid": 7, "pools": pools}]))
    count = "django_pool_wait_seconds_count"
    assert value(families, "django_pool_wait_seconds", count, alias="default") == 2


def fake_snapshot(*, buckets: list, total: float, count: int | None = None) -> dict:
    """Return a snapshot with zero stats and the given histogram for wait, hold and connect."""
    count = buckets[-1][1] if count is None else count
    histogram = {"count": count, "sum": total, "buckets": buckets}
    keys = (
        "pool_min pool_max pool_in_use pool_available requests_waiting server_down_ms "
        "requests_num requests_errors requests_timeouts requests_too_many connections_num "
        "connections_lost connections_errors django_requests request_borrows"
    )
    stats = {**dict.fromkeys(keys.split(), 0), "last_connect_error": None}
    return {"stats": stats, "wait_ms": histogram, "hold_ms": histogram, "connect_ms": histogram}
