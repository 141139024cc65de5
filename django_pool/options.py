"""Pool options (`OPTIONS["pool"]`): defaults, parsing and validation (no Django import)."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

CHECK_WORDS = ("always", "never")
RESET_MODES = ("rollback", "discard")
REQUEST, TRANSACTION = "request", "transaction"
RELEASE_MODES = (REQUEST, TRANSACTION)


@dataclass(frozen=True)
class PoolConfig:
    """Options of one pool; names and defaults follow psycopg_pool where they overlap."""

    min_size: int = 2
    max_size: int = 10
    timeout: float = 10.0
    max_waiting: int = 0
    max_lifetime: float = 3600.0
    max_idle: float = 600.0
    check: float | str = 1.0
    reset: str = "rollback"
    # "request": a borrowed connection goes back when Django closes it (the request ends);
    # "transaction": as soon as the wrapper is outside any transaction with no cursor open.
    release: str = REQUEST
    # At a request's end, keep a clean connection for the thread's next request (parking).
    park: bool = True
    leak_timeout: float | None = None
    name: str | None = None

    @classmethod
    def from_options(cls, options: Any, *, name: str) -> PoolConfig:
        """Build a config from ``OPTIONS["pool"]``; raise ``ValueError`` on bad input."""
        problems = validate_options(options)
        if problems:
            raise ValueError("; ".join(p.message for p in problems))
        values = {} if options is True else dict(options)
        values.setdefault("name", name)
        if values["name"] is None:
            values["name"] = name
        return cls(**values)

    def check_after(self) -> float | None:
        """Seconds of idleness after which a borrowed connection is pinged, or None."""
        if self.check == "always":
            return 0.0
        if self.check == "never":
            return None
        return float(self.check)


OPTION_NAMES = tuple(f.name for f in fields(PoolConfig))


@dataclass(frozen=True)
class Problem:
    """One thing wrong with ``OPTIONS["pool"]``: which kind, and a message with the fix."""

    kind: str  # "unknown", "type", "value", "sizes"
    key: str
    message: str


def is_number(value: Any) -> bool:
    """Return whether ``value`` is an int or float (not a bool)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_int(key: str, value: Any, minimum: int) -> Problem | None:
    if not isinstance(value, int) or isinstance(value, bool):
        return Problem("type", key, f"'{key}' must be an integer, got {value!r}.")
    if value < minimum:
        return Problem("value", key, f"'{key}' must be >= {minimum}, got {value}.")
    return None


def _check_seconds(key: str, value: Any, *, allow_none: bool = False) -> Problem | None:
    if value is None and allow_none:
        return None
    if not is_number(value):
        return Problem("type", key, f"'{key}' must be a number of seconds, got {value!r}.")
    if not value > 0 or math.isnan(value):
        return Problem("value", key, f"'{key}' must be greater than 0 seconds, got {value}.")
    return None


def _check_check(value: Any) -> Problem | None:
    if value in CHECK_WORDS:
        return None
    if not is_number(value):
        return Problem(
            "type",
            "check",
            f'\'check\' must be "always", "never" or a number of seconds, got {value!r}.',
        )
    if value < 0 or math.isnan(value):
        return Problem("value", "check", f"'check' must be >= 0 seconds, got {value}.")
    return None


def _check_value(key: str, value: Any) -> Problem | None:
    if key == "min_size":
        return _check_int(key, value, 0)
    if key in ("max_size",):
        return _check_int(key, value, 1)
    if key == "max_waiting":
        return _check_int(key, value, 0)
    if key in ("timeout", "max_lifetime", "max_idle"):
        return _check_seconds(key, value)
    if key == "leak_timeout":
        return _check_seconds(key, value, allow_none=True)
    if key == "check":
        return _check_check(value)
    if key == "reset" and value not in RESET_MODES:
        return Problem("value", key, f'\'reset\' must be "rollback" or "discard", got {value!r}.')
    if key == "release" and value not in RELEASE_MODES:
        return Problem(
            "value", key, f'\'release\' must be "request" or "transaction", got {value!r}.'
        )
    if key == "park" and not isinstance(value, bool):
        return Problem("type", key, f"'park' must be True or False, got {value!r}.")
    if key == "name" and value is not None and not (isinstance(value, str) and value):
        return Problem("type", key, f"'name' must be a non-empty string, got {value!r}.")
    return None


def validate_options(options: Any) -> list[Problem]:
    """Return every problem with ``OPTIONS["pool"]`` (``True``/``False``/a dict)."""
    if options is True or options is False:
        return []
    if not isinstance(options, dict):
        return [
            Problem(
                "type",
                "pool",
                f"OPTIONS['pool'] must be True, False or a dict of options, got {options!r}.",
            )
        ]
    problems = []
    for key, value in options.items():
        if key not in OPTION_NAMES:
            known = ", ".join(OPTION_NAMES)
            problems.append(
                Problem("unknown", key, f"Unknown pool option {key!r}. Known options: {known}.")
            )
            continue
        problem = _check_value(key, value)
        if problem:
            problems.append(problem)
    bad_keys = {p.key for p in problems}
    min_size = options.get("min_size", PoolConfig.min_size)
    max_size = options.get("max_size", PoolConfig.max_size)
    if not {"min_size", "max_size"} & bad_keys and min_size > max_size:
        problems.append(
            Problem(
                "sizes",
                "min_size",
                f"min_size ({min_size}) is greater than max_size ({max_size}).",
            )
        )
    return problems
