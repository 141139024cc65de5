"""The pooled ENGINE under a real ASGI server: uvicorn serving async and sync views at once."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn  # a dev dependency: without it this module fails, it never skips
from django.db import connections

from demo_project import devdb
from tests.testapp.models import Item

# tests/asgi_settings.py gives the server's pool these.
MAX_SIZE = 4
LEAK_TIMEOUT = 2.0
CLIENT_THREADS = 32
# Server log words that mean a connection was not given back, an async view used the sync ORM,
# or anything else raised.
BAD_LOG_WORDS = ("reclaim", "leak", "SynchronousOnlyOperation", "Traceback")


def free_port() -> int:
    """Return a local TCP port that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def fetch(url: str) -> tuple[int, str]:
    """GET ``url``; return the status and body, also of an error response."""
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


class AsgiServer:
    """A uvicorn process serving tests.asgi with tests/asgi_settings.py on the test database."""

    def __init__(self, logs: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.stderr_path = logs / "uvicorn.stderr"
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tests.asgi_settings",
            "DJANGO_POOL_TEST_DATABASE": connections["default"].settings_dict["NAME"],
        }
        command = [sys.executable, "-m", uvicorn.__name__, "tests.asgi:application"]
        # Django does not speak ASGI's lifespan protocol; "off" keeps uvicorn from trying.
        options = ["--host", "127.0.0.1", "--port", str(self.port), "--lifespan", "off"]
        # Files, not pipes: nobody reads them during the load, and a full pipe stalls the server.
        with self.stderr_path.open("w") as stderr:
            self.process = subprocess.Popen(
                [*command, *options, "--no-access-log"],
                cwd=devdb.ROOT,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )

    def get(self, path: str) -> dict:
        """GET ``path``, which must answer 200; return the decoded JSON."""
        status, body = fetch(self.url + path)
        assert status == 200, body
        return json.loads(body)

    def stats(self) -> dict:
        """Return the server process's pid and its default pool's stats."""
        return self.get("/pool-stats/")

    def stderr(self) -> str:
        return self.stderr_path.read_text()

    def wait_until_serving(self, seconds: float = 20.0) -> None:
        deadline = time.monotonic() + seconds
        while True:
            if self.process.poll() is not None:
                pytest.fail(f"uvicorn exited with {self.process.returncode}:\n{self.stderr()}")
            try:
                self.stats()
                return
            except (urllib.error.URLError, ConnectionError):
                if time.monotonic() > deadline:
                    pytest.fail(f"uvicorn did not serve within {seconds} s:\n{self.stderr()}")
                time.sleep(0.05)

    def stop(self) -> None:
        """End the server as a process manager would (SIGTERM: uvicorn's graceful shutdown)."""
        if self.process.poll() is None:
            self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def wait_until_gone(server, pid: int) -> None:
    """Wait until the server process's backends have ended; later tests count connections."""
    deadline = time.monotonic() + 5.0
    while server.connections("default", pid=pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    pattern = f"django_pool:%:{pid}@%"
    server.query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name LIKE %s",
        [pattern],
    )


@pytest.fixture
def asgi_server(server, tmp_path) -> Iterator[AsgiServer]:
    asgi = AsgiServer(tmp_path)
    try:
        asgi.wait_until_serving()
        yield asgi
    finally:
        asgi.stop()
        wait_until_gone(server, asgi.process.pid)


@dataclass
class Peak:
    most: int = 0
    samples: int = 0


@contextmanager
def peak_connections(server, pid: int) -> Iterator[Peak]:
    """Sample how many server connections process ``pid``'s pool holds, until the block ends."""
    peak = Peak()
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak.most = max(peak.most, server.connections("default", pid=pid))
            peak.samples += 1
            time.sleep(0.002)  # leave the clients and the server the CPU

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        yield peak
    finally:
        done.set()
        sampler.join()


def mixed_paths(item_pk: int, rounds: int) -> list[str]:
    """Return ``rounds`` of every async and sync view that uses the ORM, interleaved."""
    one_round = [
        "/async/count/",
        f"/async/items/{item_pk}/",
        "/async/create/",
        "/async/await/",
        "/items/",  # a sync view: Django runs it in the request's thread
        "/session/",
    ]
    return one_round * rounds


def wait_for_in_use(asgi: AsgiServer, count: int, seconds: float = 2.0) -> dict:
    """Poll the server's stats until ``count`` connections are borrowed; return the last stats."""
    deadline = time.monotonic() + seconds
    stats = asgi.stats()
    while stats["pool_in_use"] != count and time.monotonic() < deadline:
        time.sleep(0.02)
        stats = asgi.stats()
    return stats


def send_and_keep_open(asgi: AsgiServer, path: str) -> socket.socket:
    """Send a GET for ``path`` and return the socket, unread, for the caller to hang up."""
    client = socket.create_connection(("127.0.0.1", asgi.port))
    client.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    return client


def assert_clean_log(asgi: AsgiServer) -> None:
    """Stop the server (a traceback at shutdown counts too) and check what it logged."""
    asgi.stop()
    log = asgi.stderr()
    assert not [word for word in BAD_LOG_WORDS if word in log], log


@pytest.mark.django_db(transaction=True)
def test_many_async_and_sync_requests_share_the_pool_and_give_every_connection_back(
    asgi_server, server
):
    item = Item.objects.create(name="seed", quantity=3)
    served_by = asgi_server.stats()
    assert served_by["pid"] == asgi_server.process.pid
    assert served_by["driver"] == connections["default"].Database.__name__
    pid = served_by["pid"]
    paths = mixed_paths(item.pk, rounds=40)
    started = time.monotonic()

    with (
        peak_connections(server, pid) as peak,
        ThreadPoolExecutor(CLIENT_THREADS) as clients,
    ):
        results = list(clients.map(fetch, [asgi_server.url + path for path in paths]))
    elapsed = time.monotonic() - started

    failed = [(path, *got) for path, got in zip(paths, results, strict=True) if got[0] != 200]
    assert not failed, failed[:3]
    assert 1 <= peak.most <= MAX_SIZE
    stats = wait_for_in_use(asgi_server, 0)
    assert stats["pool_max"] == MAX_SIZE
    assert stats["pool_in_use"] == 0
    assert stats["connections_reclaimed"] == stats["connections_leaked"] == 0
    assert stats["requests_errors"] == 0
    assert Item.objects.filter(name="from-async").count() == paths.count("/async/create/")
    print(
        f"\nASGI: {len(paths)} requests from {CLIENT_THREADS} threads in {elapsed:.2f} s; "
        f"peak {peak.most} server connections of max_size {MAX_SIZE} ({peak.samples} samples); "
        f"{stats['requests_num']} borrows, {stats['connections_num']} connections opened"
    )
    assert_clean_log(asgi_server)


@pytest.mark.django_db(transaction=True)
def test_a_client_hanging_up_mid_request_gets_its_connection_given_back_at_once(asgi_server):
    clients = [send_and_keep_open(asgi_server, "/async/await/?seconds=5") for _ in range(3)]
    assert wait_for_in_use(asgi_server, 3)["pool_in_use"] == 3
    hung_up = time.monotonic()
    for client in clients:
        client.close()
    # Django cancels the view and sends request_finished in the request's thread.
    assert wait_for_in_use(asgi_server, 0)["pool_in_use"] == 0
    given_back = time.monotonic() - hung_up
    assert given_back < 1.0, "given back when the view ended, not at the hang-up"
    print(f"\nASGI: 3 connections back in the pool {given_back * 1000:.0f} ms after the hang-up")
    assert_clean_log(asgi_server)


@pytest.mark.django_db(transaction=True)
def test_orm_in_an_executor_thread_keeps_its_connection_unless_closed_there(asgi_server):
    asgi_server.get("/async/executor/?close")
    assert wait_for_in_use(asgi_server, 0)["pool_in_use"] == 0

    asgi_server.get("/async/executor/")
    # request_finished closes the request thread's connections; the executor thread lives on.
    assert wait_for_in_use(asgi_server, 0, seconds=0.5)["pool_in_use"] == 1
    deadline = time.monotonic() + LEAK_TIMEOUT + 5.0
    while "past leak_timeout" not in asgi_server.stderr():
        assert time.monotonic() < deadline, asgi_server.stderr()
        time.sleep(0.05)
