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
