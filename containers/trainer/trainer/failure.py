"""Maps exceptions to the v1.5 exception codes and writes the SageMaker failure file."""

from __future__ import annotations

import traceback
from pathlib import Path

CODES = {
    RuntimeError: "E01",
    AssertionError: "E02",
    ValueError: "E03",
    FileNotFoundError: "E04",
}
FAILURE_REASON_LIMIT = 1024


def exception_code(exc: BaseException) -> str:
    for kind, code in CODES.items():
        if isinstance(exc, kind):
            return code
    return "E00"


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
    head = f"{info['code']} {info['type']}: {info['message']}"
    path.write_text(head[:FAILURE_REASON_LIMIT] + "\n\n" + info["traceback"])
