"""The dashboard's data from snapshots: numbers, gauges, chart coordinates, time axis, tables."""

from __future__ import annotations

from datetime import timezone
from zoneinfo import ZoneInfo

import pytest

from django_pool import dashboard
from django_pool.dashboard import BOTTOM, LEFT, RIGHT, TOP
from django_pool.options import PoolConfig
from django_pool.pool import ConnectionPool
from django_pool.stats import POINT_KEYS

from .fakes import FakeConnect, FakeDriver

# 2023-11-14 22:20:00 UTC, a round minute: the time axis's labels are easy to predict.
NOW = 1_700_000_400.0
UTC = timezone.utc


@pytest.fixture(scope="module")
def real_snapshot():
    """Return a snapshot of a real pool (fake driver): every key the dashboard reads."""
    pool = ConnectionPool(FakeConnect(), PoolConfig(name="real", min_size=0), FakeDriver())
    try:
        pool.putconn(pool.getconn())
        return pool.snapshot()
    finally:
        pool.close()


def point(t: float, **values) -> dict:
    calm = dict.fromkeys(POINT_KEYS, 0)
    calm.update(t=t, borrows_per_s=5.0, wait_p95_ms=None, hold_ms=None, in_use=1, idle=1)
    return {**calm, **values}


def snapshot(real: dict, points: list[dict], *, max_size: int = 10, **stats) -> dict:
    """Return the real snapshot with these history points, max_size and stats."""
    return {
        **real,
        "taken_at": NOW,
        "config": {**real["config"], "max_size": max_size},
        "stats": {**real["stats"], "pool_max": max_size, **stats},
        "history": {"interval_s": 10, "points": points},
    }


def coordinates(points: str) -> list[tuple[float, float]]:
    return [tuple(float(n) for n in pair.split(",")) for pair in points.split()]


# Scales


@pytest.mark.parametrize(
    "value, top",
    [(0, 1), (0.4, 1), (1, 1), (1.2, 2), (3, 5), (7, 10), (10, 10), (11, 20), (240, 250)],
)
def test_the_value_axis_ends_at_a_round_number(value, top):
    assert dashboard.nice_ceiling(value) == top


def test_a_polyline_maps_time_to_x_and_value_to_y_within_the_plot():
    line = dashboard.polyline([0.0, 50.0, 100.0], [0.0, 5.0, 20.0], 0.0, 100.0, 10.0)
    assert coordinates(line) == [
        (LEFT, BOTTOM),
        ((LEFT + RIGHT) / 2, (TOP + BOTTOM) / 2),
        (RIGHT, TOP),  # above the top: clipped to it, never drawn outside
    ]


def test_time_labels_are_round_wall_clock_minutes_of_the_time_zone():
    ticks = dashboard.time_ticks(NOW - 3600, NOW, UTC)
    assert [tick["label"] for tick in ticks] == [
        "21:20",
        "21:30",
        "21:40",
        "21:50",
        "22:00",
        "22:10",
        "22:20",
    ]
    assert ticks[0]["x"] == LEFT and ticks[-1]["x"] == RIGHT
    # Labels at the edges lean inwards, so none is cut off by the chart's border.
    assert [tick["anchor"] for tick in ticks] == ["start", *["middle"] * 5, "end"]
    # A zone half an hour off UTC still gets labels on its own round minutes.
    kolkata = dashboard.time_ticks(NOW - 600, NOW, ZoneInfo("Asia/Kolkata"))
    assert [tick["label"] for tick in kolkata] == [
        "03:40",
        "03:42",
        "03:44",
        "03:46",
        "03:48",
        "03:50",
    ]


# Charts


def test_a_spike_is_drawn_where_and_when_it_happened(real_snapshot):
    points = [point(NOW - 600 + 10 * i) for i in range(60)]
    points[30] = point(NOW - 300, in_use=10, waiting=4, wait_p95_ms=180.0, errors=3)
    charts = dashboard.charts(snapshot(real_snapshot, points), UTC)
    middle = (LEFT + RIGHT) / 2
    for name in ("in_use", "waiting", "wait_p95_ms", "errors"):
        line = coordinates(charts[name]["series"][0]["points"])
        x, y = min(line, key=lambda xy: xy[1])  # the highest point
        assert x == pytest.approx(middle, abs=0.1), name
        assert y < BOTTOM, name
    # The max line runs across the whole chart at max_size, the in-use peak reaches it.
    max_line = coordinates(charts["in_use"]["series"][1]["points"])
    assert max_line == [(LEFT, TOP), (RIGHT, TOP)]
    assert charts["waiting"]["y_ticks"][-1]["label"] == "5"
    assert charts["wait_p95_ms"]["y_ticks"][-1]["label"] == "200"
    assert charts["in_use"]["latest"] == "peak, last 10 s: 1"


def test_charts_cover_the_last_hour_and_at_least_ten_minutes(real_snapshot):
    old = [point(NOW - 7200 + 10 * i) for i in range(720)]
    charts = dashboard.charts(snapshot(real_snapshot, old), UTC)
    line = coordinates(charts["borrows_per_s"]["series"][0]["points"])
    # An hour of 10 s slots, each a step (its start and end); the older ones are dropped.
    assert len(line) == 2 * 360
    young = dashboard.charts(snapshot(real_snapshot, [point(NOW - 20), point(NOW - 10)]), UTC)
    xs = [x for x, _ in coordinates(young["in_use"]["series"][0]["points"])]
    assert xs[0] > RIGHT - 0.05 * (RIGHT - LEFT)  # 20 s of 10 min, at the right edge
    assert [tick["label"] for tick in young["in_use"]["x_ticks"]][-1] == "22:20"


def test_each_slot_is_a_step_so_a_single_one_shows(real_snapshot):
    charts = dashboard.charts(snapshot(real_snapshot, [point(NOW - 10, waiting=2)]), UTC)
    (start, end) = coordinates(charts["waiting"]["series"][0]["points"])
    assert start[1] == end[1] == TOP  # 2 of an axis up to 2
    assert end[0] == RIGHT and start[0] == pytest.approx(RIGHT - (RIGHT - LEFT) / 60, abs=0.1)


def test_the_value_axis_labels_are_short():
    assert [tick["label"] for tick in dashboard.value_ticks(2500.0)] == ["0", "1.2k", "2.5k"]


def test_a_pool_without_history_has_empty_charts(real_snapshot):
    charts = dashboard.charts(snapshot(real_snapshot, []), UTC)
    assert all(chart["empty"] for chart in charts.values())
    assert charts["waiting"]["series"][0]["points"] == ""
    assert charts["in_use"]["series"][1]["points"]  # max_size is known all the same


# Cards


@pytest.mark.parametrize(
    "value, text", [(None, "–"), (0.0, "0.0 ms"), (2.345, "2.3 ms"), (180.4, "180 ms")]
)
def test_milliseconds_read_as_people_read_them(value, text):
    assert dashboard.ms(value) == text


def test_a_card_has_the_numbers_gauges_and_options(real_snapshot):
    snap = snapshot(
        real_snapshot,
        [],
        max_size=8,
        pool_in_use=6,
        pool_available=2,
        requests_waiting=3,
        requests_num=120,
        requests_timeouts=2,
    )
    health = {"status": "warning", "reasons": ["why"], "recommendations": ["what to do"]}
    card = dashboard.card("default", snap, health, UTC)
    fields = card["fields"]
    assert (fields["in_use"], fields["idle"], fields["max_size"], fields["waiting"]) == (
        "6",
        "2",
        "8",
        "3",
    )
    assert (fields["requests_num"], fields["timeouts"]) == ("120", "2")
    assert fields["wait_p95"].endswith(" ms") and fields["hold_p50"].endswith(" ms")
    assert card["gauges"]["in_use"] == {"x": 0.0, "width": 75.0}
    assert card["gauges"]["idle"] == {"x": 75.0, "width": 25.0}
    assert card["gauges"]["waiting"]["width"] == 37.5  # 3 of a queue as wide as the pool
    assert card["health"] == health
    assert ["max_size", "8"] in card["config"]
    assert card["server"]["up"] and fields["server"] == "up"


def test_a_card_says_since_when_the_server_is_down(real_snapshot):
    snap = snapshot(
        real_snapshot, [], server_down_ms=65_000, last_connect_error="connection refused"
    )
    server = dashboard.card(
        "default", snap, {"status": "critical", "reasons": [], "recommendations": []}, UTC
    )["server"]
    assert (server["up"], server["text"], server["since"]) == (False, "down", "2023-11-14 22:18:55")
    assert server["last_error"] == "connection refused"


# Tables


def test_the_processes_table_marks_this_process_and_ages_the_others(real_snapshot):
    busy = snapshot(real_snapshot, [], pool_in_use=4, requests_waiting=1)
    entries = [
        {"host": "web-1", "pid": 10, "published_at": NOW - 7, "pools": {"default": busy}},
        {"host": "web-2", "pid": 20, "published_at": NOW, "pools": {"default": busy}},
    ]
    table = dashboard.process_table(entries, NOW, "web-2", 20)
    first, second = table["rows"]
    assert [cell["text"] for cell in first["cells"]][:5] == ["web-1", "10", "default", "4/10", "1"]
    assert first["cells"][-1]["text"] == "7 s" and not first["me"]
    assert second["me"] and second["cells"][1]["text"] == "20 (this one)"
    assert second["cells"][6]["status"] in {"ok", "warning", "critical"}


def server_view(*processes) -> dict:
    return {"max_connections": 25, "reserved": 3, "connections": 12, "processes": list(processes)}


def backend(state: str, seconds: float = 1.0) -> dict:
    return {
        "pid": 1,
        "state": state,
        "seconds_in_state": seconds,
        "xact_seconds": None,
        "database": "shop",
        "user": "web",
    }


def test_the_server_section_flags_idle_in_transaction_and_checks_capacity(real_snapshot):
    ours = {
        "host": "web-1",
        "pid": 10,
        "alias": "default",
        "application_name": "django_pool:default:10@web-1",
        "client_addr": None,
        "connections": 1,
        "states": {"idle": 1},
        "longest": None,
        "backends": [backend("idle")],
    }
    stuck = {
        "host": "10.0.0.9",
        "pid": None,
        "alias": None,
        "application_name": "<b>psql</b>",
        "client_addr": "10.0.0.9",
        "connections": 1,
        "states": {"idle in transaction": 1},
        "longest": {"state": "idle in transaction", "seconds": 42.0},
        "backends": [backend("idle in transaction", 42.0)],
    }
    local = {"default": snapshot(real_snapshot, [])}
    processes = [
        {"host": f"web-{i}", "pid": i, "published_at": NOW, "pools": local} for i in range(3)
    ]
    data = dashboard.build(
        local,
        processes=processes,
        servers=[{"where": "db:5432", "aliases": ["default"], "view": server_view(ours, stuck)}],
        now=NOW,
        tz=UTC,
        host="web-0",
        pid=0,
    )
    (section,) = data["servers"]
    assert section["capacity"] == [
        {
            "text": "default: 3 processes × max_size 10 = 30 exceeds max_connections 25",
            "status": "warning",
        }
    ]
    rows = section["table"]["rows"]
    assert [row["flagged"] for row in rows] == [False, True]
    assert rows[1]["cells"][2]["text"] == "<b>psql</b>"  # escaped by the template, as text by JS
    assert rows[1]["cells"][-1]["text"] == "idle in transaction 42.0 s"
    # The card's verdict sees the server too: the processes overrun max_connections.
    (card,) = data["cards"]
    assert card["health"]["status"] == "warning"
    assert any("max_connections 25" in reason for reason in card["health"]["reasons"])


def test_a_server_that_cannot_be_read_says_why(real_snapshot):
    local = {"default": snapshot(real_snapshot, [])}
    data = dashboard.build(
        local,
        processes=None,
        servers=[{"where": "db:5432", "aliases": ["default"], "view": {"error": "refused"}}],
        now=NOW,
        tz=UTC,
        host="web-0",
        pid=0,
    )
    assert data["servers"] == [{"where": "db:5432", "aliases": ["default"], "error": "refused"}]
    assert data["processes"] is None
    assert data["cards"][0]["health"]["status"] == "ok"


def test_charts_are_drawn_again_only_when_a_history_slot_closes(real_snapshot):
    points = [point(NOW - 600 + 10 * i) for i in range(60)]
    first = dashboard.charts(snapshot(real_snapshot, points), UTC)
    polled_later = {**snapshot(real_snapshot, points), "taken_at": NOW + 7}
    assert dashboard.charts(polled_later, UTC) is first  # the same slots: nothing to draw
    closed = snapshot(real_snapshot, [*points, point(NOW)])
    redrawn = dashboard.charts(closed, UTC)
    assert redrawn is not first
    assert redrawn["in_use"]["series"][0]["points"] != first["in_use"]["series"][0]["points"]
