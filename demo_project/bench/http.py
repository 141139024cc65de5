"""Requests per second of one tiny view under gunicorn and wrk, for each way to reach PostgreSQL.

Each run starts 2 gunicorn servers (1 worker x 8 threads each, gthread, each on its own port)
fresh for one configuration of ``demo_project.bench.site`` (``CONFIGS``: no pool, persistent
connections, Django's native pool and django_pool at half and at as many connections as
persistent's, dbcp, and a view without the database), warms them up, loads them with one wrk
over loopback, and records requests/s, p50/p99 latency, errors, the server connections they
held (sampled from ``pg_stat_activity``), CPU ms per request of every gunicorn process and how
wrk's keep-alive connections were split between the workers; for django_pool, also the share
of borrows that queued and the median wait and hold (the site's ``pool`` view, read before
and after the run). Servers of their own, rather than workers sharing one accept socket,
split the load exactly: a Lua script sends wrk's thread i to server i only, so each worker
gets the same number of connections (the kernel would hand them to whichever worker accepts
first: 24/8 or 0/32 as often as 16/16). Configurations are interleaved round by round and
reported as medians. ``run_sweep`` repeats the load over client counts for two of them.

Run ``python -m demo_project.bench.http`` for a table; ``BENCH_HTTP_ROUNDS``,
``BENCH_HTTP_SECONDS`` and ``BENCH_SWEEP_SECONDS`` shorten it. Needs ``wrk``
(``apt-get install -y wrk``), gunicorn, psutil and django-db-connection-pool.
"""

from __future__ import annotations

import ctypes
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from demo_project.bench.site import (
    CONFIGS,
    DEFAULT_APPLICATION_NAME,
    DJANGO_POOL_RELEASE,
    FIELDS,
    POOL,
    POOL_EQUAL,
    pool_size,
)
from demo_project.devdb import ROOT, connect_params, database_settings
from django_pool.stats import quantile, subtract

DB_NAME = "django_pool_bench"
WORKERS, THREADS = 2, 8  # WORKERS gunicorn servers of one worker each
SWEEP_CONFIGS = ("django_pool", "persistent")
UNPOOLED = ("no_pool", "persistent", "ceiling")
WARMUP_SECONDS = 1
SPLIT_SCRIPT = "split.lua"
# wrk runs setup() once per thread, in thread order, before the thread connects; the address it
# sets is where all that thread's connections go.
SPLIT_LUA = """-- Written by demo_project.bench.http: wrk's thread i loads gunicorn server i only.
local ports = {{{ports}}}
local next_server = 1

function setup(thread)
   thread.addr = wrk.lookup("127.0.0.1", tostring(ports[next_server]))[1]
   next_server = next_server + 1
end
"""
PR_SET_PDEATHSIG = 1
SAMPLE_EVERY = 0.2
APPLICATION_NAME = f"{DEFAULT_APPLICATION_NAME}:{os.getpid()}"  # this runner's sites only
MEDIAN_KEYS = ("rps", "p50_ms", "p99_ms", "errors", "server_conns_max", "cpu_ms_per_req")
COUNT_SQL = """
SELECT count(*) FROM pg_stat_activity
WHERE datname = current_database() AND backend_type = 'client backend'
  AND application_name = %s AND pid <> pg_backend_pid()
"""


def require_wrk() -> str:
    """Return wrk's path, or raise saying how to install it."""
    path = shutil.which("wrk")
    if path is None:
        raise RuntimeError("wrk is not installed: run `apt-get install -y wrk` (Debian/Ubuntu)")
    return path


def server_fields() -> dict:
    """Return the benchmark database's connection fields (creating it when embedded)."""
    settings = database_settings(DB_NAME)
    return {key: str(settings.get(key) or "") for key in FIELDS}


def connect(fields: dict):
    """Open an autocommit psycopg connection to the benchmark database, for sampling."""
    import psycopg

    return psycopg.connect(**connect_params(fields), autocommit=True)


def server_conns(conn) -> int:
    """Count the benchmark site's server connections, never the sampler's own."""
    return conn.execute(COUNT_SQL, [APPLICATION_NAME]).fetchone()[0]


class Sampler:
    """Count the site's server connections every ``SAMPLE_EVERY`` seconds on a thread."""

    def __init__(self, conn) -> None:
        self.conn, self.counts = conn, []
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self.loop, daemon=True)

    def loop(self) -> None:
        while not self.stop_event.is_set():
            self.counts.append(server_conns(self.conn))
            self.stop_event.wait(SAMPLE_EVERY)

    def __enter__(self) -> Sampler:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop_event.set()
        self.thread.join()


def free_ports(count: int) -> list[int]:
    """Return ``count`` different loopback TCP ports nobody listens on right now."""
    with ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in socks:  # all bound at once, so the kernel cannot hand out one port twice
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in socks]


def free_port() -> int:
    """Return a loopback TCP port nobody listens on right now."""
    return free_ports(1)[0]


def gunicorn_command(port: int, threads: int = THREADS) -> list[str]:
    """Return the command line of one single-worker gunicorn serving the site on ``port``."""
    return [
        sys.executable,
        "-m",
        "gunicorn",
        "demo_project.bench.site.wsgi:application",
        "--worker-class=gthread",
        "--workers=1",
        f"--threads={threads}",
        f"--bind=127.0.0.1:{port}",
        "--graceful-timeout=5",
        "--log-level=warning",
    ]


def wrk_threads(servers: int, clients: int) -> int:
    """Return wrk's thread count: one per server, each thread ``clients / servers`` connections.

    Fewer clients than servers load the first ``clients`` servers with one connection each.
    """
    threads = min(servers, clients)
    if clients % threads:
        raise ValueError(f"{clients} wrk connections cannot be split evenly over {servers} servers")
    return threads


def wrk_command(
    url: str,
    clients: int,
    seconds: float,
    timeout: float | None = None,
    script: str = SPLIT_SCRIPT,
    servers: int = WORKERS,
) -> list[str]:
    """Return the wrk command line for ``clients`` connections over ``seconds``.

    ``script`` sends each wrk thread to its own one of ``servers`` (see ``Servers``); ``url``
    names the path and the Host header. ``timeout`` replaces wrk's 2 s, after which a request
    counts as a socket error.
    """
    limit = [] if timeout is None else [f"--timeout={timeout:g}s"]
    return [
        require_wrk(),
        f"-t{wrk_threads(servers, clients)}",
        f"-c{clients}",
        f"-d{seconds:g}s",
        *limit,
        "--latency",
        "-s",
        script,
        url,
    ]


def commands(
    servers: int,
    threads: int,
    clients: int,
    seconds: float,
    path: str = "db",
    timeout: float | None = None,
) -> dict:
    """Describe the gunicorn and wrk command lines of a section, for the report."""
    gunicorn = ["gunicorn", *gunicorn_command(0, threads)[4:]]
    url = f"http://127.0.0.1:<port>/{path}"
    wrk = ["wrk", *wrk_command(url, clients, seconds, timeout, SPLIT_SCRIPT, servers)[1:]]
    return {
        "gunicorn": f"{servers} × {' '.join(gunicorn)}, one per port".replace(":0", ":<port>"),
        "wrk": " ".join(wrk),
    }


def stop_group(process: subprocess.Popen, timeout: float = 10.0) -> None:
    """End ``process`` and its process group: TERM, then KILL after ``timeout`` seconds."""
    if process.poll() is not None:
        return
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout)
            return
        except subprocess.TimeoutExpired:
            continue


def wait_until_answers(process: subprocess.Popen, url: str, timeout: float = 30.0) -> None:
    """Poll ``url`` until it answers 200, or raise if gunicorn dies or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"gunicorn exited with {process.returncode}: {process_errors(process)}"
            )
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"gunicorn did not answer {url} within {timeout:g}s")


def process_errors(process: subprocess.Popen) -> str:
    """Return the tail of a finished process's stderr (a file, see ``gunicorn``)."""
    if process.stderr is None:
        return ""
    process.stderr.seek(0)
    return process.stderr.read()[-2000:]


def die_with_parent() -> None:
    """Ask Linux to SIGTERM this child when the runner dies, so gunicorn never outlives it."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass  # not Linux: the runner's finally blocks still stop it on a normal exit


def view_path(config: str) -> str:
    """Return the path of the HTTP comparison's view for ``config``."""
    return "nodb" if config == "ceiling" else "db"


@dataclass
class Servers:
    """Single-worker gunicorn servers of one site, each on its own port, and wrk's split script."""

    processes: list[subprocess.Popen]
    ports: list[int]
    path: str
    script: Path

    @property
    def url(self) -> str:
        """Return the URL wrk is given: the script moves each thread to its own server."""
        return f"http://127.0.0.1:{self.ports[0]}/{self.path}"

    def wrk_command(self, clients: int, seconds: float, timeout: float | None = None) -> list:
        """Return the wrk command line loading these servers with ``clients`` connections."""
        return wrk_command(self.url, clients, seconds, timeout, str(self.script), len(self.ports))


def start_gunicorn(port: int, threads: int, env: dict, stderr) -> subprocess.Popen:
    """Start one single-worker gunicorn on ``port``, its stderr into the file ``stderr``."""
    process = subprocess.Popen(
        gunicorn_command(port, threads),
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=stderr,
        text=True,
        start_new_session=True,  # its own process group, so its worker is stopped with it
        preexec_fn=die_with_parent,  # safe: no other thread of ours runs at this point
    )
    process.stderr = stderr
    return process


@contextmanager
def gunicorn(
    config: str,
    fields: dict,
    threads: int = THREADS,
    path: str | None = None,
    server_count: int = WORKERS,
) -> Iterator[Servers]:
    """Serve ``config`` with ``server_count`` fresh gunicorns; yield them; always stop them."""
    env = {
        **os.environ,
        "BENCH_CONFIG": config,
        "BENCH_DB": json.dumps(fields),
        "BENCH_APPLICATION_NAME": APPLICATION_NAME,
        "DJANGO_SETTINGS_MODULE": "demo_project.bench.site.settings",
    }
    ports = free_ports(server_count)
    with ExitStack() as stack:
        script = Path(stack.enter_context(tempfile.TemporaryDirectory())) / SPLIT_SCRIPT
        script.write_text(SPLIT_LUA.format(ports=", ".join(map(str, ports))))
        processes = []
        for port in ports:
            # A file, not a pipe: a site answering 500s logs a traceback for each, and nobody
            # reads a pipe while wrk runs, so its worker would block once the pipe is full.
            stderr = stack.enter_context(tempfile.TemporaryFile("w+"))
            processes.append(start_gunicorn(port, threads, env, stderr))
            stack.callback(stop_group, processes[-1])
        servers = Servers(processes, ports, path or view_path(config), script)
        for process, port in zip(processes, ports, strict=True):
            wait_until_answers(process, f"http://127.0.0.1:{port}/{servers.path}")
        yield servers


def workers(servers: Servers, timeout: float = 10.0) -> list:
    """Return the worker process of each server, in the servers' order, once all are up."""
    import psutil

    found = []
    deadline = time.monotonic() + timeout
    for process in servers.processes:
        master = psutil.Process(process.pid)
        while not (children := master.children()) and time.monotonic() < deadline:
            time.sleep(0.1)
        if not children:
            raise RuntimeError(f"gunicorn {process.pid} started no worker in {timeout:g}s")
        found.append(children[0])
    return found


def cpu_seconds(processes: list) -> float:
    """Return user + system CPU seconds used so far by ``processes`` (all their threads)."""
    total = 0.0
    for process in processes:
        times = process.cpu_times()
        total += times.user + times.system
    return total


def split(workers_: list, ports: list[int]) -> dict[str, int]:
    """Return worker pid -> established client connections it holds on its server's port."""
    counts = {}
    for worker, port in zip(workers_, ports, strict=True):
        conns = worker.net_connections(kind="tcp")
        counts[str(worker.pid)] = sum(
            1 for conn in conns if conn.laddr.port == port and conn.status == "ESTABLISHED"
        )
    return counts


def wait_for_split(workers_: list, ports: list[int], clients: int, timeout: float = 2.0) -> dict:
    """Return the split once all ``clients`` connections are accepted (or at ``timeout``)."""
    deadline = time.monotonic() + timeout
    counts = split(workers_, ports)
    while sum(counts.values()) < clients and time.monotonic() < deadline:
        time.sleep(0.05)
        counts = split(workers_, ports)
    return counts


UNITS_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}


def duration_ms(text: str) -> float:
    """Convert a wrk duration such as ``1.23ms`` or ``850.00us`` to milliseconds."""
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if match is None:
        raise ValueError(f"unexpected wrk duration {text!r}")
    return float(match[1]) * UNITS_MS[match[2]]


def parse_wrk(output: str) -> dict:
    """Return requests, rps, p50/p99 ms and errors (non-2xx/3xx + socket errors) from wrk."""
    requests = re.search(r"(\d+) requests in", output)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    p50 = re.search(r"^\s+50%\s+(\S+)", output, re.MULTILINE)
    p99 = re.search(r"^\s+99%\s+(\S+)", output, re.MULTILINE)
    if not (requests and rps and p50 and p99):
        raise RuntimeError(f"could not parse wrk output:\n{output}")
    kinds = {"non_2xx": 0, "connect": 0, "read": 0, "write": 0, "timeout": 0}
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if non_2xx:
        kinds["non_2xx"] = int(non_2xx[1])
    pattern = r"Socket errors: connect (?P<connect>\d+), read (?P<read>\d+), write (?P<write>\d+), "
    sockets = re.search(pattern + r"timeout (?P<timeout>\d+)", output)
    if sockets:
        kinds.update({kind: int(count) for kind, count in sockets.groupdict().items()})
    return {
        "requests": int(requests[1]),
        "rps": float(rps[1]),
        "p50_ms": duration_ms(p50[1]),
        "p99_ms": duration_ms(p99[1]),
        "errors": sum(kinds.values()),
        "error_kinds": kinds,
    }


def run_wrk(command: list[str], timeout: float) -> str:
    """Run wrk to completion in its own process group and return its output."""
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    try:
        output, _ = process.communicate(timeout=timeout)
    finally:
        stop_group(process)
    if process.returncode != 0:
        raise RuntimeError(f"wrk failed ({process.returncode}):\n{output}")
    return output


def warm_up(servers: Servers, clients: int, timeout: float | None = None) -> None:
    """Load ``servers`` for ``WARMUP_SECONDS`` as the measured run will, and forget the numbers."""
    run_wrk(servers.wrk_command(clients, WARMUP_SECONDS, timeout), timeout=WARMUP_SECONDS + 30)


def pool_counts(servers: Servers) -> dict:
    """Return django_pool's borrow counts and cumulative histograms, summed over the servers."""
    total: dict = {}
    for port in servers.ports:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/pool", timeout=10) as response:
            found = json.load(response)
        for key, value in found.items():
            if key not in total:
                total[key] = value
            elif isinstance(value, list):
                total[key] = [mine + theirs for mine, theirs in zip(total[key], value, strict=True)]
            else:
                total[key] += value
    return total


def pool_figures(before: dict, after: dict) -> dict:
    """Return the share of borrows that queued, and the median wait and hold, between two
    ``pool_counts()``."""

    def added(key: str) -> list[int]:
        cumulative = subtract(after[key], before[key])
        return subtract(cumulative, [0, *cumulative[:-1]])

    borrows = after["borrows"] - before["borrows"]
    return {
        "queued_share": (after["queued"] - before["queued"]) / borrows if borrows else None,
        "wait_p50_ms": quantile(added("wait_ms"), 0.5),
        "hold_p50_ms": quantile(added("hold_ms"), 0.5),
    }


def measure(
    servers: Servers,
    clients: int,
    seconds: float,
    sampler_conn,
    timeout: float | None = None,
    ours: bool = False,
) -> dict:
    """Load the running servers with one wrk; return its numbers and the worker split.

    ``ours``: the site runs django_pool; add its ``pool_figures()`` for the run.
    """
    import psutil

    workers_ = workers(servers)
    masters = [psutil.Process(process.pid) for process in servers.processes]
    processes = [*masters, *workers_]
    pool_before = pool_counts(servers) if ours else None
    cpu_before = cpu_seconds(processes)
    wrk = subprocess.Popen(
        servers.wrk_command(clients, seconds, timeout),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        with Sampler(sampler_conn) as sampler:
            counts = wait_for_split(workers_, servers.ports, clients)
            output, _ = wrk.communicate(timeout=seconds + 30)
    finally:
        stop_group(wrk)
    cpu_used = cpu_seconds(processes) - cpu_before
    if wrk.returncode != 0:
        raise RuntimeError(f"wrk failed ({wrk.returncode}):\n{output}")
    result = parse_wrk(output)
    if pool_before is not None:
        result.update(pool_figures(pool_before, pool_counts(servers)))
    conns = sampler.counts or [0]
    return {
        **result,
        "server_conns_max": max(conns),
        "server_conns_median": statistics.median(conns),
        "cpu_ms_per_req": cpu_used * 1e3 / max(result["requests"], 1),
        "split": counts,
    }


def wait_for_no_conns(conn, timeout: float = 15.0) -> None:
    """Wait until the site's server connections are all gone, or raise after ``timeout``."""
    deadline = time.monotonic() + timeout
    while (left := server_conns(conn)) and time.monotonic() < deadline:
        time.sleep(0.1)
    if left:
        raise RuntimeError(
            f"{left} server connections still open {timeout:g}s after gunicorn ended"
        )


def run_one(
    config: str,
    clients: int,
    seconds: float,
    fields: dict,
    sampler_conn,
    threads: int = THREADS,
    path: str | None = None,
    wrk_timeout: float | None = None,
) -> dict:
    """Serve ``config`` fresh, warm it up, measure one wrk run and stop it; return the run."""
    wait_for_no_conns(sampler_conn)
    with gunicorn(config, fields, threads, path) as servers:
        warm_up(servers, clients, wrk_timeout)
        ours = config in DJANGO_POOL_RELEASE
        run = measure(servers, clients, seconds, sampler_conn, wrk_timeout, ours)
    wait_for_no_conns(sampler_conn)
    run.pop("requests")
    return {"config": config, "clients": clients, **run}


def medians(runs: list[dict]) -> dict:
    """Return the median of each reported number over ``runs``."""
    return {key: statistics.median(run[key] for run in runs) for key in MEDIAN_KEYS}


def versions() -> dict:
    """Return the versions of everything in the measurement path."""
    found = {}
    for package in ("Django", "gunicorn", "psycopg", "psycopg2-binary", "psycopg-pool"):
        found[package] = metadata.version(package)
    found["django-db-connection-pool"] = metadata.version("django-db-connection-pool")
    found["wrk"] = (
        subprocess.run([require_wrk(), "-v"], capture_output=True, text=True, check=False)
        .stdout.split("[")[0]
        .strip()
    )
    found["python"] = sys.version.split()[0]
    return found


def setup(fields: dict, clients: int, seconds: float, sampler_conn) -> dict:
    """Describe how the runs were made, for the report."""
    server_version = sampler_conn.execute("SHOW server_version").fetchone()[0]
    pooled = [config for config in CONFIGS if config not in UNPOOLED]
    return {
        **commands(WORKERS, THREADS, clients, seconds),
        "workers": WORKERS,
        "threads": THREADS,
        "warmup_seconds": WARMUP_SECONDS,
        "pool": POOL,
        "pool_equal": POOL_EQUAL,
        "pool_max_size": {config: pool_size(config)["max_size"] for config in pooled},
        "dbcp_pool_options": {"POOL_SIZE": POOL["max_size"], "MAX_OVERFLOW": 0},
        "database": "DATABASE_URL" if os.environ.get("DATABASE_URL") else "embedded",
        "server_version": server_version,
        "cpus": os.cpu_count(),
        "versions": versions(),
    }


def run_http(rounds: int = 3, seconds: float = 8.0, clients: int = 32) -> dict:
    """Run every configuration ``rounds`` times, interleaved; return runs and medians."""
    fields = server_fields()
    with connect(fields) as sampler_conn:
        result = {"configs": {config: {"runs": []} for config in CONFIGS}}
        for round_ in range(1, rounds + 1):
            for config in CONFIGS:
                run = run_one(config, clients, seconds, fields, sampler_conn)
                result["configs"][config]["runs"].append({**run, "round": round_})
        for entry in result["configs"].values():
            entry["median"] = medians(entry["runs"])
        result["setup"] = {**setup(fields, clients, seconds, sampler_conn), "rounds": rounds}
    return result


def run_sweep(clients=(1, 2, 4, 8, 16, 32, 64), seconds: float = 4.0) -> dict:
    """Run ``SWEEP_CONFIGS`` once at each client count, interleaved; return the points."""
    fields = server_fields()
    points = []
    with connect(fields) as sampler_conn:
        for count in clients:
            for config in SWEEP_CONFIGS:
                run = run_one(config, count, seconds, fields, sampler_conn)
                keys = ("config", "clients", "rps", "p99_ms", "server_conns_max", "errors")
                points.append({key: run[key] for key in keys})
    return {"points": points, "seconds": seconds}


def print_http(result: dict) -> None:
    """Print the medians per configuration as a table."""
    print(f"\n| {'config':<17} | req/s | p50 ms | p99 ms | errors | server conns | CPU ms/req |")
    print(f"|{'-' * 19}|------:|-------:|-------:|-------:|-------------:|-----------:|")
    for config, entry in result["configs"].items():
        m = entry["median"]
        print(
            f"| {config:<17} | {m['rps']:5.0f} | {m['p50_ms']:6.2f} | {m['p99_ms']:6.2f} "
            f"| {m['errors']:6g} | {m['server_conns_max']:12g} | {m['cpu_ms_per_req']:10.3f} |"
        )
    for config, entry in result["configs"].items():
        splits = ["/".join(str(n) for n in run["split"].values()) for run in entry["runs"]]
        print(f"  {config} worker split per round: {' '.join(splits)}")


def print_sweep(result: dict) -> None:
    """Print the concurrency sweep as a table."""
    print(f"\n| clients | {'config':<12} | req/s | p99 ms | server conns |")
    print(f"|--------:|{'-' * 14}|------:|-------:|-------------:|")
    for point in result["points"]:
        print(
            f"| {point['clients']:7} | {point['config']:<12} | {point['rps']:5.0f} "
            f"| {point['p99_ms']:6.2f} | {point['server_conns_max']:12} |"
        )


def main() -> None:
    """Run the HTTP comparison and the sweep, sized by environment variables, and print them."""
    rounds = int(os.environ.get("BENCH_HTTP_ROUNDS", "3"))
    seconds = float(os.environ.get("BENCH_HTTP_SECONDS", "8"))
    sweep_seconds = float(os.environ.get("BENCH_SWEEP_SECONDS", "4"))
    # A plain SIGTERM (a timeout, a CI cancel) unwinds the finally blocks that stop gunicorn.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    start = time.monotonic()
    http = run_http(rounds, seconds)
    print(json.dumps(http["setup"], indent=1))
    print_http(http)
    print_sweep(run_sweep(seconds=sweep_seconds))
    print(f"\n{time.monotonic() - start:.0f}s in all")


if __name__ == "__main__":
    main()
