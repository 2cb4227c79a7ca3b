"""Domain errors. The route layer maps them to HTTP in one place (`chalicelib.web.envelopes`)."""

from __future__ import annotations

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


class Unavailable(DomainError):
    """The platform cannot run this now (e.g. no Docker engine for a foreign image)."""

    status_code = 503


HTTP_ERRORS = (DomainError, ArgumentError)
"""Every error that carries its own status code and message to the caller."""
