"""Per-image cost of the classification training pipeline: resize on uint8 first (ours) vs
convert to float first (the pipeline before that change), side by side in one run.

    .venv/bin/python bench/bench_transforms.py [--images 300] [--image-size 128] [--resize 224] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from torchvision.transforms import v2

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "containers" / "trainer"))
from trainer.vision import augment, synthetic  # noqa: E402
from trainer.vision.data import VisionDataset  # noqa: E402


def float_first(hp: dict) -> v2.Compose:
    cfg = augment.resolve_aug(hp)
    size = hp["image_resized_width"], hp["image_resized_height"]
    return v2.Compose(
        [
            v2.ToImage(),
            v2.ToDtype(torch.float32, scale=True),
            augment.AugmentPolicy(augment.build_ops(cfg), cfg.strategy),
            augment.ResizeSides(*size),
            v2.ToDtype(torch.float32, scale=True),
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--resize", type=int, default=224)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)  # one DataLoader worker's view
    root = synthetic.generate(
        Path(tempfile.mkdtemp()),
        "classification",
        num_images=args.images,
        image_size=args.image_size,
        num_classes=3,
    )
    hp = {"image_resized_width": args.resize, "image_resized_height": args.resize}
    pipelines = {
        "float first (before)": float_first(hp),
        "uint8 resize first (ours)": augment.build_train_transforms("classification", hp),
    }
    times: dict[str, list[float]] = {name: [] for name in pipelines}
    for _ in range(args.rounds):
        for name, pipeline in pipelines.items():
            dataset = VisionDataset(root, "classification", "train", pipeline)
            start = time.perf_counter()
            for index in range(len(dataset)):
                dataset[index]
            times[name].append((time.perf_counter() - start) / len(dataset) * 1000)
    print(f"{args.images} images of {args.image_size} px resized to {args.resize}, hflip 0.5, one thread\n")
    print("| pipeline | ms/image median [min, max] |\n|---|---:|")
    for name, values in times.items():
        print(f"| {name} | {statistics.median(values):.2f} [{min(values):.2f}, {max(values):.2f}] |")
    before, ours = (statistics.median(v) for v in times.values())
    print(f"\nspeed-up: {before / ours:.2f}x")


if __name__ == "__main__":
    main()
