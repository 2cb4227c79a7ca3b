"""One training epoch and one evaluation pass, shaped like torchvision's references.

Classification models take a stacked batch and return logits (cross-entropy here);
R-CNN models take lists of images and targets and return their loss dict in train mode
and detections in eval mode. AMP runs on CUDA only (bf16 where supported, otherwise fp16
with a GradScaler).

R-CNN jobs warm the learning rate up linearly over the first epoch's iterations, from 1/1000
of it, as torchvision's detection reference does (``min(1000, len(loader) - 1)`` steps):
the first steps of a randomly initialised detector produce large gradients, and at full
rate they throw the weights far enough for the loss to overflow.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass

import torch
from torch import nn
from torchvision.transforms.v2 import functional as F

from trainer import gpu_required
from trainer.vision import metrics as vision_metrics

log = logging.getLogger(__name__)


WARMUP_START_FACTOR = 1.0 / 1000
WARMUP_MAX_ITERATIONS = 1000


def warmup_iterations(task: str, batches_per_epoch: int) -> int:
    """Iterations of linear learning-rate warm-up in the first epoch (0: none, as for classifiers)."""
    if task == "classification":
        return 0
    return max(0, min(WARMUP_MAX_ITERATIONS, batches_per_epoch - 1))


def describe_warmup(iterations: int) -> dict | None:
    """What model.json records about the warm-up the job trained with."""
    if iterations <= 0:
        return None
    return {"method": "linear", "start_factor": WARMUP_START_FACTOR, "iterations": iterations, "epoch": 1}


def build_optimizer(model: torch.nn.Module, hp: dict) -> torch.optim.Optimizer:
    """The job's SGD over the trainable parameters (frozen backbone levels stay out of it);
    the trainer and `make gpu-check` build it the same way."""
    return torch.optim.SGD(
        [p for p in model.parameters() if p.requires_grad],
        lr=float(hp["learning_rate"]),
        momentum=float(hp["momentum"]),
        weight_decay=float(hp["weight_decay"]),
    )


def _warmup(optimizer: torch.optim.Optimizer, iterations: int):
    """torch's LinearLR scales the current rates, so it composes with the epoch schedule."""
    if iterations <= 0:
        return None
    return torch.optim.lr_scheduler.LinearLR(
        optimizer, start_factor=WARMUP_START_FACTOR, total_iters=iterations
    )


@dataclass
class EpochResult:
    avg_loss: float
    num_batches: int
    num_samples: int
    seconds: float
    stopped: bool


@dataclass
class Evaluation:
    metrics: dict
    probs: torch.Tensor | None = None  # classification only: (N, C) softmax scores
    targets: torch.Tensor | None = None  # classification only: (N,) labels


def select_device(visible_devices, resource_config: dict, local_rank: int = 0) -> torch.device:
    """visible_devices None: a GPU if any, else CPU; []: CPU; [ids]: a listed GPU. Several
    processes on one host (torchrun) take the listed GPUs in turn by `local_rank`.
    `resource_config` (the environment's) names the instance type: no CPU run on a GPU instance."""
    if visible_devices is not None and len(visible_devices) == 0:
        return torch.device("cpu")
    if not torch.cuda.is_available():
        # E01 on a GPU instance: never a silent CPU run
        gpu_required.check(True, torch.cuda.is_available, resource_config)
        if visible_devices:
            raise ValueError(
                f"visible_devices {list(visible_devices)} asks for GPUs but no CUDA device is available; "
                "use [] for CPU or None for automatic"
            )
        return torch.device("cpu")
    count = torch.cuda.device_count()
    ids = list(range(count)) if visible_devices is None else [int(i) for i in visible_devices]
    bad = [i for i in ids if not 0 <= i < count]
    if bad:
        raise ValueError(f"Invalid visible_devices {bad}. Choose ids in [0, {count})")
    return torch.device("cuda", ids[local_rank % len(ids)])


def amp_setup(device: torch.device):
    """(autocast dtype or None, GradScaler or None) for `device`."""
    if device.type != "cuda":
        return None, None
    if torch.cuda.is_bf16_supported():
        return torch.bfloat16, None
    return torch.float16, torch.amp.GradScaler("cuda")


def to_float(images: torch.Tensor, device: torch.device) -> torch.Tensor:
    """The input pipeline's last step, on the device: uint8 -> float in [0, 1] (what
    ToDtype(float32, scale=True) does per image, here once per batch) and, on CUDA, the
    channels_last layout the classifier was moved to (``device_input.prepare_model``)."""
    if not images.is_floating_point():
        images = F.to_dtype(images, torch.float32, scale=True)
    if device.type == "cuda" and images.dim() == 4:
        images = images.contiguous(memory_format=torch.channels_last)
    return images


def _to_device(images, targets, device, task: str):
    if task == "classification":
        images = to_float(images.to(device, non_blocking=True), device)
        return images, targets.to(device, non_blocking=True)
    images = [img.as_subclass(torch.Tensor).to(device, non_blocking=True) for img in images]
    moved = []
    for target in targets:
        moved.append(
            {
                k: (v.as_subclass(torch.Tensor).to(device, non_blocking=True) if torch.is_tensor(v) else v)
                for k, v in target.items()
            }
        )
    return images, moved


def _compute_loss(model: nn.Module, images, targets, task: str) -> torch.Tensor:
    if task == "classification":
        return nn.functional.cross_entropy(model(images), targets)
    loss_dict = model(images, targets)
    return sum(loss_dict.values())


def clip_gradients(model: nn.Module, clip) -> None:
    if not clip:
        return
    base, max_value = clip[0], float(clip[1])
    params = [p for p in model.parameters() if p.grad is not None]
    if base == "value":
        torch.nn.utils.clip_grad_value_(params, max_value)
    elif base == "norm":
        torch.nn.utils.clip_grad_norm_(params, max_value)
    else:
        raise ValueError(f"Invalid clip_grad_base_and_max base {base!r}. Choose one of: value, norm")


def _alone(stop: bool, failure: BaseException | None) -> bool:
    """The agreement of a single process: its own stop request and its own failure."""
    if failure is not None:
        raise failure
    return stop


def train_one_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    data_loader,
    device: torch.device,
    epoch: int,
    task: str,
    *,
    amp_dtype: torch.dtype | None = None,
    scaler: torch.amp.GradScaler | None = None,
    clip_grad_base_and_max=None,
    on_batch: Callable[[int, float, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    agree: Callable[[bool, BaseException | None], bool] | None = None,
    warmup_iterations: int = 0,
) -> EpochResult:
    """Trains one epoch; `on_batch(batch_index_1_based, loss, batch_size)` after every batch
    (`loss` is a 0-dim tensor on the device; `finite_loss` reads it). With
    `warmup_iterations` the learning rate rises linearly to its value over that many steps.

    Before every step, with its batch loaded, `agree(should_stop(), failure)` decides whether
    to go on (trainer.distributed.Group.agree_stop: every rank calls it at the same step, so
    a stop or a failure of any rank, in loading a batch or reporting the last one, stops all
    of them there); a last call after the last step carries a failure of its report. Returns
    early (stopped=True) on an agreed stop; the partial epoch is then discarded by the caller,
    which resumes from the last completed checkpoint.
    """
    agree = agree or _alone
    model.train()
    total_loss, batches, samples = torch.zeros((), device=device), 0, 0
    warmup = _warmup(optimizer, warmup_iterations)
    start = time.monotonic()
    iterator, failure = iter(data_loader), None
    while True:
        try:
            images, targets = next(iterator)
        except StopIteration:
            break
        except Exception as exc:  # agreed on below, then raised on every rank
            failure = exc
        if agree(bool(should_stop is not None and should_stop()), failure):
            return EpochResult(
                finite_loss(total_loss, epoch, batches) / max(1, batches),
                batches,
                samples,
                time.monotonic() - start,
                True,
            )
        images, targets = _to_device(images, targets, device, task)
        autocast = torch.autocast(device.type, dtype=amp_dtype) if amp_dtype is not None else nullcontext()
        with autocast:
            loss = _compute_loss(model, images, targets, task)
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
            clip_gradients(model, clip_grad_base_and_max)
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            clip_gradients(model, clip_grad_base_and_max)
            optimizer.step()
        if warmup is not None and batches < warmup_iterations:
            warmup.step()
        # The loss stays on the device: reading it every batch would make the host wait for the
        # GPU before it loads the next batch. `on_batch` reads it when it reports.
        value = loss.detach().float()
        batch_size = len(images)
        total_loss += value
        batches += 1
        samples += batch_size
        if on_batch is not None:
            try:
                on_batch(batches, value, batch_size)
            except Exception as exc:  # agreed on at the next step or the epoch end
                failure = exc
    agree(False, failure)  # the epoch's end: a stop now is the caller's (after its checkpoint)
    avg = finite_loss(total_loss, epoch, batches) / batches if batches else float("nan")
    return EpochResult(avg, batches, samples, time.monotonic() - start, False)


def finite_loss(value, epoch: int, batch: int) -> float:
    """The loss as a float (a device sync); a NaN or infinite loss fails the job with advice."""
    number = float(value)
    if not math.isfinite(number):
        raise RuntimeError(
            f"Loss is {number} at epoch {epoch}, batch {batch}: training diverged; "
            "lower learning_rate or set clip_grad_base_and_max"
        )
    return number


@torch.inference_mode()
def predict(model: nn.Module, data_loader, device: torch.device, task: str, amp_dtype=None):
    """(outputs, targets) over the loader: softmax rows and labels, or detection dicts and targets."""
    model.eval()
    outputs, targets_all = [], []
    for images, targets in data_loader:
        images, targets = _to_device(images, targets, device, task)
        autocast = torch.autocast(device.type, dtype=amp_dtype) if amp_dtype is not None else nullcontext()
        with autocast:
            out = model(images)
        if task == "classification":
            outputs.append(out.float().softmax(dim=1).cpu())
            targets_all.append(targets.cpu())
        else:
            outputs.extend(
                {k: v.float().cpu() if v.is_floating_point() else v.cpu() for k, v in o.items()} for o in out
            )
            targets_all.extend(
                {k: v.cpu() if torch.is_tensor(v) else v for k, v in t.items()} for t in targets
            )
    return outputs, targets_all


def evaluate(
    model: nn.Module, data_loader, device: torch.device, task: str, class_names: list[str], amp_dtype=None
) -> Evaluation:
    outputs, targets = predict(model, data_loader, device, task, amp_dtype)
    if task == "classification":
        probs = torch.cat(outputs) if outputs else torch.zeros(0, len(class_names))
        labels = torch.cat(targets) if targets else torch.zeros(0, dtype=torch.long)
        return Evaluation(vision_metrics.classification_metrics(probs, labels, class_names), probs, labels)
    if task == "detection":
        return Evaluation(vision_metrics.detection_metrics(outputs, targets, class_names))
    return Evaluation(vision_metrics.segmentation_metrics(outputs, targets, class_names))
