"""The benchmark's own figures of django_pool: read from a worker, and reported."""

from __future__ import annotations

import json

from django.db import connection
from django.test import RequestFactory

from demo_project.bench.http import pool_figures
from demo_project.bench.report import _queueing
from demo_project.bench.site.views import pool
from django_pool.stats import BOUNDS_MS


def cumulative(counts: dict[float, int]) -> list[int]:
    """Return a histogram's cumulative counts per bound of BOUNDS_MS, from counts per bound."""
    total, result = 0, []
    for bound in BOUNDS_MS:
        total += counts.get(bound, 0)
        result.append(total)
    return result


def test_pool_figures_count_only_what_came_between_the_two_reads():
    before = {
        "borrows": 100,
        "queued": 0,
        "wait_ms": cumulative({0.0: 100}),
        "hold_ms": cumulative({10.0: 100}),
    }
    after = {
        "borrows": 200,
        "queued": 75,
        "wait_ms": cumulative({0.0: 125, 5.0: 75}),
        "hold_ms": cumulative({10.0: 100, 0.5: 100}),
    }
    figures = pool_figures(before, after)
    assert figures["queued_share"] == 0.75
    # Of the 100 borrows in between, 75 waited 2.5-5 ms: the median is in that bucket.
    assert 2.5 < figures["wait_p50_ms"] <= 5.0
    # Their holds were all 0.25-0.5 ms; the 100 long ones before do not count.
    assert 0.25 < figures["hold_p50_ms"] <= 0.5


def test_the_bench_site_reads_the_pool_of_its_worker(db):
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    answer = json.loads(pool(RequestFactory().get("/pool")).content)
    assert answer["borrows"] >= 1
    assert answer["wait_ms"][-1] >= 1  # cumulative: every borrow's wait is in the last
    assert len(answer["wait_ms"]) == len(answer["hold_ms"]) == len(BOUNDS_MS)


def test_the_report_says_how_borrows_queued_and_skips_runs_without_the_figures():
    runs = [
        {"queued_share": 0.98, "wait_p50_ms": 3.5, "hold_p50_ms": 0.5},
        {"queued_share": 0.96, "wait_p50_ms": 4.0, "hold_p50_ms": 0.4},
        {"queued_share": 0.99, "wait_p50_ms": 3.0, "hold_p50_ms": 0.6},
    ]
    assert _queueing(runs) == (
        ": 98% of borrows queued, waiting a median 3.50 ms for a connection that borrowers "
        "then held a median 0.50 ms"
    )
    assert _queueing([{"rps": 1.0}]) == ""  # figures from before the runs read them
