"""Domain errors. The route layer maps them to HTTP in one place (`chalicelib.web.envelopes`)."""

from __future__ import annotations

import errno

from contracts.errors import ArgumentError


class DomainError(Exception):
    status_code = 400

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


ValidationError = ArgumentError
"""Bad input (400): `field` names the argument. The contracts raise it too, so the API and
the containers reject a value with the same words."""


class NotFound(DomainError):
    status_code = 404


class Conflict(DomainError):
    """The job is in a state that forbids the request (e.g. stopping a finished job)."""

    status_code = 409


class Forbidden(DomainError):
    status_code = 403


class QuotaExceeded(DomainError):
    """The tenant's quota (chalicelib.tenancy.Quotas) refuses more: 429, naming the quota."""

    status_code = 429


class Unavailable(DomainError):
    """The platform cannot run this now (e.g. no Docker engine for a foreign image)."""

    status_code = 503


class StillComputing(Unavailable):
    """Work that did not finish inside the synchronous budget (AIFACTORY_SYNC_BUDGET_SECONDS):
    it goes on, its result is cached, and the same request retried after `retry_after` seconds
    gets it (503 with a Retry-After header, in the API's envelope)."""

    def __init__(self, message: str, retry_after: int):
        super().__init__(message)
        self.retry_after = max(1, int(retry_after))
        self.headers = {"Retry-After": str(self.retry_after)}


class StorageFull(DomainError):
    """The service's own disk (or its quota) is full: a write of its state failed.

    507 Insufficient Storage, not 500: nothing is wrong with the request, and the same request
    succeeds once space is freed. The local adapters raise it for ENOSPC/EDQUOT and for
    SQLite's "database or disk is full" (and its "disk I/O error" on a full disk), after
    removing what the failed write had begun, so a create that fails leaves nothing.
    """

    status_code = 507

    def __init__(self, directory: object):
        self.directory = str(directory)
        super().__init__(
            f"The service's disk is full: no space is left to write its state under {self.directory}. "
            "Free space on that disk (or raise its quota), then try again."
        )


DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
"""The OSError numbers of a full disk or an exhausted quota."""


HTTP_ERRORS = (DomainError, ArgumentError)
"""Every error that carries its own status code and message to the caller."""
