"""``manage.py pool_status`` against a real PostgreSQL: tables, JSON, filtering, watching."""

from __future__ import annotations

import json
import os
import subprocess
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from django_pool import registry
from django_pool.management.commands.pool_status import Command, render
from tests.conftest import manage_py, socket_url
from tests.test_publish import cache_settings
from tests.test_server import child_process

both = pytest.mark.django_db(transaction=True, databases=["default", "other"])


def pool_status(*args: str) -> str:
    out = StringIO()
    call_command("pool_status", *args, stdout=out)
    return out.getvalue()


def section(text: str, title: str) -> list[str]:
    """Return the lines of the section that starts with ``title``, up to the next blank line."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(title))
    end = next((i for i in range(start, len(lines)) if not lines[i]), len(lines))
    return lines[start:end]


def row(lines: list[str], *cells: str) -> list[str]:
    """Return the one table row whose first cells are ``cells``."""
    found = [line.split() for line in lines if line.split()[: len(cells)] == list(cells)]
    assert len(found) == 1, (cells, lines)
    return found[0]


@both
def test_table_of_local_pools_server_and_health():
    text = pool_status()
    local = section(text, "Local pools of this process")
    assert f"pid {os.getpid()}" in local[0]
    assert "one connection per alias was borrowed and returned first" in local[1]
    assert local[2].split()[:3] == ["alias", "in", "use"]
    for alias in ("default", "other"):
        cells = row(local, alias)  # alias, in use, idle, size, max, waiting, borrows, ...
        assert cells[4] == str(registry.pools()[alias].stats()["pool_max"])
        assert int(cells[6]) >= 1  # borrows: at least the command's own
        assert cells[-1] in {"ok", "warning", "critical"}
    assert "All processes: off" in text

    server = section(text, "Server ")
    assert server[0].endswith("(used by default, other)")  # one server: one section
    assert "max_connections" in server[1]
    pids = [line.split()[1] for line in server[3:] if len(line.split()) > 1]
    assert str(os.getpid()) in pids

    health = section(text, "Health")
    pools = [line.split(":")[0].strip() for line in health[1:] if not line.startswith("    ")]
    assert pools == ["default", "other"]


@both
def test_health_reasons_and_recommendations_under_each_pool():
    status = json.loads(pool_status("--json"))
    status["health"]["default"] = {
        "status": "warning",
        "reasons": ["3 borrowers waited"],
        "recommendations": ["raise max_size"],
    }
    health = section(render(status, {}), "Health")
    at = health.index("  default: warning")
    assert health[at + 1 : at + 3] == ["    - 3 borrowers waited", "    > raise max_size"]


@both
def test_json_document():
    data = json.loads(pool_status("--json"))
    assert set(data) == {"local", "processes", "server", "health"}
    assert set(data["local"]) == {"default", "other"}
    assert data["local"]["default"]["stats"]["requests_num"] >= 1
    assert (
        data["local"]["other"]["stats"]["pool_max"] == registry.pools()["other"].stats()["pool_max"]
    )
    assert data["processes"] is None  # no cache configured
    assert data["server"]["default"] == data["server"]["other"]  # one server, read once
    mine = [e for e in data["server"]["default"]["processes"] if e["pid"] == os.getpid()]
    assert {e["alias"] for e in mine} >= {"default", "other"}
    assert {v["status"] for v in data["health"].values()} <= {"ok", "warning", "critical"}


@pytest.mark.django_db(transaction=True)
def test_database_option_limits_to_one_alias():
    data = json.loads(pool_status("--json", "--database", "default"))
    assert set(data["local"]) == set(data["server"]) == set(data["health"]) == {"default"}
    local = section(pool_status("--database", "default"), "Local pools")
    assert [line.split()[0] for line in local[3:]] == ["default"]


def test_database_option_rejects_an_unpooled_alias():
    with pytest.raises(CommandError, match="'nope' is not a pooled alias; pooled: default"):
        pool_status("--database", "nope")


@pytest.mark.django_db(transaction=True)
def test_watch_redraws_until_its_bound():
    lines = pool_status("--database", "default", "--json", "--watch", "0.01", "--iterations", "3")
    documents = [json.loads(line) for line in lines.splitlines()]
    assert len(documents) == 3
    assert all(set(d["local"]) == {"default"} for d in documents)
    text = pool_status("--database", "default", "--watch", "0.01", "--iterations", "2")
    assert text.count("Local pools") == 2


def test_watch_needs_a_positive_interval():
    with pytest.raises(CommandError, match="--watch"):
        pool_status("--watch", "0", "--database", "default")


def test_every_process_publishing_to_the_cache(settings, tmp_path, server):
    overrides = cache_settings(tmp_path)
    settings.CACHES, settings.DJANGO_POOL = overrides["CACHES"], overrides["DJANGO_POOL"]
    with child_process(server, publish=True, settings=overrides) as child:
        data = json.loads(pool_status("--json", "--database", "default"))
        text = pool_status("--database", "default")
    pids = [entry["pid"] for entry in data["processes"]]
    assert sorted(pids) == sorted([os.getpid(), child["pid"]])
    assert all(set(entry["pools"]) == {"default"} for entry in data["processes"])

    processes = section(text, "All processes (2 publishing)")
    assert processes[-1] == "  * this process (taken now)"
    rows = {line.split()[1]: line.split() for line in processes[2:-1]}
    assert set(rows) == {f"{os.getpid()}*", str(child["pid"])}
    assert rows[str(child["pid"])][2] == "default"


def manage_py_pool_status(database_url: str | None) -> subprocess.CompletedProcess:
    """Run ``manage.py pool_status --database default`` in a new process, as a probe would."""
    return manage_py("pool_status", "--database", "default", database_url=database_url)


def test_help_tells_the_exit_status():
    text = " ".join(Command().create_parser("manage.py", "pool_status").format_help().split())
    assert (
        "the exit status is 2 when any pool is critical, and 0 when all are ok or warning" in text
    )


def test_exit_status_is_0_when_no_pool_is_critical():
    result = manage_py_pool_status(database_url=None)
    assert result.returncode == 0, result.stderr
    assert "  default: critical" not in result.stdout


def test_an_unreachable_server_exits_2_and_says_to_check_host_and_port():
    result = manage_py_pool_status("postgres://postgres@127.0.0.1:1/anything")
    assert result.returncode == 2, result.stderr
    assert "CommandError: health is critical for default" in result.stderr
    health = section(result.stdout, "Health")
    assert health[1] == "  default: critical"
    assert "HOST and PORT" in "\n".join(health)


def test_a_refused_login_says_what_the_server_said_and_to_check_password_and_pg_hba(
    password_role,
):
    user, _ = password_role
    wrong = "Xq7-not-the-password"
    result = manage_py_pool_status(socket_url(user, wrong))
    assert result.returncode == 2, result.stderr
    health = section(result.stdout, "Health")
    assert health[1] == "  default: critical"
    assert health[2].startswith("    - login refused by the server for ")
    (advice,) = [line for line in health if line.startswith("    > ")]
    assert advice.startswith(
        f"    > the server said 'password authentication failed for user \"{user}\"': "
    )
    assert "PASSWORD" in advice and "pg_hba.conf" in advice and "is up" not in advice
    assert wrong not in result.stdout + result.stderr, "passwords never appear"
