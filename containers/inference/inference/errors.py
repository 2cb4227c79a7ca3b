"""Errors that carry their HTTP status, answered as `{"result": "Error", "message": ...}`."""

from __future__ import annotations


class InferenceError(Exception):
    """A request the server refuses; `status` is the HTTP status code it is answered with."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def bad_request(message: str) -> InferenceError:
    return InferenceError(400, message)


def too_large(message: str) -> InferenceError:
    return InferenceError(413, message)


def unsupported_media_type(message: str) -> InferenceError:
    return InferenceError(415, message)
