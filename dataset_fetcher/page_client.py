"""Fetches one page with retries: the part of paging that talks HTTP.

Transient failures (connection errors, timeouts, 429, 5xx) are retried with exponential
backoff, honouring Retry-After; anything else fails the page at once, because retrying a
403 or a reply that is not JSON only delays the same answer. Header values are secrets
(API keys): they are never put into an exception message or a log line, and anything the
server sends back is scrubbed of them before it is quoted.
"""

from __future__ import annotations

import email.utils
import http.client
import json
import logging
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

from dataset_fetcher.errors import DatasetError

log = logging.getLogger("dataset_fetcher")

RECORD_KEYS = ("data", "items", "records")
MAX_DELAY = 60.0
SNIPPET = 200


class Cancelled(Exception):
    """The page is no longer wanted (the consumer stopped or an earlier page was the last)."""


class _Transient(Exception):
    def __init__(self, cause: str, retry_after: float | None = None):
        super().__init__(cause)
        self.cause = cause
        self.retry_after = retry_after


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Never follow redirects: urllib would resend the dataset headers to wherever they point."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: D102
        return None


def default_opener() -> urllib.request.OpenerDirector:
    return urllib.request.build_opener(_NoRedirect())


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class PageClient:
    """POSTs `{"offset": N, "limit": page_size}` and returns the page's list of records."""

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
        opener: Any = None,
    ):
        self.url = url
        self.headers = dict(headers)
        self.page_size = page_size
        self.retries = retries
        self.backoff = backoff
        self.timeout = timeout
        self.sleep = sleep
        self.opener = opener or default_opener()
        self._secrets = sorted({v for v in self.headers.values() if v}, key=len, reverse=True)

    def scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def fail(self, offset: int, cause: str) -> DatasetError:
        return DatasetError(self.scrub(f"Dataset page at offset {offset} failed: {cause}"))

    def fetch(self, offset: int, cancelled: threading.Event | None = None) -> list:
        cancelled = cancelled or threading.Event()
        attempts = self.retries + 1
        for attempt in range(1, attempts + 1):
            if cancelled.is_set():
                raise Cancelled(offset)
            try:
                return self._attempt(offset)
            except _Transient as exc:
                if attempt == attempts:
                    raise self.fail(offset, f"{exc.cause} (gave up after {attempts} attempts)") from None
                delay = min(MAX_DELAY, self.backoff * 2 ** (attempt - 1))
                if exc.retry_after is not None:
                    delay = min(MAX_DELAY, exc.retry_after)
                log.warning(
                    "%s; retrying in %.2f s (attempt %d of %d)",
                    self.scrub(f"Dataset page at offset {offset}: {exc.cause}"),
                    delay,
                    attempt,
                    attempts,
                )
                if self.sleep is None:
                    cancelled.wait(delay)
                else:
                    self.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def _attempt(self, offset: int) -> list:
        body = json.dumps({"offset": offset, "limit": self.page_size}).encode()
        headers = {"Content-Type": "application/json", "Accept": "application/json", **self.headers}
        request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
        try:
            with self.opener.open(request, timeout=self.timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            raise self._http_error(offset, exc) from None
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, TimeoutError):
                raise _Transient(f"timed out after {self.timeout:g} s") from None
            raise _Transient(f"connection error: {exc.reason}") from None
        except TimeoutError:
            raise _Transient(f"timed out after {self.timeout:g} s") from None
        except (OSError, http.client.HTTPException) as exc:
            raise _Transient(f"connection error: {type(exc).__name__}: {exc}") from None
        return self._records(offset, raw)

    def _http_error(self, offset: int, exc: urllib.error.HTTPError) -> Exception:
        cause = f"HTTP {exc.code} {exc.reason}"
        try:
            detail = exc.read(SNIPPET * 2).decode("utf-8", "replace").strip()
        except Exception:  # noqa: BLE001 - the status line is enough
            detail = ""
        finally:
            exc.close()
        if exc.code == 429 or exc.code >= 500:
            return _Transient(cause, _retry_after(exc.headers.get("Retry-After") if exc.headers else None))
        if 300 <= exc.code < 400:
            cause += " (redirects are not followed, so the dataset headers never reach another host)"
        elif detail:
            cause += f": {detail[:SNIPPET]}"
        return self.fail(offset, cause)

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
