"""Time to result of a small classification job: the real trainer against a plain torchvision loop.

Builds a ~1,800 image, 32 px classification data_dir with the trainer's synthetic generator
(not the tests' fixtures), then runs, each as a fresh process started by this script:

(A) the real trainer as the local platform runs it: `python -m trainer` over an /opt/ml tree
    (AIFACTORY_OPT_ML), the job's artifacts written to a local directory; timed from the
    process start to its exit (imports, data set checks, 6 epochs with heartbeats, loss
    points, per-epoch validation, checkpoints and plots, the best model exported).
(B) a plain loop: the same images decoded into one uint8 tensor in memory, torchvision's
    resnet18 from scratch, the same batch size, SGD settings and epochs, a random
    horizontal flip per sample (the trainer's default augmentation), per-epoch validation
    accuracy; timed the same way, from process start to exit.

With ``--api`` (A) is the same job through the API as a user runs it: `make run`'s local
server (`chalicelib.entrypoints.local_server`, started once before the rounds), timed from
`POST /api/v1.5.0/train` to the monitor's first `finished` (polled every 0.5 s), so the
runner's launch and the status path count too.

Prints the walls, the ratios A/B and the accuracies. Rounds rotate the order (AB, BA, ...;
with --with-direct three ways rotate) so drift hits every way; each round gives a ratio
against that round's plain loop and the median of those ratios is the result. The machine is shared: before every run the script waits (up to
``--max-wait`` seconds) for the 1-minute load average to fall below ``--quiet-load`` and prints
the load averages before and after each run, so a run disturbed by other work shows.

    .venv/bin/python bench/bench_small_job.py [--images 1800] [--epochs 6] [--batch-size 32]
        [--rounds 1] [--workers -1] [--quiet-load 1.5] [--max-wait 900]
        (--workers -1 leaves num_workers to the trainer's default)

    .venv/bin/python bench/bench_small_job.py --api [--rounds 3]   # (A) submit -> finished through the API
    .venv/bin/python bench/bench_small_job.py --api --with-direct --rounds 5   # API, direct and plain each round

    .venv/bin/python bench/bench_small_job.py --profile out.txt   # pyinstrument over one trainer run (.html for HTML)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from contracts import layout  # noqa: E402

TRAINER = REPO / "containers" / "trainer"
SIZE = 32
CLASSES = 4
LR, MOMENTUM, WEIGHT_DECAY = 0.01, 0.9, 0.0005
POLL_SECONDS = 0.5  # how often the --api client asks the monitor


def build_data(root: Path, images: int) -> Path:
    sys.path[:0] = [str(TRAINER), str(REPO)]
    from trainer.vision import synthetic

    return synthetic.generate(root, "classification", num_images=images, image_size=SIZE, num_classes=CLASSES)


def opt_ml_tree(root: Path, data: Path, args) -> Path:
    """The tests' /opt/ml layout (tests/trainer/opt_ml.py), job.json through contracts.job_config."""
    sys.path[:0] = [str(TRAINER), str(REPO)]
    from tests.trainer.opt_ml import OptMlJob

    job = OptMlJob(
        root,
        {
            "job_id": "small-job",
            "job_name": "small-job",
            "api": "v1.5",
            "task": "classification",
            "data": {"type": "data_dir", "channel": "training"},
        },
    )
    job.link_data(data)
    job.link_checkpoints()
    hp = {
        "task": "classification",
        "algorithm": "resnet18",
        "pretrained": False,
        "batch_size": args.batch_size,
        "learning_rate": LR,
        "momentum": MOMENTUM,
        "weight_decay": WEIGHT_DECAY,
        "num_epochs_to_finish": args.epochs,
        "step_lr_sizes": [],
        "num_epochs_to_validate": 1,
        "image_resized_width": SIZE,
        "image_resized_height": SIZE,
        "visible_devices": [],
    }
    if args.workers >= 0:
        hp["num_workers"] = args.workers
    job.write(hp)
    return job.base


def wait_for_quiet(limit: float, max_wait: float) -> float:
    """Waits until the 1-minute load average is below ``limit`` (at most ``max_wait`` s); returns it."""
    deadline = time.monotonic() + max_wait
    while os.getloadavg()[0] >= limit and time.monotonic() < deadline:
        time.sleep(5)
    return os.getloadavg()[0]


def run_trainer(data: Path, args) -> tuple[float, float]:
    root = Path(tempfile.mkdtemp(prefix="small-job-"))
    base = opt_ml_tree(root, data, args)
    env = {**os.environ, "AIFACTORY_OPT_ML": str(base), "PYTHONPATH": f"{TRAINER}{os.pathsep}{REPO}"}
    command = [sys.executable, "-m", "trainer"]
    if args.profile:
        command = [
            sys.executable,
            "-m",
            "pyinstrument",
            "-r",
            "html",
            "-o",
            str(args.profile),
            "-m",
            "trainer",
        ]
    start = time.perf_counter()
    proc = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    exited = time.time()
    try:
        if proc.returncode != 0:
            raise SystemExit(f"trainer failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
        # the trainer's last write is its `finished` heartbeat: what follows is interpreter exit
        tail = exited - (root / "artifacts" / layout.PROGRESS).stat().st_mtime
        print(f"  trainer process exit after its last write: {tail:.2f} s", flush=True)
        result = json.loads((root / "artifacts" / "result.json").read_text())
        return wall, float(result["metrics"]["overall"]["accuracy"])
    finally:
        shutil.rmtree(root, ignore_errors=True)  # six checkpoints: about 0.6 GB a run


def api_form(data: Path, args) -> dict[str, str]:
    """The v1.5 `/train` form of the same job (the API's literal syntax)."""
    form = {
        "task": "classification",
        "algorithm": "resnet18",
        "pretrained": "False",
        "data_dir": str(data),
        "batch_size": str(args.batch_size),
        "learning_rate": str(LR),
        "momentum": str(MOMENTUM),
        "weight_decay": str(WEIGHT_DECAY),
        "num_epochs_to_finish": str(args.epochs),
        "step_lr_sizes": "[]",
        "num_epochs_to_validate": "1",
        "image_resized_width": str(SIZE),
        "image_resized_height": str(SIZE),
        "visible_devices": "[]",
    }
    if args.workers >= 0:
        form["num_workers"] = str(args.workers)
    return form


def run_api(data: Path, args, server) -> tuple[float, float]:
    start = time.perf_counter()
    status, body = server.call("POST", "/api/v1.5.0/train", form=api_form(data, args))
    if status != 200:
        raise SystemExit(f"train refused: {status} {body}")
    job = body["job_id"]
    while True:
        status, body = server.call("GET", f"/api/v1.5.0/train/{job}")
        if body.get("status") == "finished":
            break
        if body.get("status") in ("exception", "stopped"):
            raise SystemExit(f"job {job} ended {body['status']}: {body.get('exception')}")
        time.sleep(POLL_SECONDS)
    wall = time.perf_counter() - start
    _, listed = server.call("GET", f"/api/v1.5.0/train/{job}/checkpoints")
    return wall, max(float(c["accuracy"]) for c in listed["checkpoints"])


def run_plain(data: Path, args) -> tuple[float, float]:
    start = time.perf_counter()
    cmd = [sys.executable, __file__, "--plain", str(data), "--epochs", str(args.epochs)]
    proc = subprocess.run(
        cmd + ["--batch-size", str(args.batch_size)], capture_output=True, text=True, check=False
    )
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"plain loop failed:\n{proc.stderr[-3000:]}")
    return wall, float(proc.stdout.strip().splitlines()[-1])


def plain_loop(data: Path, epochs: int, batch_size: int) -> float:
    """torchvision's classification reference loop, everything in memory; prints the last accuracy."""
    import numpy as np
    import torch
    import torchvision
    from PIL import Image

    meta = json.loads((data / "meta.json").read_text())

    def load(split: str) -> tuple[torch.Tensor, torch.Tensor]:
        names = (data / "splits" / f"{split}.txt").read_text().split()
        images, labels = [], []
        for name in names:
            with Image.open(data / "images" / name) as img:
                images.append(np.asarray(img.convert("RGB")))
            category = (data / "annotations" / f"{Path(name).stem}.xml").read_text()
            labels.append(meta[category.split("<category>")[1].split("</category>")[0]])
        return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous(), torch.tensor(labels)

    train_x, train_y = load("train")
    val_x, val_y = load("val")
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    model = torchvision.models.resnet18(num_classes=len(meta))
    optimizer = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY)
    accuracy = 0.0
    for _ in range(epochs):
        model.train()
        order = torch.randperm(len(train_x))
        for i in range(0, len(order), batch_size):
            idx = order[i : i + batch_size]
            x = train_x[idx]
            flip = torch.rand(len(idx)) < 0.5
            x = torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)
            x = (x.float() / 255 - mean) / std
            loss = torch.nn.functional.cross_entropy(model(x), train_y[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        model.eval()
        correct = 0
        with torch.inference_mode():
            for i in range(0, len(val_x), batch_size):
                x = (val_x[i : i + batch_size].float() / 255 - mean) / std
                correct += int((model(x).argmax(1) == val_y[i : i + batch_size]).sum())
        accuracy = correct / len(val_x)
    return accuracy


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=1800)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--workers", type=int, default=-1)
    parser.add_argument("--quiet-load", type=float, default=1.5)
    parser.add_argument("--max-wait", type=float, default=900.0)
    parser.add_argument("--profile", type=Path, help="pyinstrument HTML report of one trainer run")
    parser.add_argument("--api", action="store_true", help="(A) through the local API: submit -> finished")
    parser.add_argument(
        "--with-direct", action="store_true", help="with --api: also `python -m trainer` in every round"
    )
    parser.add_argument("--plain", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.plain:
        print(plain_loop(args.plain, args.epochs, args.batch_size))
        return
    with tempfile.TemporaryDirectory(prefix="small-job-data-") as scratch:
        measure(build_data(Path(scratch) / "data", args.images), args)


def measure(data: Path, args) -> None:
    if args.profile:
        wall, acc = run_trainer(data, args)
        print(f"profiled trainer run: {wall:.1f} s, accuracy {acc:.3f}; report in {args.profile}")
        return
    with contextlib.ExitStack() as stack:
        server = stack.enter_context(api_server(data.parent)) if args.api else None
        rounds(data, args, server)


def api_server(root: Path):
    sys.path.insert(0, str(REPO))
    from tests.servers import ApiServer  # the tests' loopback launcher of `make run`'s server

    # `make run`'s sweep interval (the tests' launcher sweeps every 0.5 s to keep tests short)
    return ApiServer(
        root / "home", extra_env={"AIFACTORY_MAX_CONCURRENT_JOBS": "1"}, args=["--sweep-interval", "2.0"]
    )


def rounds(data: Path, args, server) -> None:
    """Runs every way once a round, the order rotated each round; ratios are per round against
    that round's plain loop, and the result is the median of them."""
    ways = (["api"] if server is not None else []) + (
        ["direct"] if server is None or args.with_direct else []
    )
    ways.append("plain")
    walls: dict[str, list[float]] = {w: [] for w in ways}
    accuracies: dict[str, list[float]] = {w: [] for w in ways}
    for r in range(args.rounds):
        for way in ways[r % len(ways) :] + ways[: r % len(ways)]:
            load_before = wait_for_quiet(args.quiet_load, args.max_wait)
            if way == "plain":
                wall, acc = run_plain(data, args)
            elif way == "api":
                wall, acc = run_api(data, args, server)
            else:
                wall, acc = run_trainer(data, args)
            walls[way].append(wall)
            accuracies[way].append(acc)
            print(
                f"round {r + 1} {way}: {wall:.1f} s, accuracy {acc:.3f}, "
                f"load {load_before:.2f} -> {os.getloadavg()[0]:.2f}",
                flush=True,
            )
        print(
            f"round {r + 1} ratios: "
            + ", ".join(f"{w} {walls[w][-1] / walls['plain'][-1]:.2f}x" for w in ways if w != "plain"),
            flush=True,
        )
    print(
        f"\n{args.images} images, {SIZE} px, resnet18, batch {args.batch_size}, {args.epochs} epochs, "
        f"{os.cpu_count()} CPUs, torch threads {__import__('torch').get_num_threads()}"
    )
    names = {
        "api": "through the API (submit -> finished)",
        "direct": "python -m trainer",
        "plain": "plain loop (in memory)",
    }
    for way in ways:
        print(
            f"{names[way]}: median {statistics.median(walls[way]):.1f} s, "
            f"accuracy {min(accuracies[way]):.3f}..{max(accuracies[way]):.3f}"
        )
    for way in ways[:-1]:
        ratios = [a / b for a, b in zip(walls[way], walls["plain"], strict=True)]
        print(
            f"{way} / plain per round: {', '.join(f'{x:.2f}x' for x in ratios)}; "
            f"median {statistics.median(ratios):.2f}x"
        )


if __name__ == "__main__":
    main()
