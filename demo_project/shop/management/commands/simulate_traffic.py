import math
import random
import time
import urllib.parse
from collections import Counter, deque

from django.core.management.base import BaseCommand, CommandError
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from demo_project.traffic import (
    BURST_FACTOR,
    KINDS,
    Plan,
    PoolFigures,
    PoolReader,
    PoolUnavailable,
    Recorder,
    Summary,
    Traffic,
    parse_ids,
    parse_mix,
    preflight,
    run,
    summarize,
)

DEFAULT_URL = "http://127.0.0.1:8000"
DEFAULT_DURATION_S = 30.0


class Command(BaseCommand):
    help = (
        "Send the running demo site a mix of orders, scores and reads from threads, then show "
        "the latencies, the errors and what the pool did meanwhile."
    )

    def add_arguments(self, parser):
        parser.add_argument("--url", default=DEFAULT_URL, help=f"the site (default {DEFAULT_URL})")
        length = parser.add_mutually_exclusive_group()
        length.add_argument(
            "--duration",
            type=float,
            metavar="SECONDS",
            help=f"send for this long (default {DEFAULT_DURATION_S:g})",
        )
        length.add_argument("--requests", type=int, metavar="N", help="send N requests")
        parser.add_argument(
            "--concurrency", type=int, default=8, metavar="N", help="worker threads (default 8)"
        )
        parser.add_argument(
            "--mix",
            default="orders=2,scores=3,reads=4,tenants=1",
            help="weights of the kinds of request (default orders=2,scores=3,reads=4,tenants=1)",
        )
        parser.add_argument(
            "--products",
            default="1,2,3,4,5",
            help="ids to order (default the 5 samples: 1,2,3,4,5)",
        )
        parser.add_argument(
            "--burst",
            action="store_true",
            help=f"{BURST_FACTOR}× the threads during the middle third of the run",
        )
        parser.add_argument("--seed", type=int, help="repeat the requests of an earlier run")
        parser.add_argument(
            "--user", default="demo", help="a staff user who may see the pool (default demo)"
        )
        parser.add_argument("--password", default="demo", help="its password (default demo)")
        parser.add_argument("--login-url", help="the admin login page (default <url>/admin/login/)")
        parser.add_argument("--stats-url", help="pool stats (default <url>/pool/stats.json)")

    def handle(self, *args, **options):
        base_url, mix, products, requests, duration = _checked(options)
        reason = preflight(base_url)
        if reason is not None:
            raise CommandError(
                f"Cannot reach {base_url}/: {reason}. Start the demo with `make demo` first, "
                "or pass --url."
            )
        seed = options["seed"] if options["seed"] is not None else random.randrange(10**6)
        traffic = Traffic(base_url, mix, products, seed)
        reader = PoolReader(
            options["login_url"] or f"{base_url}/admin/login/",
            options["stats_url"] or f"{base_url}/pool/stats.json",
            options["user"],
            options["password"],
        )
        before, unavailable = _read_pool(reader, log_in=True)

        self.stdout.ending = ""  # rich ends its own lines
        console = Console(file=self.stdout, highlight=False)
        workers = options["concurrency"]
        plan = Plan(requests=requests, duration_s=duration)
        console.print(_announce(traffic, plan, workers, options["burst"]))
        recorder = Recorder()
        with _progress(console) as progress:
            ticker = _Ticker(progress, plan, recorder)
            elapsed = run(
                plan, traffic.send, workers, recorder, burst=options["burst"], tick=ticker
            )
        if plan.stopped:
            console.print("Stopped by Ctrl-C: the figures are those of the requests sent so far.")
        if before is not None:
            after, unavailable = _read_pool(reader)

        summary = summarize(recorder.results, elapsed)
        console.print(_traffic_table(summary, elapsed))
        console.print(_kinds_table(summary))
        if unavailable is None:
            console.print(_pool_table(before, after))
        else:
            console.print(f"Pool figures unavailable: {unavailable}.")


def _checked(
    options: dict,
) -> tuple[str, dict[str, int], tuple[int, ...], int | None, float | None]:
    """Return the site's URL, mix, products, requests and duration; raise CommandError if bad."""
    base_url = options["url"].rstrip("/")
    parts = urllib.parse.urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise CommandError(f"--url must be an http:// URL, e.g. {DEFAULT_URL}; not {base_url!r}.")
    if options["concurrency"] < 1:
        raise CommandError("--concurrency must be 1 or more (worker threads), e.g. 8.")
    requests, duration = options["requests"], options["duration"]
    if requests is not None and requests < 1:
        raise CommandError("--requests must be 1 or more, e.g. --requests 500.")
    if duration is not None and not (duration > 0 and math.isfinite(duration)):
        raise CommandError("--duration must be a number of seconds above 0, e.g. --duration 30.")
    if requests is None and duration is None:
        duration = DEFAULT_DURATION_S
    try:
        mix, products = parse_mix(options["mix"]), parse_ids(options["products"])
    except ValueError as error:
        raise CommandError(str(error)) from error
    return base_url, mix, products, requests, duration


def _read_pool(reader: PoolReader, log_in: bool = False) -> tuple[PoolFigures | None, str | None]:
    """Return the pool figures, or None and why they cannot be read."""
    try:
        if log_in:
            reader.login()
        return reader.read(), None
    except PoolUnavailable as error:
        return None, str(error)


def _announce(traffic: Traffic, plan: Plan, workers: int, burst: bool) -> str:
    length = f"{plan.requests} requests" if plan.requests else f"{plan.duration_s:g} s"
    mix = ", ".join(f"{kind}={traffic.mix[kind]}" for kind in KINDS)
    lines = [
        f"Sending {length} to {traffic.base_url}/ from {workers} threads "
        f"(mix {mix}; seed {traffic.seed}: pass --seed {traffic.seed} to send the same requests)."
    ]
    if burst:
        if plan.requests:
            third = f"requests {plan.requests // 3 + 1} to {2 * plan.requests // 3}"
        else:
            third = f"seconds {plan.duration_s / 3:g} to {2 * plan.duration_s / 3:g}"
        lines.append(
            f"Burst: {workers * BURST_FACTOR} threads ({BURST_FACTOR}×) during the middle "
            f"third of the run ({third})."
        )
    return "\n".join(lines)


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[done]}"),
        TimeElapsedColumn(),
        TextColumn("{task.fields[rate]:7.1f} req/s"),
        TextColumn("{task.fields[errors]} errors"),
        console=console,
    )


class _Ticker:
    """Move the progress bar: how far the run is, the req/s of the last second, the errors."""

    def __init__(self, progress: Progress, plan: Plan, recorder: Recorder) -> None:
        self.progress, self.plan, self.recorder = progress, plan, recorder
        self.task = progress.add_task("Sending", total=1.0, done="", rate=0.0, errors=0)
        self._seen: deque[tuple[float, int]] = deque()

    def __call__(self) -> None:
        now = time.monotonic()
        done, errors = self.recorder.counts()
        self._seen.append((now, done))
        while len(self._seen) > 2 and now - self._seen[0][0] > 1.0:
            self._seen.popleft()
        then, done_then = self._seen[0]
        total = f"/{self.plan.requests}" if self.plan.requests else ""
        self.progress.update(
            self.task,
            completed=self.plan.progress(),
            description="Burst" if self.plan.in_burst() else "Sending",
            done=f"{done}{total} requests",
            rate=(done - done_then) / (now - then) if now > then else 0.0,
            errors=errors,
        )


def _traffic_table(summary: Summary, elapsed: float) -> Table:
    table = Table(title="Traffic", show_header=False)
    table.add_column("Figure")
    table.add_column("Value", justify="right")
    table.add_row("Requests", f"{summary.requests} in {elapsed:.1f} s")
    table.add_row("Requests/s", f"{summary.per_second:.1f}")
    for name, value in (("p50", summary.p50_ms), ("p95", summary.p95_ms), ("p99", summary.p99_ms)):
        table.add_row(f"Latency {name}", "–" if value is None else f"{value:.1f} ms")
    table.add_row("Errors", _outcomes(summary.errors) or "none")
    return table


def _kinds_table(summary: Summary) -> Table:
    table = Table(title="By kind")
    table.add_column("Kind")
    table.add_column("Requests", justify="right")
    table.add_column("Answers (HTTP status or error × count)")
    for kind, outcomes in summary.by_kind.items():
        table.add_row(kind, str(sum(outcomes.values())), _outcomes(outcomes))
    return table


def _outcomes(outcomes: Counter) -> str:
    return ", ".join(f"{outcome} × {count}" for outcome, count in sorted(outcomes.items()))


def _pool_table(before: PoolFigures, after: PoolFigures) -> Table:
    pools = f"{after.pools} pool{'' if after.pools == 1 else 's'}"
    table = Table(
        title="Pool",
        caption=f"Summed over {pools} (process × alias); the p95 wait's change is the p95 "
        "of the run's own waits.",
    )
    for name in ("Figure", "Before", "After", "Change"):
        table.add_column(name, justify="left" if name == "Figure" else "right")
    for name, field in (
        ("Borrows", "borrows"),
        ("Waits", "waits"),
        ("Connections opened", "connections"),
    ):
        start, end = getattr(before, field), getattr(after, field)
        table.add_row(name, str(start), str(end), f"{end - start:+d}")
    table.add_row(
        "p95 wait, ms",
        *(_ms(value) for value in (before.wait_p95_ms(), after.wait_p95_ms())),
        _ms(after.wait_p95_ms(since=before)),
    )
    return table


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}"
