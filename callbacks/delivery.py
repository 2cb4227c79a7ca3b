"""POSTs a callback with retries, an idempotency key and an optional HMAC signature.

Stdlib only: it runs in the API Lambda (state-change handler) and in the local runner.
Header values are the caller's secrets: they are sent, never logged or raised.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("aifactory.callbacks")
RETRYABLE_STATUS = {408, 425, 429, 500, 502, 503, 504}


@dataclass
class DeliveryResult:
    delivered: bool
    attempts: int
    status: int | None = None
    error: str = ""


def sign(body: bytes, key: str) -> str:
    return "sha256=" + hmac.new(key.encode(), body, hashlib.sha256).hexdigest()


def deliver(
    url: str,
    payload: dict[str, Any],
    headers: dict[str, str] | None = None,
    *,
    idempotency_key: str,
    signing_key: str = "",
    attempts: int = 6,
    backoff: float = 1.0,
    max_backoff: float = 30.0,
    timeout: float = 15.0,
    sleep: Callable[[float], None] = time.sleep,
) -> DeliveryResult:
    body = json.dumps(payload).encode()
    base = {
        "Content-Type": "application/json",
        "Idempotency-Key": idempotency_key,
        "User-Agent": "ai-factory-callbacks/1",
    }
    if signing_key:
        base["X-AIFactory-Signature"] = sign(body, signing_key)
    all_headers = {**base, **(headers or {})}
    error = ""
    status = None
    for attempt in range(1, attempts + 1):
        request = urllib.request.Request(url, data=body, headers=all_headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                status = response.status
                log.info(
                    "callback %s delivered to %s (HTTP %s, attempt %d)", idempotency_key, url, status, attempt
                )
                return DeliveryResult(True, attempt, status)
        except urllib.error.HTTPError as exc:
            status, error = exc.code, f"HTTP {exc.code} {exc.reason}"
            if exc.code not in RETRYABLE_STATUS:
                break
        except (urllib.error.URLError, OSError) as exc:
            status, error = None, f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}"
        log.warning(
            "callback %s to %s failed (%s), attempt %d of %d", idempotency_key, url, error, attempt, attempts
        )
        if attempt < attempts:
            sleep(min(max_backoff, backoff * 2 ** (attempt - 1)))
    return DeliveryResult(False, attempt, status, error)
