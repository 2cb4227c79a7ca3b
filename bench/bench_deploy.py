"""Deploy -> first successful infer on the local platform, in seconds.

Run: `.venv/bin/python bench/bench_deploy.py [--rounds 3] [--algorithm resnet18] [--image-size 224]`.

One classification checkpoint written by the trainer's own `write_checkpoint` (random
weights: start-up does not depend on them), deployed through the local HostingPlatform
exactly as `POST /deploy` does, then polled with real infer requests until one answers.
Prints the median and each round: (a) deploy call, (b) until InService (the server's
`/ping`), (c) until the first infer answered, all from the deploy call.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "containers" / "trainer"), str(REPO / "containers" / "inference"), str(REPO)]

from bench.bench_inference import make_checkpoint  # noqa: E402
from chalicelib.adapters.local.hosting_platform import LocalHostingPlatform  # noqa: E402
from chalicelib.errors import Unavailable  # noqa: E402
from chalicelib.ports import IN_SERVICE, Deployment  # noqa: E402


def one_round(home: Path, checkpoint: Path, image: bytes, name: str) -> tuple[float, float, float]:
    hosting = LocalHostingPlatform(home)
    body = json.dumps({"base64_image": base64.b64encode(image).decode(), "returns_images": False}).encode()
    start = time.perf_counter()
    hosting.deploy(Deployment(name, "bench", 1, -1, "classification", str(checkpoint)))
    deployed = time.perf_counter() - start
    in_service = None
    try:
        while True:
            if in_service is None and hosting.describe(name).status == IN_SERVICE:
                in_service = time.perf_counter() - start
            try:
                status, _ = hosting.invoke(name, body, "application/json")
                if status == 200:
                    return deployed, in_service or time.perf_counter() - start, time.perf_counter() - start
            except Unavailable:
                pass
            time.sleep(0.05)
    finally:
        hosting.undeploy(name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--algorithm", default="resnet18")
    parser.add_argument("--image-size", type=int, default=224)
    args = parser.parse_args()
    from PIL import Image

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        checkpoint = make_checkpoint(root / "ckpt", args.algorithm, args.image_size)
        buffer = io.BytesIO()
        Image.new("RGB", (args.image_size, args.image_size), (120, 30, 200)).save(buffer, format="JPEG")
        rounds = [
            one_round(root / "home", checkpoint, buffer.getvalue(), f"bench-e1-cpu-{i}")
            for i in range(args.rounds)
        ]
    print(f"## Deploy -> first infer, local platform, {args.algorithm} at {args.image_size} px, CPU\n")
    print("| round | deploy call (s) | InService (s) | first infer answered (s) |")
    print("|---|---:|---:|---:|")
    for i, (a, b, c) in enumerate(rounds, 1):
        print(f"| {i} | {a:.3f} | {b:.2f} | {c:.2f} |")
    medians = [statistics.median(r[k] for r in rounds) for k in range(3)]
    print(f"| median | {medians[0]:.3f} | {medians[1]:.2f} | {medians[2]:.2f} |")


if __name__ == "__main__":
    main()
