"""urllib3's `Retry` with the project's schedule, an injectable sleep and a retry report.

urllib3 counts the attempts, picks which statuses and errors to retry, and reads
`Retry-After` (seconds or an HTTP date). Two things differ from its defaults: the first
retry waits `backoff` too (urllib3 retries the first failure at once), doubling after
that up to `max_delay`, which also caps a server's Retry-After; and the wait goes through
`sleeper` so a caller can make it interruptible (or a test can record it).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from itertools import takewhile
from typing import Any

from urllib3.util.retry import Retry


class Backoff(Retry):
    max_delay: float = 60.0
    sleeper: Callable[[float], Any] = staticmethod(time.sleep)
    reporter: Callable[[Backoff, float, Any], None] | None = None

    @classmethod
    def build(
        cls,
        retries: int,
        *,
        backoff: float,
        max_delay: float,
        statuses: frozenset[int],
        sleeper: Callable[[float], Any] = time.sleep,
        reporter: Callable[[Backoff, float, Any], None] | None = None,
    ) -> Backoff:
        policy = cls(
            total=retries,
            connect=None,
            read=None,
            status=None,
            redirect=0,
            raise_on_redirect=False,
            raise_on_status=False,
            status_forcelist=statuses,
            allowed_methods=frozenset({"POST", "GET", "HEAD", "PUT"}),
            backoff_factor=backoff,
            respect_retry_after_header=True,
        )
        policy.max_delay, policy.sleeper, policy.reporter = max_delay, sleeper, reporter
        return policy

    def new(self, **kw: Any) -> Backoff:
        fresh = super().new(**kw)
        fresh.max_delay, fresh.sleeper, fresh.reporter = self.max_delay, self.sleeper, self.reporter
        return fresh

    def get_backoff_time(self) -> float:
        failures = len(list(takewhile(lambda h: h.redirect_location is None, reversed(self.history))))
        if failures == 0:
            return 0.0
        return float(min(self.max_delay, self.backoff_factor * 2 ** (failures - 1)))

    def retry_after(self, response: Any) -> float | None:
        """The server's Retry-After in seconds, None when absent or unreadable."""
        if response is None or not self.respect_retry_after_header:
            return None
        try:
            delay = self.get_retry_after(response)
        except Exception:
            return None
        return None if delay is None else max(0.0, float(delay))

    def sleep(self, response: Any = None) -> None:
        delay = self.retry_after(response)
        delay = min(self.max_delay, self.get_backoff_time() if delay is None else delay)
        if self.reporter is not None:
            self.reporter(self, delay, response)
        self.sleeper(delay)
