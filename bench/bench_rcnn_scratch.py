"""R-CNNs from scratch at batch 2 and learning_rate 0.005: loss and mean AP per epoch.

Runs the real trainer (`trainer.entry.main` on an /opt/ml tree, as the local platform does)
for Faster R-CNN, FPN and Mask R-CNN with `backbone_pretrained=False` on a synthetic set at
96 px and prints each epoch's mean AP from `checkpoints/epoch-<N>/metrics.json`, with what
model.json says was built (norm, warm-up).

    PYTHONPATH=containers/trainer:. python bench/bench_rcnn_scratch.py [--epochs 6] [--images 48]
        [--size 96] [--backbone resnet50] [--proposals 128] [--small-rpn] [--models faster_rcnn,fpn,mask_rcnn]

``--backbone`` sets Faster R-CNN's and FPN's backbone (Mask R-CNN's is a fixed ResNet-50);
``--small-rpn`` uses the RPN sizes of tests/trainer (fewer anchors and proposals: a run that
fits on a CPU).
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

MODELS = {
    "faster_rcnn": (
        "detection",
        {"algorithm": "faster_rcnn", "backbone": "resnet18", "anchor_sizes": [16, 32, 64]},
    ),
    "fpn": ("detection", {"algorithm": "fpn", "backbone": "resnet50", "anchor_sizes": [16]}),
    "mask_rcnn": (
        "instance_segmentation",
        {"algorithm": "mask_rcnn", "backbone": "resnet50", "anchor_sizes": [16]},
    ),
}


SMALL_RPN = {
    "train_rpn_pre_nms_top_n": 200,
    "train_rpn_post_nms_top_n": 50,
    "eval_rpn_pre_nms_top_n": 100,
    "eval_rpn_post_nms_top_n": 30,
    "num_anchor_samples_per_batch": 64,
    "num_detections_per_image": 20,
}


def run(root: Path, name: str, args) -> dict:
    task, specific = MODELS[name]
    if args.backbone and name != "mask_rcnn":  # Mask R-CNN: a fixed ResNet-50 FPN
        specific = {**specific, "backbone": args.backbone}
    data = synthetic.generate(
        root / "data", task, num_images=args.images, image_size=args.size, num_classes=2
    )
    job = OptMlJob(root, {"job_id": name, "job_name": name, "api": "v1.5", "task": task, "data": DATA_DIR})
    job.link_data(data)
    job.link_checkpoints()
    base, artifacts = job.base, job.artifacts
    hp = {
        "task": task,
        "backbone_pretrained": False,
        "batch_size": 2,
        "learning_rate": args.lr,
        "num_epochs_to_finish": args.epochs,
        "step_lr_sizes": [],
        "num_workers": 0,
        "num_batches_to_display": 5,
        "image_min_side": args.size,
        "image_max_side": args.size,
        "num_proposal_samples_per_batch": args.proposals,
        **(SMALL_RPN if args.small_rpn else {}),
        **specific,
    }
    job.write(hp)  # job.json through contracts.job_config, as the API writes it
    start = time.perf_counter()
    code = job.run()
    wall = time.perf_counter() - start
    rows = []
    for epoch in range(1, args.epochs + 1):
        folder = artifacts / "checkpoints" / f"epoch-{epoch}"
        if (folder / "metrics.json").exists():
            record = json.loads((folder / "metrics.json").read_text())
            rows.append((epoch, record["avg_loss"], record["metrics"]["specific"]["aps"][0]))
    model_json = (
        json.loads((artifacts / "checkpoints" / "epoch-1" / "model.json").read_text()) if rows else {}
    )
    failure = base / "output" / "failure"
    return {
        "exit": code,
        "wall_s": wall,
        "epochs": rows,
        "norm": (model_json.get("architecture") or {}).get("norm"),
        "warmup": (model_json.get("lr_warmup") or {}).get("iterations"),
        "failure": failure.read_text()[:200] if failure.exists() else "",
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--images", type=int, default=48)
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--lr", type=float, default=0.005)
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--backbone", default="", help="faster_rcnn and fpn backbone (default: per model)")
    parser.add_argument("--proposals", type=int, default=128, help="num_proposal_samples_per_batch")
    parser.add_argument("--small-rpn", action="store_true")
    args = parser.parse_args()
    for name in args.models.split(","):
        with tempfile.TemporaryDirectory() as scratch:
            result = run(Path(scratch), name, args)
        backbone = (args.backbone or MODELS[name][1]["backbone"]) if name != "mask_rcnn" else "resnet50"
        print(
            f"\n{name}/{backbone}: exit {result['exit']}, {result['wall_s']:.0f} s, "
            f"norm={result['norm']}, warm-up iterations={result['warmup']} {result['failure']}"
        )
        print("| epoch | avg loss | mean AP |\n|---:|---:|---:|")
        for epoch, loss, ap in result["epochs"]:
            print(f"| {epoch} | {loss:.3f} | {ap:.3f} |")


if __name__ == "__main__":
    main()
