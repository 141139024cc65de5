"""Prometheus metrics of every process's pools, built from their snapshots."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.utils import floatToGoString

LABELS = ["alias", "pid", "host"]

# (family name, help, snapshot key of the ms histogram)
_HISTOGRAMS = (
    ("django_pool_wait_seconds", "Seconds a borrower waited for a connection.", "wait_ms"),
    ("django_pool_hold_seconds", "Seconds a connection stayed borrowed.", "hold_ms"),
    ("django_pool_connect_seconds", "Seconds opening a server connection took.", "connect_ms"),
)

# (family name without _total, help, stats key)
_COUNTERS = (
    ("django_pool_requests", "Connections requested from the pool.", "requests_num"),
    ("django_pool_connections_opened", "Server connections opened.", "connections_num"),
    ("django_pool_connections_lost", "Connections found dead when checked.", "connections_lost"),
    ("django_pool_connection_errors", "Failed connection attempts.", "connections_errors"),
    ("django_pool_django_requests", "Django requests that borrowed.", "django_requests"),
    ("django_pool_request_borrows", "Borrows made by those requests.", "request_borrows"),
)

Processes = Callable[[], Sequence[dict[str, Any]]]


def render(processes: Processes) -> bytes:
    """Return the Prometheus text exposition of the pools of ``processes()``."""
    # A private registry: the project's own default registry (and its process metrics)
    # stays out of this endpoint, and nothing is registered twice across requests.
    registry = CollectorRegistry(auto_describe=False)
    registry.register(PoolCollector(processes))
    return generate_latest(registry)


class PoolCollector:
    """Turn the snapshots of each process's pools into metric families on every scrape."""

    def __init__(self, processes: Processes) -> None:
        self.processes = processes

    def collect(self) -> Iterator[Metric]:
        """Yield one family per metric with one sample set per (alias, pid, host)."""
        pools = [
            ([alias, str(entry["pid"]), str(entry["host"])], snapshot)
            for entry in self.processes()
            for alias, snapshot in sorted(entry["pools"].items())
        ]
        yield from _gauges(pools)
        yield from _counters(pools)
        yield from _histograms(pools)


def _gauges(pools: list[tuple[list[str], dict]]) -> Iterator[Metric]:
    connections = GaugeMetricFamily(
        "django_pool_connections", "Open connections by state.", labels=[*LABELS, "state"]
    )
    maximum = GaugeMetricFamily("django_pool_connections_max", "max_size.", labels=LABELS)
    minimum = GaugeMetricFamily("django_pool_connections_min", "min_size.", labels=LABELS)
    waiting = GaugeMetricFamily(
        "django_pool_requests_waiting", "Borrowers waiting for a connection.", labels=LABELS
    )
    server_up = GaugeMetricFamily(
        "django_pool_server_up", "1 unless connecting to the server fails.", labels=LABELS
    )
    for labels, snapshot in pools:
        stats = snapshot["stats"]
        connections.add_metric([*labels, "in_use"], stats["pool_in_use"])
        connections.add_metric([*labels, "idle"], stats["pool_available"])
        maximum.add_metric(labels, stats["pool_max"])
        minimum.add_metric(labels, stats["pool_min"])
        waiting.add_metric(labels, stats["requests_waiting"])
        # The error is there from the first failed connect; server_down_ms may still be 0.
        down = stats["server_down_ms"] > 0 or stats["last_connect_error"] is not None
        server_up.add_metric(labels, 0 if down else 1)
    yield from (connections, maximum, minimum, waiting, server_up)


def _counters(pools: list[tuple[list[str], dict]]) -> Iterator[Metric]:
    for name, documentation, key in _COUNTERS:
        family = CounterMetricFamily(name, documentation, labels=LABELS)
        for labels, snapshot in pools:
            family.add_metric(labels, snapshot["stats"][key])
        yield family
    errors = CounterMetricFamily(
        "django_pool_request_errors",
        "Requests that got no connection, by reason.",
        labels=[*LABELS, "reason"],
    )
    for labels, snapshot in pools:
        stats = snapshot["stats"]
        timeouts, too_many = stats["requests_timeouts"], stats["requests_too_many"]
        # requests_errors counts every failed request; the rest are a closed pool or a
        # server the pool is backing off from.
        other = stats["requests_errors"] - timeouts - too_many
        for reason, value in (("timeout", timeouts), ("too_many", too_many), ("other", other)):
            errors.add_metric([*labels, reason], value)
    yield errors


def _histograms(pools: list[tuple[list[str], dict]]) -> Iterator[Metric]:
    for name, documentation, key in _HISTOGRAMS:
        family = HistogramMetricFamily(name, documentation, labels=LABELS)
        for labels, snapshot in pools:
            histogram = snapshot[key]
            family.add_metric(labels, _seconds_buckets(histogram), histogram["sum"] / 1000.0)
        yield family


def _seconds_buckets(histogram: dict[str, Any]) -> list[tuple[str, float]]:
    """Return the cumulative ms buckets with bounds in seconds, ending with +Inf."""
    buckets = [
        (bound if bound == "+Inf" else floatToGoString(bound / 1000.0), count)
        for bound, count in histogram["buckets"]
    ]
    if not buckets or buckets[-1][0] != "+Inf":
        buckets.append(("+Inf", histogram["count"]))
    return buckets
