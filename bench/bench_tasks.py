"""Samples/s of the real trainer (`trainer.entry.main`) per task on this machine's device.

Lays out a SageMaker `/opt/ml` tree per task over a synthetic data set, runs one job each
(classification, detection, instance segmentation) from scratch, and prints the heartbeat's
throughput and the last checkpoint's headline metric.

    PYTHONPATH=containers/trainer:. python bench/bench_tasks.py [--image-size 128] [--images 256] [--epochs 2]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from trainer.vision import synthetic

from tests.trainer.opt_ml import OptMlJob

DATA_DIR = {"type": "data_dir", "channel": "training"}

TASKS = {
    "classification": {"algorithm": "resnet50", "pretrained": False, "batch_size": 32},
    "detection": {
        "algorithm": "fpn",
        "backbone": "resnet50",
        "backbone_pretrained": False,
        "batch_size": 8,
        "anchor_sizes": [32],
    },
    "instance_segmentation": {
        "algorithm": "mask_rcnn",
        "backbone_pretrained": False,
        "batch_size": 8,
        "learning_rate": 0.001,
    },
}


def run_task(root: Path, task: str, args) -> dict:
    size = args.image_size
    data = synthetic.generate(root / "data", task, num_images=args.images, image_size=size, num_classes=3)
    job = OptMlJob(root, {"job_id": task, "job_name": task, "api": "v1.5", "task": task, "data": DATA_DIR})
    job.link_data(data)
    job.link_checkpoints()
    base, artifacts = job.base, job.artifacts
    hp = {
        "task": task,
        "num_epochs_to_finish": args.epochs,
        "num_workers": args.workers,
        "learning_rate": 0.005,
        "num_batches_to_display": 5,
        "image_resized_width": size if task == "classification" else -1,
        "image_resized_height": size if task == "classification" else -1,
        "image_min_side": size,
        "image_max_side": size,
        **TASKS[task],
    }  # per-task values (e.g. Mask R-CNN's lower rate) win
    job.write(hp)  # job.json through contracts.job_config, as the API writes it
    start = time.perf_counter()
    code = job.run()
    wall = time.perf_counter() - start
    progress = json.loads((artifacts / "progress.json").read_text())
    failure = base / "output" / "failure"
    metrics = {}
    last = artifacts / "checkpoints" / f"epoch-{args.epochs}" / "metrics.json"
    if last.exists():
        specific = json.loads(last.read_text())["metrics"]
        metrics = specific["overall"].get("accuracy", specific["specific"].get("aps", [None])[0])
    return {
        "task": task,
        "exit": code,
        "status": progress["status"],
        "samples_per_sec": progress["samples_per_sec"],
        "wall_s": wall,
        "headline": metrics,
        "device": (progress.get("devices") or [{}])[0].get("name", "cpu"),
        "failure": failure.read_text()[:300] if failure.exists() else "",
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--tasks", default=",".join(TASKS))
    args = parser.parse_args()
    rows = []
    for task in args.tasks.split(","):
        with tempfile.TemporaryDirectory() as scratch:
            rows.append(run_task(Path(scratch), task, args))
    print("\n| task | model | device | status | samples/s | wall s | accuracy / mean AP |")
    print("|---|---|---|---|---:|---:|---:|")
    for row in rows:
        model = TASKS[row["task"]]["algorithm"] + (
            "/" + TASKS[row["task"]].get("backbone", "resnet50") if row["task"] != "classification" else ""
        )
        print(
            f"| {row['task']} | {model} | {row['device']} | {row['status']} | {row['samples_per_sec']:.1f} | "
            f"{row['wall_s']:.1f} | {row['headline']} |"
        )
        if row["failure"]:
            print(f"  failure: {row['failure']}")


if __name__ == "__main__":
    main()
