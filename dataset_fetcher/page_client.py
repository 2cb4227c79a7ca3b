"""Fetches one page under the outbound policy: the part of paging that talks HTTP.

Transient failures (connection errors, timeouts, 429, 5xx) are retried by urllib3's
`Retry` (through `outbound.Client`) with exponential backoff, honouring Retry-After;
anything else fails the page at once, because retrying a 403 or a reply that is not JSON
only delays the same answer. Redirects are never followed, and the connection goes only
to addresses the policy allows, checked when it connects. Header values are secrets (API
keys): they are never put into an exception message or a log line, and anything the
server sends back is scrubbed of them before it is quoted.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from typing import Any

import outbound
from dataset_fetcher.errors import DatasetError

log = logging.getLogger("dataset_fetcher")

RECORD_KEYS = ("data", "items", "records")
MAX_DELAY = 60.0
SNIPPET = 200
RETRY_STATUSES = frozenset({429, *range(500, 600)})


class Cancelled(Exception):
    """The page is no longer wanted (the consumer stopped or an earlier page was the last)."""


class PageClient:
    """POSTs `{"offset": N, "limit": page_size}` and returns the page's list of records.

    Raises `outbound.OutboundError` (a ValueError) at construction when the URL or the
    headers break the policy; `allow_private` None reads the stage from the environment.
    """

    def __init__(
        self,
        url: str,
        headers: dict[str, str],
        page_size: int,
        *,
        retries: int = 5,
        backoff: float = 0.5,
        timeout: float = 30,
        sleep: Callable[[float], Any] | None = None,
        allow_private: bool | None = None,
        connections: int = 1,
    ):
        self.headers = dict(headers)
        self.scrub = outbound.Redactor(self.headers)
        self.page_size = page_size
        self.retries = retries
        self.timeout = timeout
        self.sleep = sleep
        given = outbound.validate_headers(self.headers)
        self.send_headers = outbound.merge(
            {"Content-Type": "application/json", "Accept": "application/json"}, given, sender_wins=False
        )
        private = outbound.private_urls_allowed() if allow_private is None else allow_private
        self.client = outbound.Client(
            url,
            allow_private=private,
            timeout=timeout,
            retries=retries,
            backoff=backoff,
            max_delay=MAX_DELAY,
            retry_statuses=RETRY_STATUSES,
            maxsize=connections,
        )

    def close(self) -> None:
        self.client.close()

    def fail(self, offset: int, cause: str) -> DatasetError:
        return DatasetError(self.scrub(f"Dataset page at offset {offset} failed: {cause}"))

    def fetch(self, offset: int, cancelled: threading.Event | None = None) -> list:
        cancelled = cancelled or threading.Event()
        if cancelled.is_set():
            raise Cancelled(offset)

        def wait(delay: float) -> None:
            if cancelled.is_set():  # the fetch was given up (a page failed, or enough were read)
                raise Cancelled(offset)
            if self.sleep is None:
                cancelled.wait(delay)
            else:
                self.sleep(delay)
            if cancelled.is_set():
                raise Cancelled(offset)

        def on_retry(attempt: int, attempts: int, delay: float, cause: str) -> None:
            if cancelled.is_set():  # no retry, and no warning of one, for a page nobody awaits
                raise Cancelled(offset)
            log.warning(
                "%s; retrying in %.2f s (attempt %d of %d)",
                self.scrub(f"Dataset page at offset {offset}: {cause}"),
                delay,
                attempt,
                attempts,
            )

        body = json.dumps({"offset": offset, "limit": self.page_size}).encode()
        try:
            reply = self.client.post(body, self.send_headers, sleep=wait, on_retry=on_retry)
        except outbound.Unreachable as exc:
            raise self.fail(offset, f"{exc.cause} (gave up after {exc.attempts} attempts)") from None
        except outbound.OutboundError as exc:
            raise self.fail(offset, exc.problem) from None
        if reply.status >= 300:
            raise self._http_error(offset, reply)
        return self._records(offset, reply.data)

    def _http_error(self, offset: int, reply: outbound.Reply) -> DatasetError:
        cause = f"HTTP {reply.status} {reply.reason}".strip()
        if reply.status in RETRY_STATUSES:
            return self.fail(offset, f"{cause} (gave up after {reply.attempts} attempts)")
        if reply.redirect:
            return self.fail(
                offset,
                cause + " (redirects are not followed, so the dataset headers never reach another host)",
            )
        detail = reply.data[: SNIPPET * 2].decode("utf-8", "replace").strip()
        return self.fail(offset, f"{cause}: {detail[:SNIPPET]}" if detail else cause)

    def _records(self, offset: int, raw: bytes) -> list:
        try:
            reply = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise self.fail(offset, f"the reply is not JSON ({exc})") from None
        if isinstance(reply, list):
            return reply
        if isinstance(reply, dict):
            for key in RECORD_KEYS:
                if isinstance(reply.get(key), list):
                    return reply[key]
            keys = ", ".join(sorted(map(str, reply))[:10]) or "none"
            raise self.fail(
                offset,
                f"the reply is a JSON object without a 'data', 'items' or 'records' list (keys: {keys})",
            )
        raise self.fail(offset, f"the reply is a JSON {type(reply).__name__}, expected a list of records")
