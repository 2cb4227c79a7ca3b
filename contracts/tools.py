"""One-off torch-bound work the API asks of the trainer image: the request and answer shapes.

The API never imports torch. It sends one of these requests to `trainer.tools` (a child
process locally, the tools Lambda function built from the trainer image on AWS) and gets
a JSON answer back: `{"ok": true, ...}` or `{"ok": false, "status": 4xx|5xx, "message": ...}`.
Locations are what the container can read: a local path, or an `s3://` prefix.
"""

from __future__ import annotations

VISUALIZE = "visualize"  # {"checkpoint_uri", "param_key"} -> {"base64_image"}
SUMMARIZE = "summarize"  # {"checkpoint_uri"} -> {"flops", "params", "param_keys"}
AUG_PREVIEW = (
    "aug_preview"  # {"data_uri", "task", "index", "hyperparameters", "seed"} -> {"base64_aug_image"}
)
PLOT = "plot"  # {"plot", "data"} -> {"base64_image"} (contracts.plots)
TOOLS = (VISUALIZE, SUMMARIZE, AUG_PREVIEW, PLOT)
REQUIRED = {
    VISUALIZE: ("checkpoint_uri", "param_key"),
    SUMMARIZE: ("checkpoint_uri",),
    AUG_PREVIEW: ("data_uri", "task", "index", "hyperparameters"),
    PLOT: ("plot", "data"),
}


def request(tool: str, **fields) -> dict:
    if tool not in TOOLS:
        raise ValueError(f"unknown tool {tool!r}")
    missing = [name for name in REQUIRED[tool] if name not in fields]
    if missing:
        raise ValueError(f"tool {tool} needs {', '.join(missing)}")
    return {"tool": tool, **fields}


def ok(**fields) -> dict:
    return {"ok": True, **fields}


def failed(status: int, message: str) -> dict:
    return {"ok": False, "status": int(status), "message": message}


# --- asynchronous runs: the answer written to a location ------------------------------------
# Tool work may outlive the API's request (AIFACTORY_SYNC_BUDGET_SECONDS): the API starts it
# with a job event and reads the answer from its ArtifactStore later. The event names where
# the answer goes (`result_uri`: a local path or an s3:// URI the container can write) and
# carries the request itself, or where to read it (`request_uri`) when it is too large for
# the invocation (a Lambda asynchronous event takes at most 256 KB). The tool writes its
# answer (`ok` or `failed`, JSON) there whatever happens; a crash leaves nothing, and the
# API restarts work whose answer has not come within the tool's own timeout.
RESULT_URI = "result_uri"
REQUEST_URI = "request_uri"


def job(result_uri: str, request: dict | None = None, request_uri: str | None = None) -> dict:
    if (request is None) == (request_uri is None):
        raise ValueError("a tool job carries its request or the location of its request, not both")
    if request is not None:
        return {RESULT_URI: result_uri, "request": request}
    return {RESULT_URI: result_uri, REQUEST_URI: request_uri}


def is_job(event: dict) -> bool:
    return isinstance(event, dict) and RESULT_URI in event
