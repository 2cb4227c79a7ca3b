"""Waiting in tests for something another process does."""

from __future__ import annotations

import time


def wait_until(predicate, timeout: float = 120.0, what: str = "condition", interval: float = 0.2):
    """`predicate()`'s first truthy value, polled every `interval` s; AssertionError after `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"{what} not reached in {timeout}s")
