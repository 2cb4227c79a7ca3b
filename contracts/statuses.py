"""Statuses and exception codes both sides speak.

Platform statuses follow SageMaker's TrainingJobStatus (`Pending` is ours: queued on the
local platform). The trainer's heartbeat (`progress.json`) carries a v1.5 monitor status;
the API shows the furthest of the two, so a status never moves backwards.
"""

from __future__ import annotations

import re

# SageMaker TrainingJobStatus
PENDING = "Pending"
IN_PROGRESS = "InProgress"
COMPLETED = "Completed"
FAILED = "Failed"
STOPPING = "Stopping"
STOPPED = "Stopped"
TERMINAL = (COMPLETED, FAILED, STOPPED)

# v1.5 monitor statuses, in the order a job moves through them.
INITIALIZING = "initializing"
INITIALIZED = "initialized"
RUNNING = "running"
FINISHED = "finished"
STOPPED_V15 = "stopped"
EXCEPTION = "exception"
V15_ORDER = (INITIALIZING, INITIALIZED, RUNNING)
V15_TERMINAL = (FINISHED, STOPPED_V15, EXCEPTION)

# v1.5 exception codes (spec: monitor). The trainer's failure report starts with
# "<code> <type>: <message>" so the API can rebuild the exception object from
# SageMaker's FailureReason alone.
EXCEPTION_CODES = {
    "RuntimeError": "E01",
    "AssertionError": "E02",
    "ValueError": "E03",
    "FileNotFoundError": "E04",
}
OTHER_EXCEPTION = "E00"
FAILURE_REASON_LIMIT = 1024  # SageMaker keeps the first 1024 characters of /opt/ml/output/failure


def exception_code(exc: BaseException) -> str:
    """The spec's code of an exception, by the first listed class it derives from."""
    names = {cls.__name__ for cls in type(exc).__mro__}
    for name, code in EXCEPTION_CODES.items():
        if name in names:
            return code
    return OTHER_EXCEPTION


def failure_head(code: str, kind: str, message: str) -> str:
    """The first line of /opt/ml/output/failure: what FailureReason leads with."""
    return f"{code} {kind}: {message}"[:FAILURE_REASON_LIMIT]


def parse_failure_reason(reason: str) -> dict[str, str]:
    """The v1.5 exception object from a FailureReason the trainer wrote (or the platform's own)."""
    match = re.match(r"^(E0\d) (\w+): (.*)", reason or "", re.S)
    if match:
        head, _, trace = match.group(3).partition("\n\n")
        return {"code": match.group(1), "type": match.group(2), "message": head, "traceback": trace}
    return {
        "code": OTHER_EXCEPTION,
        "type": "PlatformError",
        "message": reason or "The training job failed.",
        "traceback": "",
    }


def v15_progress_status(platform_status: str, heartbeat_status: str | None) -> str:
    """What monitor shows while the platform says the job is not over.

    The heartbeat may already say `finished` while the platform packs the model: the job
    then reads `running` (never `initializing` again) until the platform completes it.
    """
    if heartbeat_status in (INITIALIZED, RUNNING):
        return heartbeat_status
    if heartbeat_status in V15_TERMINAL:
        return RUNNING
    return INITIALIZING


# What a running job is doing, in the heartbeat's `phase` and monitor's: the validation pass
# after an epoch can take minutes with every training batch done, so monitor says
# `evaluating` (with `eta_hr` -1, unknown) instead of `batch 20/20, ETA 0`. Null once the job
# is no longer running, or from a trainer older than this field.
PHASE = "phase"
TRAINING = "training"
EVALUATING = "evaluating"
