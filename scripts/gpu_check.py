"""`make gpu-check`: one command that runs every CUDA path of the project and prints one table.

    python3 scripts/gpu_check.py [--device auto|cuda|cpu] [--tiny] [--only PATH ...]
        [--inject-failure PATH ...] [--trainer-image IMAGE] [--json FILE] [--strict]

Paths: classification (the trainer's on-device JPEG decode and augmentation with AMP, samples/s
against the same model's compute limit, data wait), detection and segmentation (R-CNN training
steps), inference (the real server with dynamic batching against a raw forward), devices
(pynvml readings as /api/v1.5.0/devices reports them), docker (the trainer image under
`docker run --gpus all`). It needs only a python3 holding torch and torchvision (the GPU
machine's own: no project venv); defusedxml and waitress, which that machine lacks, travel as
pinned pure-Python wheels in scripts/gpu_checks/wheels and are used only where missing.

Without a CUDA device `--device auto` says so in one line and runs every path on the CPU at
a tiny size (`--device cpu --tiny`, what the suite's test runs). The exit status is 1 when a
path fails (and, with --strict, when a GPU target is missed), 2 when CUDA was asked for and
is not there. Sizes are in scripts/gpu_checks/common.py; the full size takes a few minutes on
one H100.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import os
import platform
import sys
import tempfile
import time
import traceback
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # CPU runs: the server child shares the cores

REPO = Path(__file__).resolve().parents[1]
for _path in (REPO / "containers" / "inference", REPO / "containers" / "trainer", REPO):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))
WHEELS = REPO / "scripts" / "gpu_checks" / "wheels"
PATHS = ("classification", "detection", "segmentation", "inference", "devices", "docker")


def add_missing_wheels() -> list[str]:
    """Puts each bundled pure-Python wheel whose module is not installed on sys.path (a wheel of
    pure Python imports straight from its zip) and returns those wheels."""
    used = []
    for wheel in sorted(WHEELS.glob("*.whl")):
        module = wheel.name.split("-")[0].lower()
        if importlib.util.find_spec(module) is None:
            sys.path.append(str(wheel))
            used.append(str(wheel))
    return used


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="gpu_check", description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("auto", "cuda", "cpu"), default="auto")
    parser.add_argument("--tiny", action="store_true", help="the CPU sizes (implied without CUDA)")
    parser.add_argument("--only", action="append", choices=PATHS, help="run only these paths")
    parser.add_argument(
        "--inject-failure", action="append", default=[], choices=PATHS, help="make this path raise (tests)"
    )
    parser.add_argument("--trainer-image", help="the trainer image for the docker path")
    parser.add_argument("--json", help="also write the rows (with their raw numbers) to this file")
    parser.add_argument("--strict", action="store_true", help="a missed GPU target fails the command too")
    return parser.parse_args(argv)


def choose_device(requested: str):
    """(device, one line saying why) -- or (None, line) when CUDA was asked for and is absent."""
    import torch

    if requested == "cpu":
        return torch.device("cpu"), None
    if torch.cuda.is_available():
        torch.cuda.set_device(0)
        return torch.device("cuda", 0), None
    build = f"CUDA {torch.version.cuda} build" if torch.version.cuda else "a CPU-only build"
    line = f"no CUDA device: torch {torch.__version__} ({build}) sees none"
    if requested == "cuda":
        return None, line
    return torch.device("cpu"), line + "; running every path on the CPU at tiny size"


def run_path(name: str, config, runner):
    from scripts.gpu_checks.common import FAIL, Row

    start = time.monotonic()
    try:
        row = runner()
    except Exception as exc:
        traceback.print_exc(file=sys.stderr)
        message = str(exc).strip().splitlines()[-1] if str(exc).strip() else ""
        row = Row(name, FAIL, note=f"{type(exc).__name__}: {message}"[:300])
    row.numbers["seconds"] = round(time.monotonic() - start, 2)
    print(f"  {row.path}: {row.result} ({row.numbers['seconds']:.1f} s)", file=sys.stderr, flush=True)
    return row


def runners(config) -> dict:
    from scripts.gpu_checks import classification, container, devices, rcnn, serving

    return {
        "classification": lambda: classification.run(config),
        "detection": lambda: rcnn.run(config, "detection"),
        "segmentation": lambda: rcnn.run(config, "instance_segmentation"),
        "inference": lambda: serving.run(config),
        "devices": lambda: devices.run(config),
        "docker": lambda: container.run(config),
    }


def table(rows) -> str:
    headers = ("path", "result", "measured", "target", "note")
    cells = [[r.path, r.result, r.measured or "-", r.target or "-", r.note or "-"] for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(headers)]
    line = "| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |"
    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    body = ["| " + " | ".join(c.ljust(w) for c, w in zip(cell, widths, strict=True)) + " |" for cell in cells]
    return "\n".join([line, rule, *body])


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    wheels = add_missing_wheels()
    try:
        import torch
        import torchvision
    except ImportError as exc:
        print(f"gpu-check needs a python3 that holds torch and torchvision ({sys.executable}: {exc})")
        return 2

    from scripts.gpu_checks import imports
    from scripts.gpu_checks.common import BELOW, FAIL, FULL, TINY, Config

    device, line = choose_device(args.device)
    if line:
        print(line, flush=True)
    if device is None:
        return 2
    tiny = args.tiny or device.type != "cuda"
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "CPU"
    print(
        f"gpu-check on {name} ({device}), {'tiny' if tiny else 'full'} size; python {platform.python_version()}, "
        f"torch {torch.__version__}, torchvision {torchvision.__version__}",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as workdir:
        config = Config(
            device=device,
            sizes=TINY if tiny else FULL,
            workdir=workdir,
            inject_failure=tuple(args.inject_failure),
            trainer_image=args.trainer_image,
            extra_pythonpath=tuple(wheels),
        )
        chosen = [p for p in PATHS if not args.only or p in args.only]
        by_name = runners(config)
        rows = [run_path(p, config, by_name[p]) for p in chosen]
    rows.append(imports.run(wheels, on_gpu_machine=device.type == "cuda"))
    print(table(rows), flush=True)
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {"device": name, "tiny": tiny, "rows": [r.as_dict() for r in rows]}, indent=2, default=str
            )
        )
    failed = [r.path for r in rows if r.result == FAIL or (args.strict and r.result == BELOW)]
    if failed:
        print(f"gpu-check: {len(failed)} path(s) failed: {', '.join(failed)}", flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
