"""Domain errors. The route layer maps them to HTTP in one place (`chalicelib.api.errors`)."""

from __future__ import annotations


class DomainError(Exception):
    status_code = 400

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class ValidationError(DomainError):
    """Bad input. `field` names the argument so the message can say which one."""

    def __init__(self, field: str, problem: str):
        super().__init__(f"Invalid '{field}': {problem}" if field else problem)
        self.field = field
        self.problem = problem


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
