"""Send the demo site a mix of requests from threads, and sum up what came back.

``manage.py simulate_traffic`` is the front end. The parts that need no network (parse_mix,
choose, percentile, summarize, pool_figures) are plain functions; Traffic, run() and
PoolReader do the HTTP with the standard library's urllib.
"""

from __future__ import annotations

import http.client
import json
import math
import random
import re
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from http.cookiejar import CookieJar
from typing import Any, NamedTuple

from django_pool.stats import quantile, subtract

KINDS = ("orders", "scores", "reads", "tenants")
MIX_FORM = (
    "name=weight pairs separated by commas, e.g. orders=2,scores=3,reads=4,tenants=1 "
    "(names: orders, scores, reads, tenants; weights: whole numbers, 0 or more, not all 0)"
)
# Long enough for a site that is slow under load, short enough for a stuck one to show.
TIMEOUT_S = 10.0
# The burst: this many times the workers, during the middle third of the run.
BURST_FACTOR = 4
READ_PATHS = ("/", "/leaderboard/?format=json")
# The demo's two tenants, each on its own database alias and pool.
TENANT_PATHS = ("/tenants/small/", "/tenants/large/")


class Call(NamedTuple):
    """One request to send: its kind (one of KINDS), method, path and JSON body."""

    kind: str
    method: str
    path: str
    body: dict[str, Any] | None = None


class Result(NamedTuple):
    """What one request came back with, and how long it took."""

    kind: str
    outcome: str  # the HTTP status ("201"), or what went wrong ("timeout")
    latency_ms: float

    @property
    def ok(self) -> bool:
        """Return whether the site answered with a status below 400."""
        return self.outcome.isdecimal() and int(self.outcome) < 400


def parse_mix(text: str) -> dict[str, int]:
    """Turn ``"orders=2,scores=3,reads=4,tenants=1"`` into weights by kind; raise if bad.

    A kind left out gets weight 0: ``reads=1`` sends only reads.
    """
    mix = dict.fromkeys(KINDS, 0)
    for pair in text.split(","):
        name, equals, weight = (part.strip() for part in pair.partition("="))
        if name not in mix or not equals:
            raise ValueError(f"--mix takes {MIX_FORM}; {pair.strip()!r} is not one.")
        if not weight.isdecimal():
            raise ValueError(f"--mix takes {MIX_FORM}; the weight of {name} is {weight!r}.")
        mix[name] = int(weight)
    if not any(mix.values()):
        raise ValueError(f"--mix takes {MIX_FORM}; all of {text!r} are 0.")
    return mix


def parse_ids(text: str) -> tuple[int, ...]:
    """Turn ``"1,2,3"`` into product ids; raise ValueError if one is not a positive number."""
    ids = tuple(part.strip() for part in text.split(","))
    if not all(part.isdecimal() and int(part) > 0 for part in ids):
        raise ValueError(
            f"--products takes product ids separated by commas, e.g. 1,2,3; not {text!r}."
        )
    return tuple(int(part) for part in ids)


def choose(rng: random.Random, mix: dict[str, int], products: Sequence[int]) -> Call:
    """Pick the kind of a request by the weights of ``mix``, then what it asks."""
    kind = rng.choices(KINDS, weights=[mix[kind] for kind in KINDS])[0]
    if kind == "orders":
        chosen = rng.sample(products, k=min(len(products), rng.randint(1, 2)))
        items = [{"product": pk, "quantity": rng.randint(1, 3)} for pk in chosen]
        body = {"customer": f"c{rng.randint(1, 50)}", "items": items}
        return Call(kind, "POST", "/shop/orders/", body)
    if kind == "scores":
        body = {"player": f"player{rng.randint(1, 20)}", "points": rng.randint(0, 1000)}
        return Call(kind, "POST", "/leaderboard/scores/", body)
    if kind == "tenants":
        return Call(kind, "GET", rng.choice(TENANT_PATHS))
    return Call(kind, "GET", rng.choice(READ_PATHS))


def percentile(ordered: Sequence[float], q: float) -> float | None:
    """Return the ``q``-quantile (0..1) of sorted values by nearest rank; None if empty."""
    if not ordered:
        return None
    return ordered[max(math.ceil(q * len(ordered)) - 1, 0)]


@dataclass
class Summary:
    """The numbers of a run: counts, rate, latency percentiles, outcomes by kind."""

    requests: int
    per_second: float
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    errors: Counter[str]  # outcome (status or exception kind) -> count, failures only
    by_kind: dict[str, Counter[str]]  # kind -> outcome -> count, every outcome


def summarize(results: Sequence[Result], elapsed_s: float) -> Summary:
    """Sum up ``results``, the requests of a run that took ``elapsed_s`` seconds."""
    latencies = sorted(result.latency_ms for result in results)
    by_kind: dict[str, Counter[str]] = {kind: Counter() for kind in KINDS}
    for result in results:
        by_kind[result.kind][result.outcome] += 1
    return Summary(
        requests=len(results),
        per_second=len(results) / elapsed_s if elapsed_s > 0 else 0.0,
        p50_ms=percentile(latencies, 0.50),
        p95_ms=percentile(latencies, 0.95),
        p99_ms=percentile(latencies, 0.99),
        errors=Counter(result.outcome for result in results if not result.ok),
        by_kind=by_kind,
    )


def error_kind(error: BaseException) -> str:
    """Name what went wrong with a request that got no HTTP answer, for counting."""
    reason = error.reason if isinstance(error, urllib.error.URLError) else error
    if isinstance(reason, TimeoutError):
        return "timeout"
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused"
    # Before ConnectionResetError, its base class.
    if isinstance(reason, http.client.RemoteDisconnected):
        return "disconnected"
    if isinstance(reason, ConnectionResetError):
        return "connection reset"
    if isinstance(reason, socket.gaierror):
        return "unknown host"
    return type(reason).__name__ if isinstance(reason, BaseException) else str(reason)


def send(base_url: str, call: Call) -> Result:
    """Send ``call`` to the site at ``base_url``; return its outcome and latency."""
    data = None if call.body is None else json.dumps(call.body).encode()
    headers = {} if data is None else {"Content-Type": "application/json"}
    request = urllib.request.Request(
        base_url + call.path, data=data, headers=headers, method=call.method
    )
    started = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
            response.read()
            outcome = str(response.status)
    except urllib.error.HTTPError as error:
        with error:
            error.read()
        outcome = str(error.code)
    except (OSError, http.client.HTTPException) as error:
        outcome = error_kind(error)
    return Result(call.kind, outcome, (time.monotonic() - started) * 1000.0)


class Traffic:
    """The requests of a run: with the same seed, request number n is the same request."""

    def __init__(
        self, base_url: str, mix: dict[str, int], products: Sequence[int], seed: int
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.mix = mix
        self.products = products
        self.seed = seed

    def call(self, number: int) -> Call:
        """Return request ``number``, whichever thread asks and whenever."""
        return choose(random.Random(f"{self.seed}:{number}"), self.mix, self.products)

    def send(self, number: int) -> Result:
        """Send request ``number`` and return what came back."""
        return send(self.base_url, self.call(number))


class Plan:
    """Hand out request numbers until the run is over: after N requests, or after T seconds."""

    def __init__(
        self,
        requests: int | None = None,
        duration_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if (requests is None) == (duration_s is None):
            raise ValueError("a plan ends after a number of requests or a duration, not both")
        self.requests = requests
        self.duration_s = duration_s
        self._clock = clock
        self._lock = threading.Lock()
        self._taken = 0
        self.stopped = False
        self.started = clock()

    def take(self) -> int | None:
        """Return the next request's number, or None when the run is over."""
        with self._lock:
            if self.progress() >= 1.0:
                return None
            self._taken += 1
            return self._taken

    def progress(self) -> float:
        """Return how far the run is, from 0 to 1."""
        if self.stopped:
            return 1.0
        if self.requests is not None:
            return self._taken / self.requests
        return min(self.elapsed() / self.duration_s, 1.0)

    def stop(self) -> None:
        """End the run early: the workers finish the request they are sending, and no more."""
        self.stopped = True

    def elapsed(self) -> float:
        """Return the seconds since the plan started."""
        return self._clock() - self.started

    def in_burst(self) -> bool:
        """Return whether the run is in its middle third, where a burst sends."""
        return 1 / 3 <= self.progress() < 2 / 3


class Recorder:
    """Collect the results of every worker thread, with running counts for the progress bar."""

    def __init__(self) -> None:
        self.results: list[Result] = []
        self.errors = 0
        self._lock = threading.Lock()

    def add(self, result: Result) -> None:
        """Keep one request's result."""
        with self._lock:
            self.results.append(result)
            self.errors += not result.ok

    def counts(self) -> tuple[int, int]:
        """Return how many requests were done, and how many of them failed."""
        with self._lock:
            return len(self.results), self.errors


def run(
    plan: Plan,
    send_number: Callable[[int], Result],
    workers: int,
    recorder: Recorder,
    *,
    burst: bool = False,
    tick: Callable[[], None] = lambda: None,
    tick_s: float = 0.2,
) -> float:
    """Send requests from ``workers`` threads until ``plan`` ends; return the seconds taken.

    With ``burst``, ``BURST_FACTOR - 1`` times as many threads more join in during the middle
    third of the run. ``tick`` is called in this thread every ``tick_s`` seconds meanwhile.
    Ctrl-C stops the plan: the run ends once the requests being sent are back.
    """
    extra = workers * (BURST_FACTOR - 1) if burst else 0
    with ThreadPoolExecutor(workers + extra, thread_name_prefix="traffic") as pool:
        futures = [
            pool.submit(_work, plan, send_number, recorder, index >= workers)
            for index in range(workers + extra)
        ]
        try:
            while wait(futures, timeout=tick_s, return_when=FIRST_EXCEPTION).not_done:
                tick()
        except KeyboardInterrupt:
            plan.stop()
        for future in futures:
            future.result()  # a worker's bug is raised here, not lost
    tick()
    return plan.elapsed()


def _work(
    plan: Plan, send_number: Callable[[int], Result], recorder: Recorder, bursting: bool
) -> None:
    """Send requests one after the other; a burst's worker only during the burst."""
    while True:
        if bursting and not plan.in_burst():
            if plan.progress() >= 2 / 3:
                return
            time.sleep(0.01)  # before the burst
            continue
        number = plan.take()
        if number is None:
            return
        recorder.add(send_number(number))


def preflight(base_url: str) -> str | None:
    """GET the site's home page; return why it cannot be reached, or None if it answered."""
    result = send(base_url.rstrip("/"), Call("reads", "GET", "/"))
    return None if result.outcome.isdecimal() else result.outcome


class PoolFigures(NamedTuple):
    """The pools' figures at one moment, summed over every pool that stats.json shows."""

    borrows: int  # requests_num: getconn() calls
    waits: int  # requests_queued: borrows that found no idle connection and waited
    connections: int  # connections_num: connections opened
    wait_counts: list[int]  # the wait histogram's count per bucket of stats.BOUNDS_MS
    pools: int  # how many pools (process × alias) were summed

    def wait_p95_ms(self, since: PoolFigures | None = None) -> float | None:
        """Return the p95 wait of every borrow, or of those after ``since``; None if none."""
        counts = (
            self.wait_counts if since is None else subtract(self.wait_counts, since.wait_counts)
        )
        return quantile(counts, 0.95)


def pool_figures(stats: dict[str, Any]) -> PoolFigures:
    """Sum the pools of a ``/pool/stats.json`` answer; raise KeyError if it is not one.

    ``processes`` has every process's pools (this one's fresh, the others' as they last
    published them) when the site publishes to a cache; else only the answering process's.
    """
    snapshots = [
        snapshot for entry in stats["processes"] for snapshot in entry["pools"].values()
    ] or list(stats["local"].values())
    borrows = waits = connections = 0
    wait_counts = [0] * len(snapshots[0]["wait_ms"]["buckets"]) if snapshots else []
    for snapshot in snapshots:
        borrows += snapshot["stats"]["requests_num"]
        waits += snapshot["stats"]["requests_queued"]
        connections += snapshot["stats"]["connections_num"]
        cumulative = [count for _, count in snapshot["wait_ms"]["buckets"]]
        for index, count in enumerate(subtract(cumulative, [0, *cumulative[:-1]])):
            wait_counts[index] += count
    return PoolFigures(borrows, waits, connections, wait_counts, len(snapshots))


class PoolUnavailable(Exception):
    """The pool figures cannot be read; the message says why."""


class PoolReader:
    """Log in through the admin's login form, then read ``/pool/stats.json`` as that user."""

    _TOKEN = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')

    def __init__(self, login_url: str, stats_url: str, username: str, password: str) -> None:
        self.login_url = login_url
        self.stats_url = stats_url
        self.username = username
        self.password = password
        self._cookies = CookieJar()
        self._opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(self._cookies)
        )

    def login(self) -> None:
        """Log in, keeping the session cookie; raise PoolUnavailable saying why not."""
        match = self._TOKEN.search(self._fetch(self.login_url).decode(errors="replace"))
        if match is None:
            raise PoolUnavailable(f"{self.login_url} has no login form with a CSRF token")
        form = {
            "csrfmiddlewaretoken": match.group(1),
            "username": self.username,
            "password": self.password,
            # Where the admin goes after logging in: the stats, which say whether it may.
            "next": urllib.parse.urlsplit(self.stats_url).path,
        }
        # Django checks the Referer of a form posted over HTTPS.
        self._fetch(
            self.login_url,
            data=urllib.parse.urlencode(form).encode(),
            headers={"Referer": self.login_url},
        )
        if not any(cookie.name == "sessionid" for cookie in self._cookies):
            raise PoolUnavailable(
                f"the admin refused {self.username!r} with that password: pass --user and "
                "--password of an active staff user (manage.py ensure_demo_user makes demo/demo)"
            )

    def read(self) -> PoolFigures:
        """Return the pool figures now; raise PoolUnavailable saying why not."""
        try:
            return pool_figures(json.loads(self._fetch(self.stats_url)))
        except (ValueError, KeyError, TypeError, IndexError) as error:
            raise PoolUnavailable(
                f"{self.stats_url} did not answer the pool's stats JSON ({error!r})"
            ) from error

    def _fetch(
        self, url: str, data: bytes | None = None, headers: dict[str, str] | None = None
    ) -> bytes:
        request = urllib.request.Request(url, data=data, headers=headers or {})
        try:
            with self._opener.open(request, timeout=TIMEOUT_S) as response:
                return response.read()
        except urllib.error.HTTPError as error:
            error.close()
            hint = (
                f": is {self.username!r} an active staff user with the pool's view permission?"
                if error.code == 403
                else ""
            )
            raise PoolUnavailable(f"{url} answered {error.code} {error.reason}{hint}") from error
        except (OSError, http.client.HTTPException) as error:
            raise PoolUnavailable(f"{url}: {error_kind(error)}") from error
