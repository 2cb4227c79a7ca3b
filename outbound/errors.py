"""What the outbound policy raises: ValueErrors, so callers treat a refused URL as bad input."""

from __future__ import annotations


class OutboundError(ValueError):
    """The request was refused before anything was sent. `problem` reads after a field name."""

    def __init__(self, problem: str):
        super().__init__(problem)
        self.problem = problem


class UrlRefused(OutboundError):
    """The URL breaks the policy (scheme, syntax, credentials, a non-global address)."""


class HeadersRefused(OutboundError):
    """A header name or value that could not be sent as given, or too many or too long."""


class AddressRefused(OutboundError):
    """At connect time the host resolved to an address the policy refuses (DNS rebinding)."""


class Unreachable(Exception):
    """Every allowed attempt failed without an HTTP answer (connection errors, timeouts).

    `cause` is the last failure, without header values; `attempts` how many were made.
    """

    def __init__(self, cause: str, attempts: int):
        super().__init__(f"{cause} (gave up after {attempts} attempts)")
        self.cause = cause
        self.attempts = attempts
