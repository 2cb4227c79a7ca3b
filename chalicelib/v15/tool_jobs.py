"""Tool work inside the synchronous budget: started to outlive the request, its answer cached.

A tool (contracts.tools) runs in the trainer image, whose cold start alone can outlast API
Gateway's 29 s. So the API never waits on the tool itself: it starts the work through the
ToolRunner port (a detached child locally, an asynchronous Lambda invocation on AWS), which
writes the answer to the ArtifactStore, and reads that answer for what is left of the budget
(AIFACTORY_SYNC_BUDGET_SECONDS). Not there yet: 503 "retry" with Retry-After
(errors.StillComputing), and the same request retried gets the answer once it is written.

Each request has one entry, keyed by a hash of the request, under the job's prefix
(`jobs/<job_id>/tools/<hash>/`, removed with the job) or the stage's (`tools/<hash>/`, aug
preview):

    pending.json  {"tool", "started_at" (epoch s), "starts"}: written before the work starts,
                  so a retry waits for that work instead of starting it again; older than the
                  runner's timeout plus a grace, the work died (a crash writes nothing) and is
                  started again, at most MAX_STARTS times
    answer.json   the tool's answer, written whole by the work

An `ok` answer is kept when the caller says its inputs never change (a checkpoint's visualize
or summary): the next identical request is served from it. Otherwise (aug preview of a data
directory that may change; a plot, stored as a JPEG by its route; every failure) the answer
is served once and the entry removed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from typing import Any

from chalicelib.errors import DomainError, StillComputing, StorageFull, Unavailable
from chalicelib.ports import Adapters
from chalicelib.services import budget
from contracts import layout, tools

log = logging.getLogger(__name__)

TOOLS = "tools"
STAGE_PREFIX = TOOLS  # requests of no job (aug preview)
PENDING = "pending.json"
ANSWER = "answer.json"
STALE_GRACE_S = 30.0  # beyond the runner's timeout: an asynchronous Lambda event may queue a while
MAX_STARTS = 3  # work that died this many times is reported, not started again
RETRY_AFTER_S = 5
POLL_FIRST_S = 0.02
POLL_MAX_S = 0.2  # a GetObject on S3 every 0.2 s at most: ~125 in a 25 s budget


class ToolError(DomainError):
    """The tool's own refusal or failure, with the status it names."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status_code = status if 400 <= status < 600 else 500


def job_prefix(job_id: str) -> str:
    return layout.job_key(job_id, TOOLS)


def request_hash(request: dict[str, Any]) -> str:
    canonical = json.dumps(request, sort_keys=True, separators=(",", ":"), allow_nan=True)
    return hashlib.sha256(canonical.encode()).hexdigest()[:40]


def entry_key(prefix: str, request: dict[str, Any]) -> str:
    return f"{prefix}/{request_hash(request)}"


def _label(request: dict[str, Any]) -> str:
    """What the caller waits for, in its words: "The loss plot", "The augmentation preview"."""
    tool = request.get("tool")
    if tool == tools.PLOT:
        return f"The {str(request.get('plot', '')).replace('_', ' ').replace('-', ' ')} plot"
    if tool == tools.VISUALIZE:
        return f"The picture of parameter {request.get('param_key')}"
    return {tools.SUMMARIZE: "The checkpoint's summary", tools.AUG_PREVIEW: "The augmentation preview"}.get(
        tool, f"The {tool} answer"
    )


def _stale(marker: dict[str, Any], timeout_s: float) -> bool:
    started = marker.get("started_at")
    return not isinstance(started, (int, float)) or time.time() - started > timeout_s + STALE_GRACE_S


def _wait(svc: Adapters, key: str, until: float) -> dict[str, Any] | None:
    delay = POLL_FIRST_S
    while True:
        answer = svc.artifacts.get_json(key)
        if answer is not None:
            return answer
        left = budget.left(until)
        if left <= 0:
            return None
        time.sleep(min(delay, left))
        delay = min(delay * 2, POLL_MAX_S)


def _start(svc: Adapters, request: dict[str, Any], entry: str, marker: dict | None) -> bool:
    """Records and starts the work (`marker`: the stale one it replaces); False when it cannot
    be recorded (a full local disk), and the caller runs it inline."""
    starts = int((marker or {}).get("starts", 0)) + 1
    if marker is not None:
        if starts > MAX_STARTS:
            svc.artifacts.delete_prefix(entry)
            raise Unavailable(
                f"{_label(request)} was started {MAX_STARTS} times and never answered within "
                f"{svc.tools.timeout_s:.0f} s; the tools' log says why. Asking again starts it afresh."
            )
        log.warning(
            "%s: work started %s s ago never answered; starting it again", entry, marker.get("started_at")
        )
    try:
        svc.artifacts.put_json(
            f"{entry}/{PENDING}", {"tool": request.get("tool"), "started_at": time.time(), "starts": starts}
        )
    except StorageFull:
        return False
    try:
        svc.tools.start(request, f"{entry}/{ANSWER}")
    except BaseException:
        svc.artifacts.delete_prefix(entry)  # nothing runs: the next request starts it
        raise
    return True


def run(
    svc: Adapters,
    request: dict[str, Any],
    prefix: str,
    *,
    until: float | None = None,
    keep: bool = False,
) -> dict[str, Any]:
    """The tool's `ok` answer (without `ok`) for `request`, waiting until `until` at most
    (`time.monotonic()`; default: the budget from now). StillComputing when the work goes
    on past it; ToolError with the tool's status when it failed."""
    if svc.tools is None:
        raise Unavailable("This stage has no tools function configured.")
    until = budget.deadline(svc.settings) if until is None else until
    entry = entry_key(prefix, request)
    answer = svc.artifacts.get_json(f"{entry}/{ANSWER}")
    if answer is None:
        marker = svc.artifacts.get_json(f"{entry}/{PENDING}")
        if marker is None or _stale(marker, svc.tools.timeout_s):
            if not _start(svc, request, entry, marker):
                inline = getattr(svc.tools, "run", None)  # the local runner, on a full disk
                if inline is None:
                    raise StorageFull(entry)
                return _outcome(inline(request))
        answer = _wait(svc, f"{entry}/{ANSWER}", until)
        if answer is None:
            raise StillComputing(
                f"{_label(request)} is still being computed; retry in {RETRY_AFTER_S} s.", RETRY_AFTER_S
            )
    if not (keep and isinstance(answer, dict) and answer.get("ok")):
        try:
            svc.artifacts.delete_prefix(entry)
        except OSError as exc:  # served all the same; a retry finds it and serves it again
            log.warning("tool entry %s not removed: %s", entry, exc)
    return _outcome(answer)


def _outcome(answer: Any) -> dict[str, Any]:
    if not isinstance(answer, dict):
        raise Unavailable(f"The tool answered {type(answer).__name__}, not an object.")
    if not answer.get("ok"):
        raise ToolError(int(answer.get("status", 500)), answer.get("message") or "The tool failed.")
    return {k: v for k, v in answer.items() if k != "ok"}
