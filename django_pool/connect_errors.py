"""What a failed connect's error means, and what to check (no Django import).

Health verdicts (``pool_status``, the endpoints) and the ``check --database`` system check
both turn the driver's error text into advice here, so they give the same advice.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Diagnosis:
    """A failed connect in a few words, and what to check."""

    what: str  # "server unreachable", "login refused by the server", ...
    advice: str


# (pattern in the error, what happened, what to check); the first match wins, so errors the
# server sent (after "connection to server ... failed:") come before libpq's own. "{where}"
# becomes " (host=... port=...)" when the caller knows where the connection went.
_RULES = (
    (
        r"password authentication failed|no password supplied|authentication failed|pg_hba\.conf",
        "login refused by the server",
        "check PASSWORD (and USER) in DATABASES, and that the server's pg_hba.conf lets this "
        "user log in from this host",
    ),
    (
        r'database ".*" does not exist',
        "database missing on the server",
        "check NAME in DATABASES, or create that database on the server{where}",
    ),
    (
        r'role ".*" does not exist',
        "role missing on the server",
        "check USER in DATABASES, or create that role on the server{where}",
    ),
    (
        r"too many clients|connection slots are reserved",
        "server out of connection slots",
        "lower max_size or the number of processes, or raise the server's max_connections, "
        "or put PgBouncer in front",
    ),
    (
        r"timeout expired|timed out",
        "server unreachable (connect timeout)",
        "check that the host{where} is reachable from here (a firewall or security group may "
        "drop the packets), or raise OPTIONS['connect_timeout'] for a slow network",
    ),
    (
        r"could not connect|connection refused|no such file or directory|could not translate "
        r"host name|name or service not known",
        "server unreachable",
        "check HOST and PORT in DATABASES, and that the database server{where} is up and "
        "accepts connections",
    ),
)
_UNKNOWN = ("server unreachable", "check that the database server{where} is up and reachable")

# libpq puts the server's own message after the severity.
_SERVER_SAID = re.compile(r"(?:FATAL|ERROR):\s*(.+)", re.DOTALL)


def diagnose(error: str | None, where: str = "") -> Diagnosis:
    """Say what a connect error means and what to check; ``where`` names the server."""
    text = " ".join((error or "").split())
    what, advice = next(
        ((what, advice) for pattern, what, advice in _RULES if re.search(pattern, text, re.I)),
        _UNKNOWN,
    )
    advice = advice.format(where=f" ({where})" if where else "")
    said = _SERVER_SAID.search(text)
    if said:
        # The server's words say which user or database it meant.
        advice = f"the server said {said.group(1).strip()!r}: {advice}"
    return Diagnosis(what, advice)
