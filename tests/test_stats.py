"""Histograms and the history ring, on their own: no pool, no clock but a fake one."""

from __future__ import annotations

import json
import math

import pytest

from django_pool.stats import (
    BOUNDS_MS,
    POINT_KEYS,
    TOTALS,
    Activity,
    Histogram,
    History,
    quantile,
    subtract,
)

from .fakes import FakeClock

WALL = 1_700_000_000.0  # a multiple of 10 s: slots start on it


def histogram_of(*values):
    histogram = Histogram()
    for value in values:
        histogram.add(value)
    return histogram


def bucket_of(value):
    """Return the (lower, upper) bounds of the bucket a value falls in."""
    index = next(i for i, bound in enumerate(BOUNDS_MS) if value <= bound)
    return (BOUNDS_MS[index - 1] if index else 0.0), BOUNDS_MS[index]


# Histogram


def test_values_fall_in_the_bucket_whose_upper_bound_they_reach():
    histogram = histogram_of(0.0, 0.1, 0.11, 30000.0, 30000.1)
    nonzero = {BOUNDS_MS[i]: count for i, count in enumerate(histogram.counts) if count}
    assert nonzero == {0.0: 1, 0.1: 1, 0.25: 1, 30000.0: 1, math.inf: 1}
    assert histogram.count == 5
    assert histogram.sum_ms == pytest.approx(60000.31)


def test_percentiles_interpolate_inside_the_bucket():
    # 90 borrows lent at once, 10 that waited in (100, 250] ms.
    histogram = histogram_of(*[0.0] * 90, *[200.0] * 10)
    assert histogram.percentile(0.5) == 0.0
    # Rank 95 is the 5th of the 10 in (100, 250]: halfway through it.
    assert histogram.percentile(0.95) == pytest.approx(175.0)
    assert histogram.percentile(0.99) == pytest.approx(100.0 + 150.0 * 9 / 10)


@pytest.mark.parametrize("value", [0.05, 0.3, 7.0, 42.0, 120.0, 800.0, 4000.0, 20000.0])
def test_percentiles_of_known_waits_fall_in_their_bucket(value):
    histogram = histogram_of(*[value] * 20)
    lower, upper = bucket_of(value)
    for q in (0.5, 0.95, 0.99):
        assert lower <= histogram.percentile(q) <= upper


def test_percentile_is_zero_when_most_waits_are_zero():
    histogram = histogram_of(*[0.0] * 96, 1000.0, 1000.0, 1000.0, 1000.0)
    assert histogram.percentile(0.95) == 0.0
    assert 500.0 < histogram.percentile(0.99) <= 1000.0


def test_percentile_past_the_last_bound_is_the_last_finite_bound():
    assert histogram_of(60000.0).percentile(0.5) == 30000.0


def test_percentile_of_nothing_is_none():
    assert Histogram().percentile(0.95) is None
    assert quantile([0] * len(BOUNDS_MS), 0.5) is None


def test_percentile_over_an_interval_uses_the_difference_of_two_copies():
    histogram = histogram_of(*[0.0] * 1000)
    before = histogram.counts_copy()
    for _ in range(10):
        histogram.add(40.0)
    assert histogram.percentile(0.95) == 0.0  # over everything: drowned by the zeros
    lower, upper = bucket_of(40.0)
    assert lower <= histogram.percentile(0.95, since=before) <= upper
    assert subtract(histogram.counts, before)[BOUNDS_MS.index(50.0)] == 10


def test_counts_copy_and_copy_are_independent():
    histogram = histogram_of(1.0)
    counts, copy = histogram.counts_copy(), histogram.copy()
    histogram.add(1.0)
    assert sum(counts) == copy.count == 1
    assert copy.sum_ms == 1.0


def test_buckets_are_cumulative_and_end_with_infinity():
    buckets = histogram_of(0.0, 3.0, 3.0, 99999.0).buckets()
    assert [bound for bound, _ in buckets] == list(BOUNDS_MS)
    assert dict(buckets)[0.0] == 1
    assert dict(buckets)[2.5] == 1
    assert dict(buckets)[5.0] == 3
    assert dict(buckets)[30000.0] == 3
    assert buckets[-1] == (math.inf, 4)


def test_summary_is_json_ready():
    summary = histogram_of(0.0, 12.5).summary()
    assert json.loads(json.dumps(summary)) == summary
    assert set(summary) == {"count", "sum", "p50", "p95", "p99", "buckets"}
    assert (summary["count"], summary["sum"], summary["p50"]) == (2, 12.5, 0.0)
    assert summary["buckets"][0] == [0.0, 1]
    assert summary["buckets"][-1] == ["+Inf", 2]
    assert Histogram().summary()["p95"] is None


# History


def totals(**values):
    return {key: values.get(key, 0) for key in TOTALS}


def activity(in_use=0, idle=0, waiting=0, peak=None, peak_waiting=None, waits=None, **counts):
    return Activity(
        in_use_peak=in_use if peak is None else peak,
        waiting_peak=waiting if peak_waiting is None else peak_waiting,
        in_use=in_use,
        idle=idle,
        waiting=waiting,
        totals=totals(**counts),
        waits=waits or [0] * len(BOUNDS_MS),
    )


@pytest.fixture
def clock():
    clock = FakeClock(wall=WALL + 3.0)  # 3 s into a slot
    clock.now = 100.0
    return clock


def history(clock, **options):
    return History(clock=clock.monotonic, wall=clock.time, **options)


def test_slots_start_at_wall_clock_multiples_of_the_interval(clock):
    ring = history(clock)
    assert ring.interval_s == 10
    assert ring.next_due == 107.0  # the slot started 3 s ago
    clock.advance(6.9)
    ring.sample(clock.now, activity(in_use=1))
    assert ring.points() == []
    clock.advance(0.1)
    ring.sample(clock.now, activity(in_use=1))
    assert [point["t"] for point in ring.points()] == [int(WALL)]
    assert ring.next_due == 117.0


def test_a_point_holds_the_slot_s_peaks_rates_and_counts(clock):
    ring = history(clock)
    waits = [0] * len(BOUNDS_MS)
    waits[0], waits[BOUNDS_MS.index(250.0)] = 90, 10
    clock.advance(7)
    counts = {"requests": 120, "timeouts": 2, "too_many": 1, "errors": 4, "lost": 1}
    counts.update(returns_bad=2, reclaimed=1, leaked=3, returns=100, hold_ms=2500.0)
    counts.update(django_requests=40, request_borrows=90, held_seen=6, busy_seen=2)
    ring.sample(clock.now, activity(3, 1, 0, peak=8, peak_waiting=5, waits=waits, **counts))
    (point,) = ring.points()
    assert list(point) == list(POINT_KEYS)
    assert point == {
        "t": int(WALL),
        "in_use": 8,
        "idle": 1,
        "waiting": 5,
        "borrows_per_s": 12.0,
        "wait_p95_ms": 175.0,
        "hold_ms": 25.0,
        "timeouts": 2,
        "too_many": 1,
        "errors": 4,
        "lost": 1,
        "returns_bad": 2,
        "reclaimed": 1,
        "leaked": 3,
        "django_requests": 40,
        "request_borrows": 90,
        "held_seen": 6,
        "busy_seen": 2,
    }
    assert json.loads(json.dumps(point)) == point


def test_a_point_counts_only_its_own_slot(clock):
    ring = history(clock)
    waits = [0] * len(BOUNDS_MS)
    waits[0] = 1000
    clock.advance(7)
    ring.sample(clock.now, activity(requests=1000, returns=1000, hold_ms=1000.0, waits=waits))
    later = list(waits)
    later[BOUNDS_MS.index(50.0)] = 10
    clock.advance(10)
    ring.sample(clock.now, activity(requests=1010, returns=1010, hold_ms=1400.0, waits=later))
    first, second = ring.points()
    assert (first["borrows_per_s"], first["wait_p95_ms"], first["hold_ms"]) == (100.0, 0.0, 1.0)
    assert second["borrows_per_s"] == 1.0
    assert 25.0 < second["wait_p95_ms"] <= 50.0  # only the slow ones, in (25, 50]
    assert second["hold_ms"] == 40.0


def test_a_quiet_slot_has_no_wait_or_hold(clock):
    ring = history(clock)
    clock.advance(7)
    ring.sample(clock.now, activity(idle=2))
    (point,) = ring.points()
    assert (point["borrows_per_s"], point["wait_p95_ms"], point["hold_ms"]) == (0.0, None, None)


def test_slots_without_a_sample_become_quiet_points(clock):
    ring = history(clock)
    clock.advance(7 + 25)  # the first slot ended 25 s ago: two more ended since
    ring.sample(clock.now, activity(in_use=2, idle=3, waiting=1, peak=5, requests=40))
    points = ring.points()
    assert [point["t"] for point in points] == [int(WALL), int(WALL) + 10, int(WALL) + 20]
    assert (points[0]["in_use"], points[0]["borrows_per_s"]) == (5, 4.0)
    quiet = {key: points[1][key] for key in ("in_use", "idle", "waiting", "borrows_per_s")}
    assert quiet == {"in_use": 2, "idle": 3, "waiting": 1, "borrows_per_s": 0.0}
    assert points[1]["wait_p95_ms"] is None
    assert points[1]["timeouts"] == points[2]["lost"] == 0
    assert points[1] == {**points[2], "t": points[1]["t"]}
    assert ring.next_due == 137.0


def test_the_ring_keeps_the_last_size_points(clock):
    ring = history(clock, size=3)
    clock.advance(7)
    for requests in range(1, 6):
        ring.sample(clock.now, activity(requests=requests * 10))
        clock.advance(10)
    points = ring.points()
    assert [point["t"] for point in points] == [int(WALL) + 20, int(WALL) + 30, int(WALL) + 40]
    assert all(point["borrows_per_s"] == 1.0 for point in points)


def test_a_gap_longer_than_the_ring_keeps_only_its_last_points(clock):
    ring = history(clock, size=4)
    clock.advance(7 + 3600)
    ring.sample(clock.now, activity(idle=1))
    points = ring.points()
    assert len(points) == 4
    last = int(WALL) + 3600
    assert [point["t"] for point in points] == [last - 30, last - 20, last - 10, last]
    assert ring.next_due == clock.now + 10


def test_the_default_ring_holds_an_hour(clock):
    ring = history(clock)
    clock.advance(7 + 2 * 3600)
    ring.sample(clock.now, activity())
    assert len(ring.points()) == 360


def test_a_step_of_the_wall_clock_shows_in_t(clock):
    ring = history(clock)
    clock.advance(7)
    ring.sample(clock.now, activity())
    clock.wall += 3600  # the system time was set forward an hour
    for _ in range(2):
        clock.advance(10)
        ring.sample(clock.now, activity())
    # The slot under way began before the step; the next one begins after it.
    t = [point["t"] for point in ring.points()]
    assert t == [int(WALL), int(WALL) + 10, int(WALL) + 3620]


def test_points_are_fresh_dicts(clock):
    ring = history(clock)
    clock.advance(7)
    ring.sample(clock.now, activity())
    ring.points()[0]["in_use"] = 99
    assert ring.points()[0]["in_use"] == 0
