"""The inference server (`python -m inference.serve`: waitress, dynamic batching) against the
bare model.

One classification checkpoint written by the trainer's `write_checkpoint` (random weights:
speed does not depend on them) and distinct JPEGs. The server runs as SageMaker runs it, a
child process on a free loopback port, with `AIFACTORY_MAX_BATCH_WAIT_MS=0`: a lone request
never waits for company, and requests that queue while a batch runs go together (the
batcher's rule), so one server answers both measurements:

- latency: sequential `POST /invocations` (HTTP, JPEG decode, eval transform, batched
  forward, JSON body), p50/p99, against `model(x)` at batch 1 on the same prepared input
  (host-to-device copy and forward, synchronised);
- throughput: `concurrency` client threads, against `model(x)` on stacked batches of that
  size; the server's `GET /stats` tells the batch sizes it ran.
"""

from __future__ import annotations

import http.client
import io
import json
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch
from PIL import Image

from scripts.gpu_checks.common import (
    BELOW,
    OK,
    Config,
    Row,
    free_port,
    maybe_fail,
    percentile,
    release,
    sync,
)

MAX_P50_RATIO = 1.10
MIN_THROUGHPUT_RATIO = 0.9
HEADERS = {"Content-Type": "image/jpeg", "X-Amzn-SageMaker-Custom-Attributes": "returns_images=false"}
REPO = Path(__file__).resolve().parents[2]
WARM_UP = 20  # calls before the clock starts, on each side (the CPU's took ~20 to settle)


def make_checkpoint(root: Path, algorithm: str, size: int) -> Path:
    from trainer.vision import checkpoint as ckpt
    from trainer.vision.models import build_model, describe_model

    hp = {
        "algorithm": algorithm,
        "pretrained": False,
        "image_resized_width": size,
        "image_resized_height": size,
        "eval_center_crop_ratio": 1,
    }
    names = ["cat", "dog", "bird"]
    model = build_model("classification", hp, len(names))
    files = {
        ckpt.MODEL_JSON: ckpt.json_bytes(describe_model("classification", hp, names)),
        ckpt.METRICS: ckpt.json_bytes({"epoch": 1, "avg_loss": 0.0, "metrics": {}}),
    }
    return ckpt.write_checkpoint(root, 1, files, model, None)


def make_jpegs(count: int, size: int) -> list[bytes]:
    generator = torch.Generator().manual_seed(0)
    images = []
    for _ in range(count):
        pixels = torch.randint(0, 256, (size, size, 3), dtype=torch.uint8, generator=generator)
        buffer = io.BytesIO()
        Image.fromarray(pixels.numpy()).save(buffer, format="JPEG", quality=90)
        images.append(buffer.getvalue())
    return images


class Server:
    """`python -m inference.serve` on a free loopback port, stopped on exit."""

    def __init__(self, config: Config, model_dir: Path, max_batch: int):
        self.port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("AIFACTORY_")}
        paths = [str(REPO / "containers" / "trainer"), str(REPO / "containers" / "inference"), str(REPO)]
        env.update(
            PYTHONPATH=os.pathsep.join([*paths, *config.extra_pythonpath]),
            AIFACTORY_DEVICE=str(config.device),
            AIFACTORY_MAX_BATCH_SIZE=str(max_batch),
            AIFACTORY_MAX_BATCH_WAIT_MS="0",
            AIFACTORY_SERVER_THREADS=str(max(4, 2 * max_batch)),
        )
        command = [sys.executable, "-m", "inference.serve", "--model-dir", str(model_dir)]
        command += ["--host", "127.0.0.1", "--port", str(self.port)]
        self.log = Path(model_dir).parent / "server.log"
        self._log = open(self.log, "wb")  # closed in __exit__
        self.process = subprocess.Popen(command, env=env, stdout=self._log, stderr=subprocess.STDOUT)

    def __enter__(self) -> Server:
        try:
            self._wait_ready(deadline=time.monotonic() + 300)
        except BaseException:
            self.__exit__()  # a with-block whose __enter__ raises never calls __exit__
            raise
        return self

    def _wait_ready(self, deadline: float) -> None:
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited with {self.process.returncode}: {self._tail()}")
            try:
                if self.get("/ping")[0] == 200:
                    return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"the server did not answer /ping within 300 s: {self._tail()}")

    def __exit__(self, *exc) -> None:
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(30)
        self._log.close()

    def _tail(self) -> str:
        self._log.flush()
        return self.log.read_text(errors="replace")[-2000:]

    def connection(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)

    def get(self, path: str) -> tuple[int, dict]:
        conn = self.connection()
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            return response.status, json.loads(response.read() or b"{}")
        finally:
            conn.close()


def invoke(conn: http.client.HTTPConnection, data: bytes) -> dict:
    conn.request("POST", "/invocations", body=data, headers=HEADERS)
    response = conn.getresponse()
    body = json.loads(response.read())
    if response.status != 200 or body.get("result") == "Error":
        raise RuntimeError(f"/invocations answered {response.status}: {body}")
    return body


def raw_latency(model, tensors: list[torch.Tensor], device: torch.device) -> list[float]:
    times = []
    batches = [torch.stack([x]) for x in tensors]  # contiguous, as the server's Predictor.forward stacks them
    with torch.inference_mode():
        for x in batches:
            start = time.perf_counter()
            model(x.to(device, non_blocking=True))
            sync(device)
            times.append(time.perf_counter() - start)
    return times


def raw_throughput(model, tensors: list[torch.Tensor], batch: int, device: torch.device) -> float:
    stacked = [torch.stack(tensors[i : i + batch]) for i in range(0, len(tensors) - batch + 1, batch)]
    with torch.inference_mode():
        model(stacked[0].to(device))  # this batch size's first call (cuDNN picks its kernels)
        sync(device)
        start = time.perf_counter()
        for x in stacked:
            model(x.to(device, non_blocking=True))
        sync(device)
    return len(stacked) * batch / (time.perf_counter() - start)


def server_latency(server: Server, images: list[bytes]) -> list[float]:
    conn = server.connection()
    times = []
    try:
        for data in images:
            start = time.perf_counter()
            invoke(conn, data)
            times.append(time.perf_counter() - start)
    finally:
        conn.close()
    return times


def server_throughput(server: Server, images: list[bytes], concurrency: int) -> float:
    local = threading.local()
    opened: list[http.client.HTTPConnection] = []

    def send(data: bytes) -> None:
        if not hasattr(local, "conn"):
            local.conn = server.connection()
            opened.append(local.conn)
        invoke(local.conn, data)

    try:
        with ThreadPoolExecutor(concurrency) as pool:
            list(pool.map(send, images[:concurrency]))  # connections open before the clock starts
            start = time.perf_counter()
            list(pool.map(send, images))
            return len(images) / (time.perf_counter() - start)
    finally:
        for conn in opened:
            conn.close()


def run(config: Config) -> Row:
    maybe_fail(config, "inference")
    from inference.decode import open_image
    from inference.predict import Predictor

    sizes, device = config.sizes, config.device
    model_dir = make_checkpoint(Path(config.workdir) / "inference", sizes.inf_algorithm, sizes.inf_image_size)
    images = make_jpegs(max(sizes.inf_latency_requests, sizes.inf_throughput_requests), sizes.inf_image_size)
    latency_images = images[: sizes.inf_latency_requests]
    predictor = Predictor(model_dir, device)
    predictor.warm_up()
    tensors = [predictor.prepare(open_image(data, 40_000_000)).tensor for data in images]
    raw_latency(predictor.model, tensors[:WARM_UP], device)  # batch 1's first calls run slower
    raw_times = raw_latency(predictor.model, tensors[: sizes.inf_latency_requests], device)
    raw_rate = raw_throughput(predictor.model, tensors, sizes.inf_concurrency, device)
    with Server(config, model_dir, sizes.inf_concurrency) as server:
        server_latency(server, latency_images[:WARM_UP])  # and so do the server's
        served_times = server_latency(server, latency_images)
        before = server.get("/stats")[1]
        served_rate = server_throughput(
            server, images[: sizes.inf_throughput_requests], sizes.inf_concurrency
        )
        after = server.get("/stats")[1]
    del predictor
    release(device)

    raw_p50, raw_p99 = percentile(raw_times, 50) * 1e3, percentile(raw_times, 99) * 1e3
    p50, p99 = percentile(served_times, 50) * 1e3, percentile(served_times, 99) * 1e3
    batches = after["batches"] - before["batches"]
    mean_batch = (after["requests"] - before["requests"]) / batches if batches else 0.0
    numbers = {
        "p50_ms": p50,
        "p99_ms": p99,
        "raw_p50_ms": raw_p50,
        "raw_p99_ms": raw_p99,
        "images_per_s": served_rate,
        "raw_images_per_s": raw_rate,
        "concurrency": sizes.inf_concurrency,
        "mean_server_batch": mean_batch,
        "batch_sizes": after["batch_sizes"],
    }
    p50_ratio, rate_ratio = p50 / raw_p50, served_rate / raw_rate
    measured = (
        f"p50 {p50:.2f} / p99 {p99:.2f} ms vs raw {raw_p50:.2f} / {raw_p99:.2f} ms ({p50_ratio:.2f}x); "
        f"{served_rate:.1f} vs {raw_rate:.1f} img/s ({rate_ratio:.2f}x)"
    )
    note = (
        f"{sizes.inf_algorithm} {sizes.inf_image_size}px on {device.type}, waitress + dynamic batching "
        f"(max {sizes.inf_concurrency}, wait 0 ms, mean batch {mean_batch:.1f})"
    )
    if not config.cuda:
        return Row("inference", OK, measured, "(GPU only)", note, numbers)
    met = p50_ratio <= MAX_P50_RATIO and rate_ratio >= MIN_THROUGHPUT_RATIO
    target = f"p50 <= {MAX_P50_RATIO}x raw b1, >= {MIN_THROUGHPUT_RATIO}x raw batched"
    return Row("inference", OK if met else BELOW, measured, target, note, numbers)
