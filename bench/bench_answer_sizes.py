"""The largest answers the API produces, against Lambda's 6 MB (issue 17 §1), side by side.

Run: `.venv/bin/python bench/bench_answer_sizes.py [--width 4000] [--height 3000] [--images 100]
[--instances 10,100] [--classes 1000,2000,5000]`.

Every figure is the Lambda proxy output of a real request through `make run`'s server
(`chalicelib.entrypoints.local_server`, AWS's size limits on: past 6,291,556 bytes it answers
502 as API Gateway does), the same number the server compares with the limit; the 29 s
integration timeout is off, since these are sizes, not times:

- `infer` with `returns_images` of a `--width` x `--height` JPEG (noise, the worst case for
  JPEG, and a smoother "photo"), per task, with `--instances` detections / instances;
- `infer_multiple` of `--images` such images, per task;
- a classification checkpoint of each `--classes` count (a synthetic `metrics.json` and
  `plot_data.json` as the trainer writes them): the checkpoint route (metrics and the metric
  plot), the checkpoint list, the confusion matrix plot and a threshold plot; beside them what
  the routes read (`plot_data.json`, the plot tool's request) and the memory `json.loads`
  takes to read `plot_data.json` (tracemalloc peak: what the Lambda holds for it).

The model server is a stand-in that runs the real `inference.decode` on what the API sends and
the real `inference.encode` on a synthetic model output (boxes, and Mask R-CNN-like blobs in the
original image's pixels), so the answers are the encoder's own; the plots are drawn by the real
plot tool in a child process (LocalToolRunner). Everything runs on loopback in a temp dir.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import random
import shutil
import sys
import tempfile
import threading
import time
import tracemalloc
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "containers" / "inference"))
sys.path.insert(0, str(ROOT / "containers" / "trainer"))

API_KEY = "bench-answer-sizes-key"
V = "/api/v1.5.0"
TASKS = ("classification", "detection", "instance_segmentation")
CLASS_NAMES = ["background", "cat", "dog", "bird", "car", "person"]
MODEL_FILE = "bench_model.json"  # in the checkpoint: what the stand-in answers for


# --- the stand-in model server (run by the local hosting platform as its "python") ---------------
def synthetic_output(task: str, width: int, height: int, instances: int, seed: int):
    """A model output in the original image's pixels: R-CNN's boxes/labels/scores and, for
    instance segmentation, masks made as Mask R-CNN makes them (a 28x28 map upsampled into the
    box, > 0.5)."""
    import torch
    import torch.nn.functional as F

    if task == "classification":
        return torch.softmax(torch.tensor([0.2, 2.0, 0.5, 0.1, 0.1, 0.1]), 0)
    rng = random.Random(seed)
    boxes, masks = [], None
    if task == "instance_segmentation":
        masks = torch.zeros(instances, 1, height, width, dtype=torch.uint8)
    generator = torch.Generator().manual_seed(seed)
    for i in range(instances):
        w, h = rng.uniform(0.05, 0.3) * width, rng.uniform(0.05, 0.3) * height
        x0, y0 = rng.uniform(0, width - w), rng.uniform(0, height - h)
        boxes.append([x0, y0, x0 + w, y0 + h])
        if masks is not None:
            blob = torch.randn(1, 1, 28, 28, generator=generator)
            for _ in range(3):  # smooth: a blob, not salt and pepper
                blob = F.avg_pool2d(F.pad(blob, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
            blob += 0.6 * (
                1 - (torch.linspace(-1, 1, 28)[None, :] ** 2 + torch.linspace(-1, 1, 28)[:, None] ** 2)
            )
            ix0, iy0, ix1, iy1 = (
                int(x0),
                int(y0),
                max(int(x0) + 1, int(x0 + w)),
                max(int(y0) + 1, int(y0 + h)),
            )
            up = F.interpolate(blob, size=(iy1 - iy0, ix1 - ix0), mode="bilinear", align_corners=False)
            masks[i, 0, iy0:iy1, ix0:ix1] = (up[0, 0] > 0.5).to(torch.uint8)
    output = {
        "boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
        "labels": torch.tensor([1 + rng.randrange(len(CLASS_NAMES) - 1) for _ in range(instances)]),
        "scores": torch.tensor(sorted((rng.uniform(0.3, 0.99) for _ in range(instances)), reverse=True)),
    }
    if masks is not None:
        output["masks"] = masks
    return output


def stand_in(argv: list[str]) -> None:
    import http.server

    from inference import encode
    from inference.decode import parse_request

    args = dict(zip(argv[0::2], argv[1::2], strict=False))
    model = json.loads((Path(args["--model-dir"]) / MODEL_FILE).read_text())
    answers: dict[str, bytes] = {}
    lock = threading.Lock()

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def _send(self, status: int, data: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            self._send(200, json.dumps({"result": "OK", "task": model["task"]}).encode())

        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            attributes = self.headers.get("X-Amzn-SageMaker-Custom-Attributes")
            key = hashlib.sha256(body + (attributes or "").encode()).hexdigest()
            with lock:  # one image at a time: the masks of 100 instances are 1.2 GB
                if key not in answers:
                    request = parse_request(
                        body,
                        self.headers["Content-Type"],
                        "",
                        attributes,
                        max_bytes=6 * 1024 * 1024,
                        max_pixels=40_000_000,
                    )
                    width, height = request.image.size
                    output = synthetic_output(model["task"], width, height, model["instances"], seed=7)
                    answer = encode.infer_body(
                        model["task"],
                        request.image,
                        output,
                        CLASS_NAMES,
                        request.lower_prob_thresh,
                        request.upper_prob_thresh,
                        request.returns_images,
                    )
                    answers[key] = json.dumps(answer).encode()
            self._send(200, answers[key])

    server = http.server.ThreadingHTTPServer((args["--host"], int(args["--port"])), Handler)
    server.serve_forever()


# --- the API under test -----------------------------------------------------------------------------
class Api:
    """The real app behind `make run`'s server (AWS's limits on), in this process, recording the
    Lambda proxy output size of each answer as the server measures it."""

    def __init__(self, home: Path, python: str):
        from chalicelib import settings, wiring

        os.environ.update(
            {
                "AIFACTORY_STAGE": "local",
                "AIFACTORY_HOME": str(home),
                "AIFACTORY_API_KEY": API_KEY,
                "AIFACTORY_DOCKER": "0",
                "AIFACTORY_ALLOW_PRIVATE_URLS": "1",
            }
        )
        settings.reset()
        wiring.reset()
        from chalicelib.adapters.local.hosting_platform import LocalHostingPlatform
        from chalicelib.entrypoints import local_server

        self.services = wiring.adapters()
        self.services.hosting = LocalHostingPlatform(home, python=python)
        import chalicelib.v15.routes as v15_routes

        v15_routes.adapters = lambda: self.services
        self.sizes: dict[int, int] = {}
        measure = local_server.ApiGatewayAdapter._output_size

        def recording(response):
            size = measure(response)
            self.sizes[threading.get_ident()] = size
            return size

        local_server.ApiGatewayAdapter._output_size = staticmethod(recording)
        from app import app

        self.server = local_server.create_server(
            app, "127.0.0.1", 0, threads=2, channel_timeout=600, integration_timeout=None
        )  # sizes, not times: the stand-in's 100 masks of 12 MP take longer than API Gateway's 29 s on 2 cores
        threading.Thread(target=self._run, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.effective_port}"

    def _run(self) -> None:
        try:
            self.server.run()
        except OSError:  # the socket closed under the loop by close()
            pass

    def call(self, method: str, path: str, form: dict | None = None, retry_for: float = 900.0):
        """(status, proxy output bytes, body): 503 "retry" answers are retried as a client would."""
        deadline = time.monotonic() + retry_for
        while True:
            data = urllib.parse.urlencode(form).encode() if form is not None else None
            headers = {"x-api-key": API_KEY, "Accept": "application/json"}
            if data is not None:
                headers["Content-Type"] = "application/x-www-form-urlencoded"
            request = urllib.request.Request(self.url + path, data=data, headers=headers, method=method)
            self.sizes.clear()
            try:
                with urllib.request.urlopen(request, timeout=600) as reply:
                    status, payload, retry = reply.status, reply.read(), None
            except urllib.error.HTTPError as error:
                status, payload, retry = error.code, error.read(), error.headers.get("Retry-After")
            size = next(iter(self.sizes.values()), None)  # the server thread's record
            if status == 503 and retry and time.monotonic() < deadline:
                time.sleep(float(retry))
                continue
            try:
                body = json.loads(payload)
            except ValueError:
                body = payload[:200]
            return status, size, body

    def close(self) -> None:
        self.server.close()
        for deployment in self.services.hosting.list():
            self.services.hosting.undeploy(deployment.name)


# --- inputs -------------------------------------------------------------------------------------------
def jpeg(width: int, height: int, kind: str, max_bytes: int = 6 * 1024 * 1024) -> bytes:
    """Noise (the worst case for JPEG) or a smooth "photo" with some grain, as the largest JPEG
    quality (95 down) under the API's image limit."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(3)
    if kind == "noise":
        pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    else:
        y, x = np.mgrid[0:height, 0:width].astype(np.float32)
        base = np.stack([x / width, y / height, 0.5 + 0.5 * np.sin(x / 97 + y / 131)], axis=-1) * 200
        pixels = np.clip(base + rng.normal(0, 12, (height, width, 3)), 0, 255).astype(np.uint8)
    image = Image.fromarray(pixels)
    for quality in (95, 90, 85, 75, 60, 50, 40, 30, 20):
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=quality)
        if len(buffer.getvalue()) <= max_bytes:
            return buffer.getvalue()
    raise ValueError("no JPEG quality fits the image limit")


def new_job(api: Api, job_id: str, task: str) -> None:
    from chalicelib.ports import COMPLETED
    from chalicelib.services import jobs

    api.services.jobs.create(
        jobs.base_record(job_id, f"v15-bench-{job_id[-8:]}", "v1.5", task, status=COMPLETED, settled=True)
    )


def checkpoint_file(api: Api, job_id: str, name: str, data) -> int:
    from contracts import layout

    key = layout.job_key(job_id, layout.epoch_file(1, name))
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    api.services.artifacts.put_bytes(key, raw)
    return len(raw)


def deployed(api: Api, job_id: str, task: str, instances: int) -> None:
    from contracts import layout

    checkpoint_file(api, job_id, layout.METRICS_JSON, {"epoch": 1, "avg_loss": 0.5, "metrics": {}})
    checkpoint_file(api, job_id, layout.WEIGHTS, b"weights")
    checkpoint_file(api, job_id, MODEL_FILE, {"task": task, "instances": instances})
    status, _, body = api.call(
        "POST", f"{V}/deploy/{job_id}", {"task": task, "epoch": "1", "target_device_id": "-1"}
    )
    assert status == 200, body
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        states = [d.status for d in api.services.hosting.list() if d.job_id == job_id]
        if states == ["InService"]:
            return
        time.sleep(0.2)
    raise RuntimeError(f"the stand-in for {job_id} did not come up: {states}")


# --- classification checkpoints with many classes -------------------------------------------------
def class_metrics(classes: int) -> tuple[dict, dict]:
    """metrics.json and plot_data.json of a C-class checkpoint, as the trainer writes them: a
    50-image-per-class validation set, about 80 % right, the rest spread thinly."""
    from contracts import plots

    rng = random.Random(classes)
    names = [
        f"class-{i:05d}-{rng.choice(['tench', 'goldfish', 'shark', 'hen', 'ostrich'])}"
        for i in range(classes)
    ]
    per_class = [round(rng.uniform(0.5, 1.0), 4) for _ in range(classes)]
    record = {
        "epoch": 1,
        "avg_loss": 0.73,
        "metrics": {
            "overall": {"accuracy": 0.8, "avg_recall": 0.79, "avg_precision": 0.81, "avg_f1_score": 0.8},
            "specific": {
                "categories": ["mean", *names],
                "aucs": [0.9, *per_class],
                "sensitivities": [0.8, *per_class],
                "specificities": [0.99, *per_class],
            },
        },
    }
    matrix = []
    for i in range(classes):
        row = [0] * classes
        row[i] = 40
        for _ in range(10):
            row[rng.randrange(classes)] += 1
        matrix.append(row)
    thresholds = [i / 100 for i in range(101)]
    precision = [[min(1.0, 0.5 + t / 2 + rng.uniform(0, 0.05)) for t in thresholds] for _ in range(classes)]
    recall = [[max(0.0, 1.0 - t + rng.uniform(-0.05, 0)) for t in thresholds] for _ in range(classes)]
    return record, plots.plot_data(names, matrix, thresholds, precision, recall)


def read_peak(raw: bytes) -> int:
    """What `json.loads` of `raw` holds at its peak (tracemalloc): the Lambda's memory for it."""
    tracemalloc.start()
    try:
        json.loads(raw)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


# --- the report -------------------------------------------------------------------------------------
LIMIT = 6_291_556


def mb(size: int | None) -> str:
    return "-" if size is None else f"{size / 1_000_000:.2f} MB"


def verdict(status: int, size: int | None) -> str:
    if size is not None and size > LIMIT:
        return f"**over** ({status})"
    return f"fits ({status})" if status == 200 else f"{status}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=4000)
    parser.add_argument("--height", type=int, default=3000)
    parser.add_argument("--images", type=int, default=100, help="images of one infer_multiple")
    parser.add_argument("--instances", default="10,100", help="detections / instances per image")
    parser.add_argument("--classes", default="1000,2000,5000", help="class counts of the checkpoints")
    parser.add_argument("--skip-infer", action="store_true")
    parser.add_argument("--skip-plots", action="store_true")
    args = parser.parse_args(argv)
    instances = [int(v) for v in args.instances.split(",") if v]
    class_counts = [int(v) for v in args.classes.split(",") if v]

    home = Path(tempfile.mkdtemp(prefix="bench-answers-"))
    python = home / "stand-in-python"
    python.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{Path(__file__).resolve()}" --stand-in "$@"\n')
    python.chmod(0o755)
    api = Api(home, str(python))
    rows, plot_rows = [], []
    started = time.monotonic()
    try:
        if not args.skip_infer:
            uploads = home / "uploads"
            (uploads / "many").mkdir(parents=True)
            for kind in ("noise", "photo"):
                (uploads / f"{kind}.jpg").write_bytes(jpeg(args.width, args.height, kind))
            for i in range(args.images):
                os.link(uploads / "noise.jpg", uploads / "many" / f"image-{i:03d}.jpg")
            for task in TASKS:
                for count in instances if task != "classification" else [1]:
                    job_id = f"20261201000000-bench-{task[:3]}-{count:04d}"
                    new_job(api, job_id, task)
                    deployed(api, job_id, task, count)
                    what = f"{count} {'instances' if task == 'instance_segmentation' else 'detections'}"
                    what = "" if task == "classification" else f", {what}"
                    for kind in ("noise", "photo"):
                        form = {
                            "task": task,
                            "epoch": "1",
                            "lower_prob_thresh": "0",
                            "returns_images": "True",
                        }
                        status, size, _ = api.call(
                            "POST",
                            f"{V}/infer/{job_id}",
                            {**form, "path_to_image": str(uploads / f"{kind}.jpg")},
                        )
                        rows.append(
                            (
                                f"infer, returns_images, {args.width}x{args.height} {kind} JPEG",
                                task + what,
                                status,
                                size,
                            )
                        )
                    form = {
                        "task": task,
                        "epoch": "1",
                        "lower_prob_thresh": "0",
                        "path_to_image_pattern_list": str([str(uploads / "many" / "*.jpg")]),
                    }
                    status, size, body = api.call("POST", f"{V}/infer_multiple/{job_id}", form)
                    entries = body.get("images", []) if isinstance(body, dict) else []
                    for field in ("instance_segmentation_base64_map", "polygons"):
                        cut = sum(field in entry.get("omitted", ()) for entry in entries)
                        if cut:
                            what += f"; {cut} of {len(entries)} without {field.split('_')[-1]}"
                    rows.append(
                        (
                            f"infer_multiple, {args.images} images {args.width}x{args.height}",
                            task + what,
                            status,
                            size,
                        )
                    )
                    api.services.hosting.undeploy(
                        next(d.name for d in api.services.hosting.list() if d.job_id == job_id)
                    )
        if not args.skip_plots:
            from contracts import layout
            from contracts import plots as kinds

            for classes in class_counts:
                job_id = f"20261201000000-bench-plots-{classes:06d}"
                new_job(api, job_id, "classification")
                record, data = class_metrics(classes)
                metrics_bytes = checkpoint_file(api, job_id, layout.METRICS_JSON, record)
                checkpoint_file(api, job_id, layout.WEIGHTS, b"weights")
                checkpoint_file(api, job_id, layout.MODEL_JSON, {"class_names": data["class_names"]})
                raw = json.dumps(data).encode()
                plot_data_bytes = checkpoint_file(api, job_id, layout.PLOT_DATA_JSON, raw)
                tool_request = len(
                    json.dumps(kinds.plot_input(kinds.CONFUSION_MATRIX, "classification", record, data))
                )
                peak = read_peak(raw)
                del data, raw
                base = f"{V}/train/{job_id}"
                for route, path in (
                    ("checkpoint (metrics + metric plot)", f"{base}/checkpoints/epoch/1"),
                    ("checkpoints (list)", f"{base}/checkpoints"),
                    ("confusion matrix plot", f"{base}/plots/confusion-matrix/epoch/1"),
                    ("threshold plot, class 1", f"{base}/plots/threshold/epoch/1/class/1"),
                ):
                    status, size, _ = api.call("GET", path)
                    plot_rows.append((classes, metrics_bytes, plot_data_bytes, tool_request, peak))
                    rows.append((route, f"classification, {classes:,} classes", status, size))
    finally:
        api.close()
        shutil.rmtree(home, ignore_errors=True)

    print(f"Lambda's proxy output limit: {LIMIT:,} bytes; {time.monotonic() - started:.0f} s in all\n")
    print("| route | case | status | answer (Lambda proxy output) | against 6 MB |")
    print("|---|---|---|---|---|")
    for route, case, status, size in rows:
        print(f"| {route} | {case} | {status} | {mb(size)} | {verdict(status, size)} |")
    if plot_rows:
        print("\nWhat the checkpoint routes read for C classes (the Lambda reads plot_data.json whole):\n")
        print(
            "| classes | metrics.json | plot_data.json | plot tool request (confusion matrix) | json.loads peak of plot_data.json |"
        )
        print("|---|---|---|---|---|")
        for classes, metrics_bytes, plot_data_bytes, tool_request, peak in dict.fromkeys(plot_rows):
            print(
                f"| {classes:,} | {mb(metrics_bytes)} | {mb(plot_data_bytes)} | {mb(tool_request)} | {mb(peak)} |"
            )
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--stand-in":
        rest = sys.argv[2:]
        if rest[:2] == ["-m", "inference.serve"]:
            rest = rest[2:]
        stand_in(rest)
    else:
        sys.exit(main())
