"""Writes the SageMaker failure file in the shape the API parses (contracts.statuses)."""

from __future__ import annotations

import traceback
from pathlib import Path

from contracts.statuses import exception_code, failure_head


def describe(exc: BaseException) -> dict:
    return {
        "code": exception_code(exc),
        "type": type(exc).__name__,
        "message": str(exc),
        "traceback": "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)),
    }


def write_failure(path: Path, exc: BaseException) -> None:
    """SageMaker shows the first 1024 characters as FailureReason: lead with the cause."""
    path.parent.mkdir(parents=True, exist_ok=True)
    info = describe(exc)
    path.write_text(failure_head(info["code"], info["type"], info["message"]) + "\n\n" + info["traceback"])
