"""Whether a pool's server is down, since when and why, and when to try connecting again."""

from __future__ import annotations

import random


class Backoff:
    """The down state of one pool's server; the pool reads and changes it under its lock."""

    # While the server is down, seconds between background connect attempts: doubled after
    # each failure up to the cap, with jitter so that a site's processes don't retry in step.
    INITIAL = 0.1
    MAX = 5.0
    JITTER = 0.1
    # A borrower finding the server down may bring the next attempt forward to now, as long
    # as the last one began at least this long ago: recovery is noticed within about this
    # long under load, however far the backoff grew while nobody asked.
    BORROWER_INTERVAL = 0.1

    __slots__ = ("down_since", "error", "retry_at", "delay", "tried_at")

    def __init__(self) -> None:
        self.down_since: float | None = None  # monotonic; None while the server is up
        self.error: BaseException | None = None  # of the last failed connect
        self.retry_at = 0.0  # no attempt before this, while down
        self.delay = 0.0  # the backoff, before jitter
        self.tried_at = float("-inf")  # when the last connect attempt began

    @property
    def down(self) -> bool:
        """Return whether the last connect failed."""
        return self.down_since is not None

    def due(self, now: float) -> bool:
        """Return whether a connect may be attempted now."""
        return self.down_since is None or now >= self.retry_at

    def hurry(self, now: float) -> None:
        """Bring the next attempt forward to now, unless the last one began very recently."""
        if self.down_since is not None and now - self.tried_at >= self.BORROWER_INTERVAL:
            self.retry_at = min(self.retry_at, now)

    def failed(self, error: BaseException, now: float) -> float | None:
        """Enter or stay in the down state; return when it began before this (None: just now)."""
        down_since = self.down_since
        if down_since is None:
            self.down_since = now
            self.delay = self.INITIAL
        else:
            self.delay = min(self.delay * 2, self.MAX)
        jitter = random.uniform(1.0 - self.JITTER, 1.0 + self.JITTER)
        self.retry_at = now + min(self.delay * jitter, self.MAX)
        self.error = error
        return down_since

    def succeeded(self) -> float | None:
        """Leave the down state; return when it began (None if the server was up)."""
        down_since, self.down_since, self.error = self.down_since, None, None
        return down_since
