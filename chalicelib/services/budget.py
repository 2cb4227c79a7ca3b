"""The synchronous budget: how long a route may work before it must answer.

API Gateway ends a request at 29 s (504) while the Lambda goes on, so a route that might take
longer (a tool on a cold torch image, a hundred endpoint invocations) works for at most
AIFACTORY_SYNC_BUDGET_SECONDS (25 s: the rest covers the API Lambda's own cold start and the
answer), then answers 503 "retry" with a Retry-After header while its work goes on and is
cached for the retry (errors.StillComputing; docs/contracts.md, "The synchronous budget").
"""

from __future__ import annotations

import time

from chalicelib.settings import Settings


def deadline(config: Settings) -> float:
    """`time.monotonic()` past which the route stops waiting, counted from now (the stage's
    AIFACTORY_SYNC_BUDGET_SECONDS, from the settings the adapters were built with)."""
    return time.monotonic() + config.sync_budget_seconds


def left(until: float) -> float:
    return until - time.monotonic()
