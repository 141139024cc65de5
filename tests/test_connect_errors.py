"""Advice for a failed connect depends on the error: each kind names what to check."""

from __future__ import annotations

import pytest

from django_pool.connect_errors import Diagnosis, diagnose

SOCKET = 'connection to server on socket "/run/postgresql/.s.PGSQL.5432" failed: '
TCP = 'connection to server at "10.0.0.5", port 5432 failed: '


@pytest.mark.parametrize(
    ("error", "what", "fragments"),
    [
        (
            SOCKET + 'FATAL:  password authentication failed for user "shop"',
            "login refused by the server",
            [
                "the server said 'password authentication failed for user \"shop\"'",
                "PASSWORD",
                "pg_hba.conf",
            ],
        ),
        (
            TCP + 'FATAL:  no pg_hba.conf entry for host "10.0.0.9", user "shop", database "shop"',
            "login refused by the server",
            ["no pg_hba.conf entry", "PASSWORD", "pg_hba.conf lets this user log in"],
        ),
        (
            TCP + 'FATAL:  database "shpo" does not exist',
            "database missing on the server",
            ["'database \"shpo\" does not exist'", "check NAME in DATABASES"],
        ),
        (
            TCP + 'FATAL:  role "shpo" does not exist',
            "role missing on the server",
            ["check USER in DATABASES"],
        ),
        (
            TCP + "FATAL:  sorry, too many clients already",
            "server out of connection slots",
            ["max_connections", "max_size"],
        ),
        (
            TCP + "timeout expired",
            "server unreachable (connect timeout)",
            ["host (db:5432) is reachable", "firewall", "connect_timeout"],
        ),
        (
            TCP + "Connection refused\n\tIs the server running on that host and accepting TCP/IP?",
            "server unreachable",
            ["server (db:5432) is up", "HOST and PORT"],
        ),
        (
            SOCKET + "No such file or directory\n\tIs the server running locally?",
            "server unreachable",
            ["is up", "HOST and PORT"],
        ),
        (
            'could not translate host name "dbb" to address: Name or service not known',
            "server unreachable",
            ["HOST and PORT"],
        ),
    ],
)
def test_each_kind_of_error_has_its_own_advice(error, what, fragments):
    diagnosis = diagnose(error, where="db:5432")
    assert diagnosis.what == what
    for fragment in fragments:
        assert fragment in diagnosis.advice
    if what != "server unreachable":
        assert "is up" not in diagnosis.advice, "the server answered: it is up"


def test_only_errors_the_server_sent_are_quoted():
    assert "the server said" not in diagnose(TCP + "Connection refused").advice


@pytest.mark.parametrize("error", [None, "", "SSL SYSCALL error: EOF detected"])
def test_an_unknown_error_asks_whether_the_server_is_up(error):
    assert diagnose(error) == Diagnosis(
        "server unreachable", "check that the database server is up and reachable"
    )
