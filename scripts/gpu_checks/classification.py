"""Classification through the trainer's own input pipeline, against the model's compute limit.

The pipeline is the one a job runs: a data_dir written by `trainer.vision.synthetic`, the
trainer's `VisionDataset`s, `trainer.vision.main._loaders` (DataLoader workers that read JPEG
bytes, `device_input.DeviceDecode` decoding and augmenting on the device), the classifier from
`models.build_model` in channels_last, AMP from `engine.amp_setup`, epochs of
`engine.train_one_epoch`. The compute limit is the same model and optimizer stepping through
the same loop on batches that already sit on the device as float tensors: what the model costs
with no input pipeline at all. Rounds alternate pipeline and limit epochs so drift hits both.

Data wait is the host's time blocked on the DataLoader workers (the `next()` on the loader
inside `DeviceLoader`), as a share of the epoch's wall time (which ends with a device sync).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import torch

from scripts.gpu_checks.common import BELOW, OK, Config, Row, maybe_fail, release

TASK = "classification"
DECODE_ENV = "AIFACTORY_DEVICE_DECODE"  # trainer.vision.device_input.DECODE_ENV (imported lazily)
NUM_CLASSES = 4
MIN_RATIO = 0.9  # samples/s against the compute limit (issue 19's target on a GPU)
MAX_WAIT = 0.10  # data wait as a share of step time
AUGMENT = {  # the spec's augmentations a job would typically turn on, all on the device
    "aug_hflip_prob": 0.5,
    "aug_crop_prob_and_min_max": (0.5, (0.5, 1.0)),
    "aug_brightness_prob_and_min_max": (0.5, (-0.2, 0.2)),
}


class TimedLoader:
    """Wraps the DataLoader inside `DeviceLoader`, adding up the time spent waiting in `next()`."""

    def __init__(self, loader):
        self.loader = loader
        self.waited = 0.0

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        iterator = iter(self.loader)
        while True:
            start = time.perf_counter()
            try:
                item = next(iterator)
            except StopIteration:
                return
            finally:
                self.waited += time.perf_counter() - start
            yield item


def run(config: Config) -> Row:
    maybe_fail(config, TASK)
    # decode_on_device() picks the device path for classification on CUDA; forcing it makes the
    # CPU run take that same path (DeviceDecode on CPU tensors) instead of the worker pipeline.
    previous = os.environ.get(DECODE_ENV)
    os.environ[DECODE_ENV] = "1"
    try:
        return _run(config)
    finally:
        if previous is None:
            os.environ.pop(DECODE_ENV, None)
        else:
            os.environ[DECODE_ENV] = previous


def _run(config: Config) -> Row:
    from trainer.vision import data as vision_data
    from trainer.vision import device_input, engine, synthetic
    from trainer.vision import main as vision_main
    from trainer.vision.models import build_model

    sizes, device = config.sizes, config.device
    root = synthetic.generate(
        Path(config.workdir) / TASK,
        TASK,
        num_images=sizes.cls_images,
        image_size=sizes.cls_image_size,
        num_classes=NUM_CLASSES,
        splits=(0.9, 0.1),
    )
    hp = vision_main.resolve_hyperparameters(
        TASK,
        {
            "algorithm": sizes.cls_algorithm,
            "pretrained": False,
            "batch_size": sizes.cls_batch,
            "image_resized_width": sizes.cls_input,
            "image_resized_height": sizes.cls_input,
            **AUGMENT,
        },
    )
    train_ds, val_ds = vision_data.load_data(root, TASK, hp, as_float=False)
    model = build_model(TASK, hp, len(train_ds.class_names)).to(device)
    model = device_input.prepare_model(model, TASK, device)
    optimizer = engine.build_optimizer(model, hp)
    amp_dtype, scaler = engine.amp_setup(device)
    loader, _ = vision_main._loaders(train_ds, val_ds, TASK, hp, device, 1, 0)
    if not isinstance(loader, device_input.DeviceLoader):
        raise RuntimeError("the trainer did not choose the on-device decode path for classification")
    timed = TimedLoader(loader.loader)
    loader.loader = timed
    workers = timed.loader.num_workers
    limit_batches = _device_resident_batches(len(loader), sizes, device, engine)

    def epoch(data, number: int):
        return engine.train_one_epoch(
            model, optimizer, data, device, number, TASK, amp_dtype=amp_dtype, scaler=scaler
        )

    pipeline, limit, waited = [], [], []
    for number in range(1, sizes.cls_epochs + 1):
        timed.waited = 0.0
        first = epoch(loader, number)
        second = epoch(limit_batches, number)
        if number > 1 or sizes.cls_epochs == 1:
            pipeline.append(first)
            limit.append(second)
            waited.append(timed.waited)
    del loader, limit_batches
    release(device)

    samples_s = sum(r.num_samples for r in pipeline) / sum(r.seconds for r in pipeline)
    limit_s = sum(r.num_samples for r in limit) / sum(r.seconds for r in limit)
    wait_share = sum(waited) / sum(r.seconds for r in pipeline)
    ratio = samples_s / limit_s
    numbers = {
        "samples_per_s": samples_s,
        "compute_limit_samples_per_s": limit_s,
        "ratio": ratio,
        "data_wait_share": wait_share,
        "batch_size": sizes.cls_batch,
        "workers": workers,
        "amp": str(amp_dtype) if amp_dtype else None,
        "loss": pipeline[-1].avg_loss,
    }
    measured = f"{samples_s:.1f} vs {limit_s:.1f} samples/s ({ratio:.2f}x); wait {wait_share:.1%}"
    note = (
        f"{sizes.cls_algorithm} {sizes.cls_input}px b{sizes.cls_batch}, decode+augment on {device.type}, "
        f"{workers} workers, AMP {_amp_name(amp_dtype)}"
    )
    if not config.cuda:
        return Row("classification", OK, measured, "(GPU only)", note, numbers)
    met = ratio >= MIN_RATIO and wait_share < MAX_WAIT
    target = f">= {MIN_RATIO}x limit, wait < {MAX_WAIT:.0%}"
    return Row("classification", OK if met else BELOW, measured, target, note, numbers)


def _device_resident_batches(steps: int, sizes, device: torch.device, engine) -> list:
    """`steps` float batches already on the device, in the layout the pipeline hands the model."""
    images = torch.randint(
        0, 256, (sizes.cls_batch, 3, sizes.cls_input, sizes.cls_input), dtype=torch.uint8, device=device
    )
    labels = torch.randint(0, NUM_CLASSES, (sizes.cls_batch,), device=device)
    batch = (engine.to_float(images, device), labels)
    return [batch] * steps


def _amp_name(dtype) -> str:
    return {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(dtype, "off (CPU)")
