"""CPU cost per image of the classification input pipeline, before and after the device-input
change, side by side in one run (rounds alternate the order).

Each pipeline turns the train split into the batches the training step takes (float32, stacked),
from the files, on one thread (one DataLoader worker's view):

- ``before``: the worker pipeline before this change: PIL decode, resize on uint8, float,
  augment in float, float batch.
- ``workers, uint8``: today's CPU path: PIL decode, resize and augment on uint8, uint8 batch,
  one float conversion per batch (on the device in a GPU job).
- ``device path on CPU``: today's CUDA path run on the CPU: the workers read the files, one
  batched ``decode_jpeg``, augment on uint8, uint8 batch, float conversion.
- ``device path: worker share``: what is left for the DataLoader workers on a GPU machine
  (read the file, collate the bytes); the rest runs on the device.
- ``cache: decoded`` / ``cache: resized``: an epoch after the first of the CPU path with the
  in-memory cache (``VisionDataset.enable_cache``) holding the decoded images (resized and
  augmented every epoch) or the images already resized to the model's size (augmented every
  epoch); the cache's size is printed too.

    .venv/bin/python bench/bench_transforms.py [--images 300] [--image-size 128] [--resize 224]
        [--batch-size 32] [--rounds 3]
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
from trainer.vision import augment, device_input, engine, synthetic
from trainer.vision.data import VisionDataset, classification_collate

CPU = torch.device("cpu")


def before_pipeline(hp: dict) -> v2.Compose:
    """build_train_transforms as it was before the change: float from the first resize on."""
    cfg = augment.resolve_aug(hp)
    sizing = [augment.ResizeSides(hp["image_resized_width"], hp["image_resized_height"])]
    return v2.Compose(
        [
            v2.ToImage(),
            *sizing,
            v2.ToDtype(torch.float32, scale=True),
            augment.AugmentPolicy(augment.build_ops(cfg), cfg.strategy),
            *sizing,
            v2.ToDtype(torch.float32, scale=True),
        ]
    )


def worker_batches(dataset, batch_size):
    for start in range(0, len(dataset) - batch_size + 1, batch_size):  # full batches only
        images, labels = classification_collate([dataset[i] for i in range(start, start + batch_size)])
        yield engine.to_float(images, CPU), labels


def encoded_batches(view, batch_size):
    for start in range(0, len(view) - batch_size + 1, batch_size):
        yield device_input.encoded_collate([view[i] for i in range(start, start + batch_size)])


def device_batches(view, decode, batch_size):
    for items, labels, files in encoded_batches(view, batch_size):
        yield engine.to_float(decode(items, files), CPU), labels


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--resize", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="bench-transforms-") as scratch:
        measure(args, Path(scratch))


def measure(args, scratch: Path) -> None:
    root = synthetic.generate(
        scratch,
        "classification",
        num_images=args.images,
        image_size=args.image_size,
        num_classes=3,
    )
    hp = {"image_resized_width": args.resize, "image_resized_height": args.resize}
    uint8_pipeline = augment.build_train_transforms("classification", hp, as_float=False)
    before = VisionDataset(root, "classification", "train", before_pipeline(hp))
    workers = VisionDataset(root, "classification", "train", uint8_pipeline)
    view = device_input.EncodedView(VisionDataset(root, "classification", "train", uint8_pipeline))
    cached = {}
    for resized in (False, True):
        dataset = VisionDataset(root, "classification", "train", uint8_pipeline)
        assert dataset.enable_cache(2**34, shared=False, resized=resized)
        for _ in worker_batches(dataset, args.batch_size):  # the first epoch fills the cache
            pass
        cached[resized] = dataset
    decode = device_input.DeviceDecode(uint8_pipeline, CPU)
    bs = args.batch_size
    pipelines = {
        "before (float augment)": lambda: worker_batches(before, bs),
        "workers, uint8 to the batch": lambda: worker_batches(workers, bs),
        "device path on CPU (all of it)": lambda: device_batches(view, decode, bs),
        "device path: worker share": lambda: encoded_batches(view, bs),
        "cache: decoded (an epoch after the first)": lambda: worker_batches(cached[False], bs),
        "cache: resized (an epoch after the first)": lambda: worker_batches(cached[True], bs),
    }
    count = len(before) - len(before) % bs
    times: dict[str, list[float]] = {name: [] for name in pipelines}
    for r in range(args.rounds):
        names = list(pipelines) if r % 2 == 0 else list(reversed(pipelines))
        for name in names:
            start = time.perf_counter()
            for _ in pipelines[name]():
                pass
            times[name].append((time.perf_counter() - start) / count * 1000)
    print(
        f"{len(before)} training images of {args.image_size} px (JPEG) resized to {args.resize}, hflip 0.5, "
        f"batch {bs}, one thread, {args.rounds} rounds\n"
    )
    print("| pipeline | ms/image median [min, max] | before ÷ this |\n|---|---:|---:|")
    base = statistics.median(times["before (float augment)"])
    for name, values in times.items():
        median = statistics.median(values)
        print(f"| {name} | {median:.3f} [{min(values):.3f}, {max(values):.3f}] | {base / median:.2f}x |")
    for resized, dataset in cached.items():
        size = dataset._cache[0].numel() / 2**20
        print(f"\ncache {'resized' if resized else 'decoded'}: {size:.1f} MiB for {len(dataset)} images")


if __name__ == "__main__":
    main()
