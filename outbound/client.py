"""One destination, sent to under the policy: checked URL, checked headers, checked
connections, retries through `Backoff`, and never a redirect followed.

A 3xx comes back as a reply like any other status; callers treat it as a failure. Replies
with a retryable status are retried until the attempts run out and then returned;
failures without a reply raise `Unreachable` after the last attempt; anything the policy
refuses raises an `OutboundError` (a ValueError) before a byte is sent.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from urllib3.exceptions import (
    ConnectTimeoutError,
    MaxRetryError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
)
from urllib3.util import Timeout

from outbound.connection import POOLS
from outbound.errors import Unreachable
from outbound.headers import validate_headers
from outbound.retry import Backoff
from outbound.urls import Target, validate_url

TRANSIENT_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})

# (attempt that failed, attempts allowed, seconds until the next, what went wrong)
RetryReport = Callable[[int, int, float, str], None]


@dataclass
class Reply:
    status: int
    reason: str
    headers: dict[str, str]
    data: bytes
    attempts: int
    retry_after: float | None = None  # the server's Retry-After in seconds, if it sent one
    history: list[str] = field(default_factory=list)  # one line per failed attempt

    @property
    def redirect(self) -> bool:
        return 300 <= self.status < 400


def describe(error: BaseException | None) -> str:
    """A short cause for a failure without a reply: the innermost OS error, not urllib3's reprs."""
    if error is None:
        return "unknown error"
    # NewConnectionError subclasses ConnectTimeoutError in urllib3 1.26 and 2.x: test it first.
    if isinstance(error, NewConnectionError):
        return f"connection failed: {_os_error(error) or error}"
    if isinstance(error, (ConnectTimeoutError, ReadTimeoutError, TimeoutError)):
        return "timed out"
    seen: set[int] = set()
    current: BaseException | None = error
    innermost: BaseException = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        innermost = current
        if isinstance(current, ProtocolError) and len(current.args) > 1:
            current = current.args[1] if isinstance(current.args[1], BaseException) else None
        else:
            current = current.__cause__ or current.__context__
    if isinstance(innermost, TimeoutError):
        return "timed out"
    text = str(innermost)
    return f"{type(innermost).__name__}: {text}" if text else type(innermost).__name__


def _os_error(error: BaseException) -> str:
    """`ConnectionRefusedError: [Errno 111] Connection refused` from a urllib3 wrapper."""
    cause = error.__cause__ or error.__context__
    return f"{type(cause).__name__}: {cause}" if isinstance(cause, OSError) else ""


class Client:
    """POSTs to one validated URL through a small pool of checked connections."""

    def __init__(
        self,
        url: str,
        *,
        allow_private: bool,
        timeout: float = 30.0,
        retries: int = 5,
        backoff: float = 0.5,
        max_delay: float = 60.0,
        retry_statuses: frozenset[int] = TRANSIENT_STATUSES,
        maxsize: int = 1,
        ca_certs: str | None = None,
    ):
        self.target: Target = validate_url(url, allow_private)
        self.allow_private = allow_private
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.max_delay = max_delay
        self.retry_statuses = frozenset(retry_statuses)
        pool_kw: dict[str, Any] = {}
        if self.target.scheme == "https":  # verified against the system CAs (or `ca_certs`)
            pool_kw = {"cert_reqs": "CERT_REQUIRED", "ca_certs": ca_certs}
        self.pool = POOLS[self.target.scheme](
            self.target.host,
            self.target.port,
            maxsize=maxsize,
            block=False,
            timeout=Timeout(connect=timeout, read=timeout),
            retries=False,
            allow_private=allow_private,
            **pool_kw,
        )

    def _cause(self, error: BaseException | None) -> str:
        cause = describe(error)
        return f"timed out after {self.timeout:g} s" if cause == "timed out" else cause

    def close(self) -> None:
        self.pool.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def post(
        self,
        body: bytes,
        headers: Mapping[str, str],
        *,
        retries: int | None = None,
        sleep: Callable[[float], Any] = time.sleep,
        on_retry: RetryReport | None = None,
    ) -> Reply:
        """Sends `body`; `headers` must already be merged and are validated again here."""
        checked = validate_headers(headers)
        allowed = (self.retries if retries is None else retries) + 1
        history: list[str] = []

        def report(policy: Backoff, delay: float, response: Any) -> None:
            last = policy.history[-1]
            cause = (
                f"HTTP {last.status} {getattr(response, 'reason', '') or ''}".strip()
                if last.status
                else self._cause(last.error)
            )
            history.append(cause)
            if on_retry is not None:
                on_retry(len(policy.history), allowed, delay, cause)

        policy = Backoff.build(
            allowed - 1,
            backoff=self.backoff,
            max_delay=self.max_delay,
            statuses=self.retry_statuses,
            sleeper=sleep,
            reporter=report,
        )
        try:
            response = self.pool.urlopen(
                "POST",
                self.target.request_target,
                body=body,
                headers=checked,
                retries=policy,
                redirect=False,
                assert_same_host=True,
                preload_content=True,
            )
        except MaxRetryError as exc:
            raise Unreachable(self._cause(exc.reason), allowed) from None
        used = getattr(response, "retries", None)
        attempts = len(used.history) + 1 if used is not None else 1
        return Reply(
            status=response.status,
            reason=response.reason or "",
            headers={k: v for k, v in response.headers.items()},
            data=response.data or b"",
            attempts=attempts,
            retry_after=policy.retry_after(response),
            history=history,
        )
