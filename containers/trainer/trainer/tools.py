"""The trainer image's one-off tools (contracts.tools): visualize a parameter, summarize a
checkpoint, preview augmentation. The API never imports torch; it runs these here.

Locally: `python -m trainer.tools` reads one request (JSON) on stdin and prints the answer.
On AWS: `trainer.tools.handler` is the tools Lambda function's handler (a container image
built from this one); `s3://` locations are downloaded to /tmp first. The API invokes it
asynchronously with a job event (contracts.tools.job) and reads the answer it writes to S3.
"""

from __future__ import annotations

import base64
import gc
import io
import json
import logging
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlparse

from contracts import layout, tools
from contracts.statuses import exception_code

log = logging.getLogger("trainer.tools")
MAX_VISUALIZED_FILTERS = 64


def _local(uri: str, scratch: Path) -> Path:
    """A local directory holding what `uri` names (downloading an s3:// prefix)."""
    if not uri.startswith("s3://"):
        path = Path(uri)
        if not path.is_dir():
            raise FileNotFoundError(f"{uri} is not a directory")
        return path
    import boto3

    parsed = urlparse(uri)
    prefix = parsed.path.lstrip("/").rstrip("/") + "/"
    s3 = boto3.client("s3")
    found = False
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=parsed.netloc, Prefix=prefix):
        for item in page.get("Contents", []):
            target = scratch / item["Key"][len(prefix) :]
            target.parent.mkdir(parents=True, exist_ok=True)
            s3.download_file(parsed.netloc, item["Key"], str(target))
            found = True
    if not found:
        raise FileNotFoundError(f"{uri} holds no objects")
    return scratch


def jpeg_base64(image) -> str:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=90)
    return base64.b64encode(buffer.getvalue()).decode()


def tensor_image(tensor):
    """A parameter as a picture: conv filters as a grid of tiles (first three input channels
    as RGB, else the mean), anything else as a heat map of its values."""
    import torch
    from matplotlib.figure import Figure
    from PIL import Image
    from torchvision.utils import make_grid

    values = tensor.detach().float().cpu()
    if values.dim() == 4 and values.shape[-1] > 1 and values.shape[-2] > 1:
        filters = values[:MAX_VISUALIZED_FILTERS]
        filters = filters[:, :3] if filters.shape[1] >= 3 else filters.mean(1, keepdim=True)
        low = filters.amin(dim=(1, 2, 3), keepdim=True)
        high = filters.amax(dim=(1, 2, 3), keepdim=True)
        filters = (filters - low) / (high - low).clamp_min(1e-12)
        grid = make_grid(filters, nrow=8, padding=1, pad_value=1.0)
        scale = max(1, 256 // max(grid.shape[1:]))
        array = (grid.permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()
        image = Image.fromarray(array.squeeze(-1) if array.shape[-1] == 1 else array)
        return image.resize((image.width * scale, image.height * scale), Image.NEAREST)
    matrix = values.reshape(values.shape[0], -1) if values.dim() > 1 else values.reshape(1, -1)
    figure = Figure(figsize=(6, 4))
    axes = figure.add_subplot()
    shown = axes.imshow(matrix.numpy(), aspect="auto", cmap="viridis", interpolation="nearest")
    figure.colorbar(shown)
    axes.set_title(f"{tuple(values.shape)}")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    return Image.open(io.BytesIO(buffer.getvalue()))


def visualize(request: dict, scratch: Path) -> dict:
    from trainer.vision.checkpoint import load_weights

    directory = _local(request["checkpoint_uri"], scratch)
    weights = directory / layout.WEIGHTS
    if not weights.is_file():
        return tools.failed(404, "The checkpoint has no weights (pruned by max_num_checkpoints?).")
    state = load_weights(weights)
    key = request["param_key"]
    if key not in state:
        return tools.failed(400, f"Key '{key}' does not exist")
    return tools.ok(base64_image=jpeg_base64(tensor_image(state[key])))


def summarize(request: dict, scratch: Path) -> dict:
    from trainer.vision import checkpoint
    from trainer.vision.models import input_size

    directory = _local(request["checkpoint_uri"], scratch)
    loaded = checkpoint.load_model(directory, "cpu")
    hp = loaded.model_json.get("hyperparameters") or {}
    summary = checkpoint.summarize(loaded.model, loaded.task, input_size(loaded.task, hp), "cpu")
    return tools.ok(**summary)


def aug_preview(request: dict, scratch: Path) -> dict:
    from trainer.vision.preview import preview

    root = _local(request["data_uri"], scratch)
    image = preview(
        root, request["task"], int(request["index"]), dict(request["hyperparameters"]), request.get("seed", 0)
    )
    return tools.ok(base64_aug_image=jpeg_base64(image))


def plot(request: dict, scratch: Path) -> dict:
    from trainer.vision.plots import draw

    data = draw(request["plot"], request["data"])
    return tools.ok(base64_image=base64.b64encode(data).decode())


HANDLERS = {
    tools.VISUALIZE: visualize,
    tools.SUMMARIZE: summarize,
    tools.AUG_PREVIEW: aug_preview,
    tools.PLOT: plot,
}


def run(request: dict) -> dict:
    """Always answers: a failure is an answer with the status the API should give."""
    tool = request.get("tool")
    if tool not in HANDLERS:
        return tools.failed(400, f"Unknown tool {tool!r}; choose one of {', '.join(tools.TOOLS)}")
    try:
        with tempfile.TemporaryDirectory(prefix="aifactory-tool-") as scratch:
            return HANDLERS[tool](request, Path(scratch))
    except (FileNotFoundError, ValueError) as exc:
        status = 404 if exception_code(exc) == "E04" else 400
        return tools.failed(status, str(exc))
    except Exception as exc:
        log.exception("tool %s failed", tool)
        return tools.failed(500, f"{type(exc).__name__}: {exc}")


def _read_json(uri: str):
    if not uri.startswith("s3://"):
        return json.loads(Path(uri).read_bytes())
    import boto3

    parsed = urlparse(uri)
    body = boto3.client("s3").get_object(Bucket=parsed.netloc, Key=parsed.path.lstrip("/"))["Body"]
    return json.loads(body.read())


def write_answer(uri: str, answer: dict) -> None:
    """The answer where the API reads it: a file written whole (renamed into place), or one
    S3 object (the tools function's role may write only the tools prefixes)."""
    data = json.dumps(answer).encode()
    if not uri.startswith("s3://"):
        from contracts import atomic

        atomic.write_bytes(Path(uri), data)
        return
    import boto3

    parsed = urlparse(uri)
    boto3.client("s3").put_object(
        Bucket=parsed.netloc, Key=parsed.path.lstrip("/"), Body=data, ContentType="application/json"
    )


def run_job(event: dict) -> dict:
    """An asynchronous run (contracts.tools.job): the answer goes to `result_uri`, failures too."""
    try:
        request = event["request"] if "request" in event else _read_json(event[tools.REQUEST_URI])
    except Exception as exc:
        log.exception("tool job request unreadable")
        answer = tools.failed(500, f"The tool's request could not be read: {type(exc).__name__}: {exc}")
    else:
        answer = run(request)
    write_answer(event[tools.RESULT_URI], answer)
    return answer


def handler(event, context):
    """A plain request is answered (a synchronous invocation); a job (the API's asynchronous
    `InvocationType=Event` invocation) writes its answer to S3 for the API to read."""
    if tools.is_job(event):
        answer = run_job(event)
        return {"ok": answer.get("ok"), "status": answer.get("status", 200)}  # the answer is in S3
    return run(event)


def main() -> int:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    json.dump(run(json.load(sys.stdin)), sys.stdout)
    sys.stdout.flush()
    gc.freeze()  # the answer is out: skip the final collections over torch's objects (trainer/__main__.py)
    return 0


if __name__ == "__main__":
    sys.exit(main())
