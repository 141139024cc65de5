"""Health verdicts over crafted snapshots: one test or more per rule."""

from __future__ import annotations

import pytest

from django_pool import health
from django_pool.health import verdict, worst
from django_pool.options import PoolConfig
from django_pool.pool import ConnectionPool
from django_pool.stats import POINT_KEYS

from .fakes import FakeConnect, FakeDriver

TAKEN_AT = 1_700_000_300.0  # 2023-11-14 22:18:20 UTC


def point(**values):
    """Return a history point of a calm slot, with ``values`` changed."""
    calm = dict.fromkeys(POINT_KEYS, 0)
    calm.update(borrows_per_s=10.0, wait_p95_ms=0.0, hold_ms=20.0, in_use=1, idle=1)
    unknown = set(values) - set(POINT_KEYS)
    assert not unknown, unknown
    return {**calm, **values}


def snapshot(points=None, *, max_size=10, max_waiting=0, connect_p95=2.0, **stats):
    """Return a snapshot like ConnectionPool.snapshot()'s, of 30 calm points by default."""
    points = [point() for _ in range(30)] if points is None else points
    return {
        "name": "default",
        "pid": 4242,
        "host": "web-1",
        "server": "host=db dbname=shop",
        "taken_at": TAKEN_AT,
        "config": {"max_size": max_size, "max_waiting": max_waiting, "min_size": 2},
        "stats": {"server_down_ms": 0, "last_connect_error": None, "pool_in_use": 0, **stats},
        "wait_ms": {"count": 0, "sum": 0.0, "p50": None, "p95": None, "p99": None, "buckets": []},
        "connect_ms": {"p95": connect_p95},
        "history": {"interval_s": 10, "points": points},
    }


def calm_then(*busy, calm=25):
    """Return 30 points: ``calm`` calm ones, then ``busy`` ones, then calm ones."""
    busy = list(busy)
    return [point() for _ in range(calm)] + busy + [point() for _ in range(30 - calm - len(busy))]


# A clean bill


def test_a_calm_pool_is_ok_with_a_one_line_summary():
    result = verdict(snapshot(calm_then(point(in_use=3))))
    assert result == {
        "status": "ok",
        "reasons": ["p95 wait 0 ms over the last 5 min, peak 3/10 in use"],
        "recommendations": [],
    }


def test_an_unused_pool_is_ok():
    points = [point(borrows_per_s=0.0, wait_p95_ms=None, hold_ms=None, in_use=0)] * 30
    assert verdict(snapshot(points))["reasons"] == [
        "no borrows over the last 5 min, peak 0/10 in use"
    ]


def test_a_new_pool_without_history_is_ok():
    result = verdict(snapshot([], pool_in_use=2))
    assert result["status"] == "ok"
    assert result["reasons"] == ["no history yet, 2/10 in use"]


def test_only_the_last_5_minutes_count():
    old_trouble = [point(timeouts=5, lost=2, in_use=10, wait_p95_ms=900.0)] * 10
    assert verdict(snapshot(old_trouble + calm_then()))["status"] == "ok"


def test_a_verdict_works_on_a_real_snapshot():
    pool = ConnectionPool(FakeConnect(), PoolConfig(name="real", min_size=0), FakeDriver())
    try:
        pool.putconn(pool.getconn())
        assert verdict(pool.snapshot())["status"] == "ok"
    finally:
        pool.close()


# Critical


def test_a_server_down_is_critical_and_says_since_when_and_why():
    error = 'connection to server at "db" failed: Connection refused'
    result = verdict(snapshot(server_down_ms=65_000, last_connect_error=error))
    assert result["status"] == "critical"
    assert result["reasons"] == [
        "server unreachable for 65 s (since 2023-11-14 22:17:15 UTC); last error: " + error
    ]
    assert result["recommendations"] == [
        "check HOST and PORT in DATABASES, and that the database server (host=db dbname=shop) "
        "is up and accepts connections"
    ]


def test_a_refused_login_says_what_the_server_said_and_what_to_check():
    error = (
        'connection to server at "db" failed: FATAL:  password authentication failed for user "x"'
    )
    result = verdict(snapshot(server_down_ms=5_000, last_connect_error=error))
    assert result["status"] == "critical"
    assert result["reasons"][0].startswith("login refused by the server for 5 s")
    (advice,) = result["recommendations"]
    assert advice.startswith("the server said 'password authentication failed for user \"x\"'")
    assert "PASSWORD" in advice and "pg_hba.conf" in advice
    assert "is up" not in advice, "the server answered: it is up"


def test_timeouts_are_critical_with_how_many_and_the_peak():
    points = calm_then(point(timeouts=3, in_use=10), point(timeouts=1, in_use=10))
    result = verdict(snapshot(points))
    assert result["status"] == "critical"
    assert result["reasons"][0] == "4 borrows timed out over the last 5 min, peak 10/10 in use"
    assert "raise max_size to ~11" in result["recommendations"][0]


def test_refused_borrows_are_critical_too():
    result = verdict(snapshot(calm_then(point(too_many=2, in_use=10)), max_waiting=20))
    assert result["status"] == "critical"
    assert result["reasons"][0] == (
        "2 refused (max_waiting=20) over the last 5 min, peak 10/10 in use"
    )


def test_timeouts_without_a_full_pool_point_at_slow_connects():
    result = verdict(snapshot(calm_then(point(timeouts=1, in_use=4)), connect_p95=2500.0))
    assert result["reasons"] == ["1 borrow timed out over the last 5 min, peak 4/10 in use"]
    assert result["recommendations"] == [
        "connections are slow to open (connect p95 2500 ms): check the server's load and "
        "the network"
    ]


# Slow waits with every connection in use


def busy_minute(p95=120.0, in_use=10, borrows_per_s=500.0, hold_ms=25.0):
    return [
        point(wait_p95_ms=p95, in_use=in_use, borrows_per_s=borrows_per_s, hold_ms=hold_ms)
        for _ in range(6)
    ]


def test_slow_waits_at_max_size_recommend_a_size_from_littles_law():
    # 500 borrows/s × 25 ms held = 12.5 connections busy; × 1.25 headroom = 15.6 -> 16.
    result = verdict(snapshot(calm_then(*busy_minute(), calm=20)))
    assert result["status"] == "warning"
    reason = "p95 wait 120 ms over the last 5 min with 10/10 in use"
    assert result["reasons"] == [reason]
    assert result["recommendations"] == [f"{reason}: raise max_size to ~16"]


def test_the_recommendation_names_the_server_s_room():
    server = {"max_connections": 100, "connections": 34}
    result = verdict(snapshot(calm_then(*busy_minute(), calm=20)), server=server)
    assert result["recommendations"] == [
        "p95 wait 120 ms over the last 5 min with 10/10 in use: raise max_size to ~16; "
        "the server allows 100 connections and 34 are in use"
    ]


def test_the_recommendation_is_capped_by_the_server_s_room():
    server = {"max_connections": 100, "connections": 90}
    points = calm_then(*busy_minute(), calm=20)
    (recommendation,) = verdict(snapshot(points), server=server, processes=4)["recommendations"]
    # 10 free connections for 4 processes: 2 more each, not the 6 wanted.
    assert ": raise max_size to ~12 (~16 would be needed, but the server allows 100" in (
        recommendation
    )
    assert "shared by 4 processes" in recommendation
    assert recommendation.endswith("raise max_connections or put PgBouncer in front")


def test_the_recommendation_says_when_the_server_has_no_room():
    server = {"max_connections": 100, "connections": 100}
    points = calm_then(*busy_minute(), calm=20)
    (recommendation,) = verdict(snapshot(points), server=server)["recommendations"]
    assert "~16 connections would be needed, but the server allows 100 connections" in (
        recommendation
    )


def test_a_suggestion_is_at_least_one_more_than_max_size():
    # Little's law says 2.5 busy: the pool is full for another reason (long holds at peaks).
    points = calm_then(*busy_minute(borrows_per_s=100.0), calm=20)
    assert "raise max_size to ~11" in verdict(snapshot(points))["recommendations"][0]


def test_slow_waits_below_max_size_are_not_the_pool_s_fault():
    points = calm_then(*busy_minute(in_use=7), calm=20)
    assert verdict(snapshot(points))["status"] == "ok"


def test_a_single_slow_slot_among_busy_calm_ones_is_no_warning():
    points = calm_then(point(wait_p95_ms=900.0, in_use=10, borrows_per_s=1.0))
    result = verdict(snapshot(points))
    assert result["status"] == "ok"
    assert result["reasons"] == ["p95 wait 0 ms over the last 5 min, peak 10/10 in use"]


@pytest.mark.parametrize(("p95", "status"), [(49.9, "ok"), (50.0, "warning")])
def test_the_slow_wait_threshold(p95, status):
    points = [point(wait_p95_ms=p95, in_use=10) for _ in range(30)]
    assert verdict(snapshot(points))["status"] == status


def test_timeouts_and_slow_waits_give_one_recommendation():
    busy = busy_minute()
    busy[0]["timeouts"] = 2
    result = verdict(snapshot(calm_then(*busy, calm=20)))
    assert result["status"] == "critical"
    assert len(result["reasons"]) == 2
    assert len(result["recommendations"]) == 1
    assert result["recommendations"][0].startswith("p95 wait 120 ms")


# Too many connections for the server


def test_processes_times_max_size_over_max_connections_is_a_warning():
    server = {"max_connections": 100, "connections": 20}
    result = verdict(snapshot(max_size=20), server=server, processes=8)
    assert result["status"] == "warning"
    assert result["recommendations"] == [
        "8 processes × max_size 20 = 160 exceeds the server's max_connections 100: "
        "lower max_size to ~11"
    ]


def test_a_single_process_may_exceed_it_too():
    result = verdict(snapshot(max_size=200), server={"max_connections": 100, "connections": 5})
    assert result["reasons"] == [
        "1 process × max_size 200 = 200 exceeds the server's max_connections 100"
    ]


def test_lowered_max_size_is_at_least_one():
    result = verdict(
        snapshot(max_size=2), server={"max_connections": 3, "connections": 1}, processes=10
    )
    assert result["recommendations"][0].endswith("lower max_size to ~1")


def test_processes_within_max_connections_are_fine():
    result = verdict(snapshot(), server={"max_connections": 100, "connections": 50}, processes=9)
    assert result["status"] == "ok"


# Lost connections


@pytest.mark.parametrize(
    ("key", "reason", "advice"),
    [
        ("lost", "2 connections failed the check on borrow", "max_idle"),
        ("returns_bad", "2 connections returned broken", "server restarts"),
        ("reclaimed", "2 connections reclaimed from threads that exited", "reclaiming"),
        ("leaked", "2 borrows held past leak_timeout", "past leak_timeout"),
    ],
)
def test_lost_connections_are_a_warning(key, reason, advice):
    result = verdict(snapshot(calm_then(point(**{key: 1}), point(**{key: 1}))))
    assert result["status"] == "warning"
    (text,) = result["reasons"]
    assert text.startswith(reason)
    assert text.endswith("over the last 5 min")
    assert advice in result["recommendations"][0]


def test_one_lost_connection_is_singular():
    result = verdict(snapshot(calm_then(point(lost=1))))
    assert result["reasons"] == ["1 connection failed the check on borrow over the last 5 min"]


# Combining


def test_findings_come_worst_first_with_their_recommendations():
    points = calm_then(point(timeouts=1, in_use=10, lost=1))
    result = verdict(snapshot(points, server_down_ms=1000, last_connect_error="refused"))
    assert result["status"] == "critical"
    assert result["reasons"][0].startswith("server unreachable")
    assert result["reasons"][1].startswith("1 borrow timed out")
    assert result["reasons"][2].startswith("1 connection failed the check")
    assert len(result["recommendations"]) == 3


def test_worst_combines_verdicts_or_statuses():
    ok, warning = {"status": "ok"}, {"status": "warning"}
    assert worst([ok, warning, ok]) == "warning"
    assert worst(["ok", "critical", "warning"]) == "critical"
    assert worst([]) == "ok"


def test_thresholds_are_module_constants():
    assert (health.WINDOW_POINTS, health.SLOW_WAIT_P95_MS, health.HEADROOM) == (30, 50.0, 1.25)


# Connections held across other work: release="transaction"


def held_idle(held=4, busy=0, **values):
    """Return 30 points in which ``busy`` of ``held`` borrowed connections ran a query."""
    return [point(held_seen=held, busy_seen=busy, **values) for _ in range(30)]


def test_connections_held_far_longer_than_queries_suggest_release_per_transaction():
    result = verdict(snapshot(held_idle(held=4, busy=0) + held_idle(held=4, busy=1)[:10]))
    assert result["status"] == "ok"
    assert result["reasons"][0].startswith("p95 wait")  # the summary still comes first
    assert result["reasons"][1] == (
        "borrowed connections were running a query in 10 of 120 looks over the last 5 min "
        "(8%): they are held across other work"
    )
    (advice,) = result["recommendations"]
    assert advice.startswith('set OPTIONS["pool"]["release"] = "transaction"')


def test_held_connections_that_borrowers_wait_for_make_it_a_warning():
    points = held_idle(held=10, busy=1, in_use=10, wait_p95_ms=120.0)
    result = verdict(snapshot(points))
    assert result["status"] == "warning"
    assert any('"release"] = "transaction"' in advice for advice in result["recommendations"])


@pytest.mark.parametrize(
    ("held", "busy", "config", "suggested"),
    [
        (40, 10, {}, True),  # held 4x as long as queried: the threshold
        (40, 11, {}, False),
        (19, 0, {}, False),  # too few looks to judge
        (40, 0, {"release": "transaction"}, False),  # already
    ],
)
def test_when_release_per_transaction_is_suggested(held, busy, config, suggested):
    points = [point() for _ in range(29)] + [point(held_seen=held, busy_seen=busy)]
    data = snapshot(points)
    data["config"].update(config)
    recommendations = verdict(data)["recommendations"]
    assert any("release" in advice for advice in recommendations) is suggested
