"""manage.py simulate_traffic and demo_project/traffic.py: load on a live server, and the sums."""

from __future__ import annotations

import re
import socket
import threading
import time
from collections import Counter
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from demo_project.leaderboard.models import Score
from demo_project.shop.models import Order, Product
from demo_project.tenants.models import Visit
from demo_project.traffic import (
    Plan,
    Recorder,
    Result,
    Traffic,
    parse_mix,
    pool_figures,
    run,
    summarize,
)
from django_pool.stats import Histogram


def simulate(*args: str) -> str:
    """Run the command with ``args``; return what it printed."""
    out = StringIO()
    call_command("simulate_traffic", *args, stdout=out)
    return out.getvalue()


def figure(output: str, row: str) -> list[str]:
    """Return the cells of the summary's table row that starts with ``row``."""
    match = re.search(rf"^\W*{re.escape(row)}\s*│(.*)$", output, re.MULTILINE)
    assert match, f"no row {row!r} in:\n{output}"
    return [cell.strip() for cell in match.group(1).split("│") if cell.strip()]


@pytest.fixture
def fast_hashing(settings):
    # Logging in hashes the password: the default hasher takes most of a second on purpose.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.django_db(transaction=True, databases=["default", "other"])
def test_a_short_run_reports_what_the_site_answered(live_server, django_user_model, fast_hashing):
    django_user_model.objects.create_superuser("ops", password="secret")
    products = [
        Product.objects.create(name="Beans", price=Decimal("24.90"), stock=1000),
        Product.objects.create(name="Grinder", price=Decimal("89.00"), stock=3),  # some 409s
    ]
    output = simulate(
        f"--url={live_server.url}/demo",
        f"--login-url={live_server.url}/admin/login/",
        f"--stats-url={live_server.url}/pool/stats.json",
        "--user=ops",
        "--password=secret",
        f"--products={products[0].pk},{products[1].pk}",
        "--requests=60",
        "--concurrency=4",
        "--mix=orders=1,scores=1,reads=1,tenants=1",
        "--seed=1",
    )
    assert figure(output, "Requests")[0].startswith("60 in ")
    kinds = ("orders", "scores", "reads", "tenants")
    orders, scores, reads, tenants = (figure(output, kind) for kind in kinds)
    assert sum(int(kind[0]) for kind in (orders, scores, reads, tenants)) == 60
    assert tenants[1] == f"200 × {tenants[0]}"
    assert Visit.objects.using("other").count() + Visit.objects.count() == int(tenants[0])
    assert f"201 × {Score.objects.count()}" in scores[1] and Score.objects.exists()
    assert f"201 × {Order.objects.count()}" in orders[1] and Order.objects.exists()
    assert reads[1] == f"200 × {reads[0]}"
    before, after, change = map(int, figure(output, "Borrows"))
    assert after > before and change == after - before
    assert "unavailable" not in output


@pytest.mark.django_db(transaction=True)
def test_a_wrong_password_still_runs_and_says_why_there_are_no_pool_figures(
    live_server, fast_hashing
):
    Product.objects.create(name="Beans", price=Decimal("24.90"), stock=1000)
    output = simulate(
        f"--url={live_server.url}/demo",
        f"--login-url={live_server.url}/admin/login/",
        "--password=wrong",
        "--requests=5",
        "--mix=reads=1",
    )
    assert figure(output, "Requests")[0].startswith("5 in ")
    words = " ".join(output.split())
    assert "Pool figures unavailable: the admin refused 'demo' with that password" in words


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--concurrency=0"], "--concurrency must be 1 or more"),
        (["--duration=0"], "--duration must be a number of seconds above 0"),
        (["--requests=0"], "--requests must be 1 or more"),
        (["--duration=5", "--requests=5"], "not allowed with argument"),
        (["--mix=pizza=1"], "--mix takes name=weight pairs"),
        (["--mix=orders=-1"], "weights: whole numbers, 0 or more"),
        (["--mix=orders=0,reads=0"], "not all 0"),
        (["--products=1,x"], "--products takes product ids separated by commas"),
        (["--url=localhost:8000"], "--url must be an http:// URL, e.g. http://127.0.0.1:8000"),
    ],
)
def test_bad_options_say_how_to_fix_them(args, message):
    with pytest.raises(CommandError, match=re.escape(message)):
        simulate(*args)


def test_a_site_that_is_not_running_says_to_start_the_demo():
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(CommandError) as raised:
        simulate(f"--url={url}", "--requests=1")
    assert str(raised.value) == (
        f"Cannot reach {url}/: connection refused. Start the demo with `make demo` first, "
        "or pass --url."
    )


def test_parse_mix_takes_weights_and_leaves_out_kinds_at_0():
    assert parse_mix("orders=2,scores=3,reads=5") == {
        "orders": 2,
        "scores": 3,
        "reads": 5,
        "tenants": 0,
    }
    assert parse_mix(" reads = 1 ") == {"orders": 0, "scores": 0, "reads": 1, "tenants": 0}


@pytest.mark.parametrize("text", ["orders", "pizza=1", "orders=-1", "orders=1.5", "reads=0", ""])
def test_parse_mix_refuses_what_it_cannot_read(text):
    with pytest.raises(ValueError, match="--mix takes name=weight pairs"):
        parse_mix(text)


def test_summarize_counts_outcomes_and_takes_percentiles_by_nearest_rank():
    special = {1: ("orders", "409"), 2: ("orders", "201"), 100: ("scores", "timeout")}
    results = [Result(*special.get(ms, ("reads", "200")), float(ms)) for ms in range(100, 0, -1)]
    summary = summarize(results, elapsed_s=4.0)
    assert (summary.requests, summary.per_second) == (100, 25.0)
    assert (summary.p50_ms, summary.p95_ms, summary.p99_ms) == (50.0, 95.0, 99.0)
    assert summary.errors == Counter({"409": 1, "timeout": 1})
    assert summary.by_kind == {
        "orders": Counter({"409": 1, "201": 1}),
        "scores": Counter({"timeout": 1}),
        "reads": Counter({"200": 97}),
        "tenants": Counter(),
    }
    assert summarize([], elapsed_s=0.0).p50_ms is None


def test_the_same_seed_sends_the_same_requests():
    mix = parse_mix("orders=1,scores=1,reads=1")
    first, again = (Traffic("http://site", mix, (1, 2), seed=7) for _ in range(2))
    assert [first.call(n) for n in range(50)] == [again.call(n) for n in range(50)]
    assert {call.kind for call in map(first.call, range(50))} == {"orders", "scores", "reads"}


def test_a_burst_sends_from_more_threads_in_the_middle_third_only():
    active = 0
    most: dict[int, int] = {}  # request number -> threads sending when it started
    lock = threading.Lock()

    def send_number(number: int) -> Result:
        nonlocal active
        with lock:
            active += 1
            most[number] = active
        time.sleep(0.002)
        with lock:
            active -= 1
        return Result("reads", "200", 2.0)

    recorder = Recorder()
    run(Plan(requests=300), send_number, 2, recorder, burst=True)
    assert len(recorder.results) == 300 and sorted(most) == list(range(1, 301))
    assert max(most[number] for number in range(1, 101)) <= 2
    assert max(most[number] for number in range(101, 201)) > 2


def test_pool_figures_sum_every_process_and_alias():
    def snapshot(borrows: int, waits_ms: list[float]) -> dict:
        histogram = Histogram()
        for ms in waits_ms:
            histogram.add(ms)
        stats = {"requests_num": borrows, "requests_queued": len(waits_ms), "connections_num": 1}
        return {"stats": stats, "wait_ms": histogram.summary()}

    processes = [
        {"pools": {"default": snapshot(10, [0.0, 3.0]), "other": snapshot(1, [])}},
        {"pools": {"default": snapshot(5, [40.0])}},
    ]
    figures = pool_figures({"local": {}, "processes": processes})
    assert (figures.borrows, figures.waits, figures.connections, figures.pools) == (16, 3, 3, 3)
    assert sum(figures.wait_counts) == 3
    assert 25.0 < figures.wait_p95_ms() <= 50.0


def test_ctrl_c_ends_the_run_once_the_requests_being_sent_are_back():
    def send_number(number: int) -> Result:
        time.sleep(0.001)
        return Result("reads", "200", 1.0)

    ticks = iter([KeyboardInterrupt])

    def interrupt() -> None:
        for error in ticks:  # only the first time, as one Ctrl-C
            raise error

    plan, recorder = Plan(requests=100_000), Recorder()
    run(plan, send_number, 4, recorder, burst=True, tick=interrupt, tick_s=0.01)
    assert plan.stopped and plan.take() is None
    assert 0 < len(recorder.results) < 100_000
