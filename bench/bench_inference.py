"""Inference server overhead: the real server (HTTP, decode, dynamic batching, JSON) against a
plain `model(x)` forward of the same model on the same inputs.

Run: `.venv/bin/python bench/bench_inference.py [--device auto|cpu|cuda] [--algorithm resnet18]
[--image-size 224] [--requests 100] [--concurrency 8] [--max-batch-size 8] [--max-wait-ms 2] [--rounds 3]`.

One classification checkpoint written by the trainer's own `write_checkpoint` (random weights:
speed does not depend on them), `--requests` distinct JPEG images. Measured side by side in
one run, rounds alternating their order:

- batch 1: p50/p99 of (a) `model(x)` on the prepared tensor (device-synchronised), (b) the
  in-process `Predictor.predict` on the JPEG bytes (decode, eval transform, forward, response
  body: the server's work without HTTP), (c) sequential `POST /invocations` to the server
  (started as the local platform starts it, `AIFACTORY_MAX_BATCH_WAIT_MS=0`);
- throughput: (d) `model(x)` on stacked batches of `--concurrency` prepared tensors, against
  (e) `--concurrency` client threads posting to a server with dynamic batching
  (`--max-batch-size`, `--max-wait-ms`); the server's /stats gives the batch sizes it ran.
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

# OpenMP threads that spin after a forward would steal the CPU from the other process on a
# small machine; passive waiting keeps the bench process and the server from fighting.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
REPO = Path(__file__).resolve().parents[1]
PATHS = [str(REPO / "containers" / "trainer"), str(REPO / "containers" / "inference"), str(REPO)]
sys.path[:0] = PATHS

import numpy as np  # noqa: E402
import requests  # noqa: E402
import torch  # noqa: E402
from inference.predict import Predictor  # noqa: E402
from PIL import Image  # noqa: E402

from scripts.gpu_checks.serving import make_checkpoint  # noqa: E402


def make_images(count: int, size: int) -> list[bytes]:
    rng = np.random.default_rng(0)
    images = []
    for _ in range(count):
        array = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(array).save(buffer, format="JPEG", quality=90)
        images.append(buffer.getvalue())
    return images


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values), q))


class Server:
    def __init__(self, model_dir: Path, device: str, max_batch: int, max_wait_ms: int, threads: int):
        with socket_port() as port:
            self.port = port
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("AIFACTORY_")}
        env.update(
            PYTHONPATH=os.pathsep.join(PATHS),
            AIFACTORY_DEVICE=device,
            AIFACTORY_MAX_BATCH_SIZE=str(max_batch),
            AIFACTORY_MAX_BATCH_WAIT_MS=str(max_wait_ms),
            AIFACTORY_SERVER_THREADS=str(threads),
            OMP_WAIT_POLICY=os.environ["OMP_WAIT_POLICY"],
        )
        command = [sys.executable, "-m", "inference.serve", "--model-dir", str(model_dir)]
        command += ["--port", str(self.port), "--host", "127.0.0.1"]
        self.process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(self.process.stderr.read().decode())
            try:
                if requests.get(self.url + "/ping", timeout=2).status_code == 200:
                    return
            except requests.ConnectionError:
                time.sleep(0.2)
        raise RuntimeError("server did not start")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(30)


class socket_port:
    def __enter__(self) -> int:
        import socket

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        return self.sock.getsockname()[1]

    def __exit__(self, *exc) -> None:
        self.sock.close()


HEADERS = {"Content-Type": "image/jpeg", "X-Amzn-SageMaker-Custom-Attributes": "returns_images=false"}


def post(session: requests.Session, url: str, data: bytes) -> None:
    response = session.post(url + "/invocations", data=data, headers=HEADERS, timeout=120)
    response.raise_for_status()


def latency_plain(predictor: Predictor, tensors: list[torch.Tensor]) -> list[float]:
    times = []
    with torch.inference_mode():
        for x in tensors:
            start = time.perf_counter()
            predictor.model(x)
            sync(predictor.device)
            times.append(time.perf_counter() - start)
    return times


def latency_predictor(predictor: Predictor, images: list[bytes]) -> list[float]:
    times = []
    for data in images:
        start = time.perf_counter()
        predictor.predict(data, returns_images=False)
        times.append(time.perf_counter() - start)
    return times


def latency_server(server: Server, images: list[bytes]) -> list[float]:
    session = requests.Session()
    times = []
    for data in images:
        start = time.perf_counter()
        post(session, server.url, data)
        times.append(time.perf_counter() - start)
    return times


def throughput_plain(predictor: Predictor, tensors: list[torch.Tensor], batch: int) -> float:
    stacked = [torch.cat(tensors[i : i + batch]) for i in range(0, len(tensors) - batch + 1, batch)]
    with torch.inference_mode():
        sync(predictor.device)
        start = time.perf_counter()
        for x in stacked:
            predictor.model(x)
        sync(predictor.device)
    return len(stacked) * batch / (time.perf_counter() - start)


def throughput_server(server: Server, images: list[bytes], concurrency: int) -> float:
    local = threading.local()

    def send(data: bytes) -> None:
        if not hasattr(local, "session"):
            local.session = requests.Session()
        post(local.session, server.url, data)

    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(send, images[:concurrency]))  # connections open before the clock starts
        start = time.perf_counter()
        list(pool.map(send, images))
        return len(images) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--algorithm", default="resnet18")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--max-batch-size", type=int, default=8)
    parser.add_argument("--max-wait-ms", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device

    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = make_checkpoint(Path(tmp) / "checkpoints", args.algorithm, args.image_size)
        images = make_images(args.requests, args.image_size)
        predictor = Predictor(checkpoint, device)
        predictor.warm_up()
        tensors = [
            predictor.prepare(Image.open(io.BytesIO(d))).tensor.unsqueeze(0).contiguous().to(predictor.device)
            for d in images
        ]
        threads = max(16, 2 * args.concurrency)
        results: dict[str, list] = {k: [] for k in ("plain", "predictor", "server", "plain_tp", "server_tp")}
        # One server at a time, so an idle server's threads never compete with the measured path.
        server = Server(checkpoint, device, args.max_batch_size, 0, threads)
        try:
            latency_plain(predictor, tensors[:10])
            latency_server(server, images[:10])
            for r in range(args.rounds):
                order = ["plain", "predictor", "server"]
                for name in order if r % 2 == 0 else order[::-1]:
                    if name == "plain":
                        results["plain"] += latency_plain(predictor, tensors)
                    elif name == "predictor":
                        results["predictor"] += latency_predictor(predictor, images)
                    else:
                        results["server"] += latency_server(server, images)
        finally:
            server.stop()
        server = Server(checkpoint, device, args.max_batch_size, args.max_wait_ms, threads)
        try:
            throughput_plain(predictor, tensors, args.concurrency)
            throughput_server(server, images[: 4 * args.concurrency], args.concurrency)
            before = requests.get(server.url + "/stats", timeout=10).json()
            for r in range(args.rounds):
                pair = [
                    ("plain_tp", lambda: throughput_plain(predictor, tensors, args.concurrency)),
                    ("server_tp", lambda: throughput_server(server, images, args.concurrency)),
                ]
                for name, fn in pair if r % 2 == 0 else pair[::-1]:
                    results[name].append(fn())
            after = requests.get(server.url + "/stats", timeout=10).json()
        finally:
            server.stop()

    sizes = {
        int(k): v - before["batch_sizes"].get(k, 0)
        for k, v in after["batch_sizes"].items()
        if v - before["batch_sizes"].get(k, 0) > 0
    }
    mean_batch = sum(k * v for k, v in sizes.items()) / max(1, sum(sizes.values()))
    name = torch.cuda.get_device_name() if device.startswith("cuda") else platform.processor() or "cpu"
    print(
        f"device: {device} ({name}), torch {torch.__version__}, {os.cpu_count()} CPUs; {args.algorithm} at "
        f"{args.image_size} px, {args.requests} JPEG requests x {args.rounds} rounds\n"
    )
    ms = {
        k: (percentile(v, 50) * 1000, percentile(v, 99) * 1000) for k, v in results.items() if k[-3:] != "_tp"
    }
    print("| batch 1 | p50 ms | p99 ms | p50 vs model(x) | p99 vs model(x) |")
    print("|---|---:|---:|---:|---:|")
    labels = {
        "plain": "plain `model(x)` (prepared tensor)",
        "predictor": "in-process `Predictor.predict` (decode + transform + forward + body)",
        "server": "server `POST /invocations` (HTTP, batch 1, wait 0)",
    }
    for key, label in labels.items():
        p50, p99 = ms[key]
        print(
            f"| {label} | {p50:.2f} | {p99:.2f} | {p50 / ms['plain'][0]:.2f}x | {p99 / ms['plain'][1]:.2f}x |"
        )
    plain_tp, server_tp = statistics.median(results["plain_tp"]), statistics.median(results["server_tp"])
    print(f"\n| throughput, concurrency {args.concurrency} | images/s (median of rounds) | vs plain |")
    print("|---|---:|---:|")
    print(f"| plain `model(x)` on stacked batches of {args.concurrency} | {plain_tp:.1f} | 1.00x |")
    print(
        f"| server, dynamic batching (max {args.max_batch_size}, wait {args.max_wait_ms} ms) | {server_tp:.1f} | "
        f"{server_tp / plain_tp:.2f}x |"
    )
    print(
        f"\nserver batch sizes during the measured rounds: {dict(sorted(sizes.items()))} (mean {mean_batch:.2f})"
    )


if __name__ == "__main__":
    main()
