"""POSTs a callback under the outbound policy, with an idempotency key and an HMAC signature.

`deliver` retries transient failures (connection errors, timeouts, 408/425/429/5xx, with
Retry-After honoured) through urllib3's `Retry`; `deliver_once` makes one attempt and
sleeps never, so an outbox can own the schedule. Neither raises: bad input (a URL or a
header the policy refuses, a body that is not JSON) comes back as a failed
`DeliveryResult` with the reason. A 3xx is a failed attempt and is never followed, so the
caller's headers reach no other host. Header values are the caller's secrets: they are
sent, never logged and scrubbed from every error.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import outbound

log = logging.getLogger("aifactory.callbacks")
RETRYABLE_STATUS = outbound.TRANSIENT_STATUSES
SIGNATURE_HEADER = "X-AIFactory-Signature"
USER_AGENT = "ai-factory-callbacks/1"


@dataclass
class DeliveryResult:
    delivered: bool
    attempts: int
    status: int | None = None
    error: str = ""
    retryable: bool = False  # a later attempt may succeed (transient status or no reply)
    retry_after: float | None = None  # the receiver's Retry-After, seconds


def sign(body: bytes, key: str) -> str:
    """`sha256=<hex HMAC-SHA256 of the exact body>`, as GitHub signs its webhooks."""
    return "sha256=" + hmac.new(key.encode(), body, hashlib.sha256).hexdigest()


def _request(
    payload: Any, headers: object, idempotency_key: str, signing_key: str
) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(payload).encode()
    own = {"Content-Type": "application/json", "Idempotency-Key": idempotency_key}
    if signing_key:
        own[SIGNATURE_HEADER] = sign(body, signing_key)
    # A caller may name its User-Agent; the body's type, the key and the signature are the sender's.
    caller = outbound.merge({"User-Agent": USER_AGENT}, outbound.validate_headers(headers), sender_wins=False)
    return body, outbound.merge(own, caller, sender_wins=True)


def _send(
    url: str,
    payload: Any,
    headers: object,
    *,
    idempotency_key: str,
    signing_key: str,
    retries: int,
    backoff: float,
    max_backoff: float,
    timeout: float,
    sleep: Callable[[float], Any],
    allow_private: bool | None,
) -> DeliveryResult:
    scrub = outbound.Redactor(headers)
    allowed = retries + 1

    def on_retry(attempt: int, total: int, delay: float, cause: str) -> None:
        log.warning(
            "callback %s failed (%s), attempt %d of %d; next in %.1f s",
            idempotency_key,
            scrub(cause),
            attempt,
            total,
            delay,
        )

    try:
        body, all_headers = _request(payload, headers, idempotency_key, signing_key)
        private = outbound.private_urls_allowed() if allow_private is None else allow_private
        with outbound.Client(
            url,
            allow_private=private,
            timeout=timeout,
            retries=retries,
            backoff=backoff,
            max_delay=max_backoff,
            retry_statuses=RETRYABLE_STATUS,
        ) as client:
            reply = client.post(body, all_headers, sleep=sleep, on_retry=on_retry)
    except outbound.UrlRefused as exc:
        return DeliveryResult(False, 0, None, scrub(f"callback URL refused: {exc.problem}"))
    except outbound.HeadersRefused as exc:
        return DeliveryResult(False, 0, None, scrub(f"callback headers refused: {exc.problem}"))
    except outbound.AddressRefused as exc:
        return DeliveryResult(False, 1, None, scrub(f"callback URL refused: {exc.problem}"))
    except outbound.Unreachable as exc:
        return DeliveryResult(False, exc.attempts, None, scrub(exc.cause), retryable=True)
    except (TypeError, ValueError) as exc:  # the payload is not JSON
        return DeliveryResult(False, 0, None, scrub(f"callback body cannot be sent: {exc}"))
    except Exception as exc:
        log.exception("callback %s: unexpected error", idempotency_key)
        return DeliveryResult(False, allowed, None, scrub(f"{type(exc).__name__}: {exc}"), retryable=True)
    status_line = f"HTTP {reply.status} {reply.reason}".strip()
    if 200 <= reply.status < 300:
        log.info("callback %s delivered (%s, attempt %d)", idempotency_key, status_line, reply.attempts)
        return DeliveryResult(True, reply.attempts, reply.status)
    if reply.redirect:
        error = f"{status_line}: redirects are not followed, so the callback headers reach no other host"
    else:
        error = status_line
    retryable = reply.status in RETRYABLE_STATUS
    log.warning("callback %s failed: %s (attempt %d)", idempotency_key, error, reply.attempts)
    return DeliveryResult(False, reply.attempts, reply.status, scrub(error), retryable, reply.retry_after)


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
    allow_private: bool | None = None,
) -> DeliveryResult:
    """Up to `attempts` tries, `backoff` seconds doubling to `max_backoff` between them.

    `allow_private` None reads the stage from the environment (`outbound.private_urls_allowed`).
    """
    return _send(
        url,
        payload,
        headers,
        idempotency_key=idempotency_key,
        signing_key=signing_key,
        retries=max(0, attempts - 1),
        backoff=backoff,
        max_backoff=max_backoff,
        timeout=timeout,
        sleep=sleep,
        allow_private=allow_private,
    )


def deliver_once(
    url: str,
    payload: dict[str, Any],
    headers: dict[str, str] | None = None,
    *,
    idempotency_key: str,
    signing_key: str = "",
    timeout: float = 15.0,
    allow_private: bool | None = None,
) -> DeliveryResult:
    """One attempt, no sleeping: the result says whether (`retryable`) and when
    (`retry_after`) a later attempt makes sense; the caller keeps the schedule."""
    return _send(
        url,
        payload,
        headers,
        idempotency_key=idempotency_key,
        signing_key=signing_key,
        retries=0,
        backoff=0.0,
        max_backoff=0.0,
        timeout=timeout,
        sleep=_never_sleep,
        allow_private=allow_private,
    )


def _never_sleep(delay: float) -> None:
    raise AssertionError(f"deliver_once must not wait ({delay} s)")
