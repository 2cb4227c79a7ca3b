"""What every path shares: its result row, the run's settings and sizes, and small timers.

A row's `result` is one of OK, BELOW TARGET, SKIPPED or FAIL. Only FAIL makes the command
exit non-zero (and BELOW TARGET under --strict): a missing Docker engine is a fact about
the machine, not a broken path, and a target missed is a measurement to report.
"""

from __future__ import annotations

import math
import socket
from dataclasses import dataclass, field

import torch

OK, BELOW, SKIPPED, FAIL = "OK", "BELOW TARGET", "SKIPPED", "FAIL"


@dataclass
class Row:
    path: str
    result: str
    measured: str = ""
    target: str = ""
    note: str = ""
    numbers: dict = field(default_factory=dict)  # the raw figures, for --json

    def as_dict(self) -> dict:
        return {
            "path": self.path,
            "result": self.result,
            "measured": self.measured,
            "target": self.target,
            "note": self.note,
            "numbers": self.numbers,
        }


@dataclass(frozen=True)
class Sizes:
    """How big each path runs: FULL on a CUDA device (under 8 minutes on one H100), TINY on the
    CPU (the suite's test: every path's code runs, in seconds)."""

    cls_algorithm: str
    cls_images: int
    cls_image_size: int  # the JPEGs on disk
    cls_input: int  # image_resized_width/height: the model's input
    cls_batch: int
    cls_epochs: int  # the first warms up (workers, cuDNN, allocator); the rest are measured
    rcnn_backbone: str
    rcnn_images: int
    rcnn_image_size: int
    rcnn_batch: int
    rcnn_epochs: int
    rcnn_overrides: tuple[tuple[str, int], ...]  # v1.5 arguments on top of the job defaults
    inf_algorithm: str
    inf_image_size: int
    inf_latency_requests: int
    inf_throughput_requests: int
    inf_concurrency: int


FULL = Sizes(
    cls_algorithm="resnet50",
    cls_images=2304,
    cls_image_size=256,
    cls_input=224,
    cls_batch=128,
    cls_epochs=4,
    rcnn_backbone="resnet50",
    rcnn_images=72,
    rcnn_image_size=512,
    rcnn_batch=8,
    rcnn_epochs=2,
    rcnn_overrides=(),
    inf_algorithm="resnet50",
    inf_image_size=224,
    inf_latency_requests=200,
    inf_throughput_requests=640,
    inf_concurrency=16,
)

TINY = Sizes(
    cls_algorithm="resnet18",
    cls_images=24,
    cls_image_size=40,
    cls_input=32,
    cls_batch=8,
    cls_epochs=2,
    rcnn_backbone="resnet18",
    rcnn_images=4,
    rcnn_image_size=64,
    rcnn_batch=2,
    rcnn_epochs=1,
    # fewer proposals: the same code, a fraction of a CPU's time (tests/trainer/test_vision_scratch.py's choice)
    rcnn_overrides=(
        ("train_rpn_pre_nms_top_n", 200),
        ("train_rpn_post_nms_top_n", 100),
        ("num_proposal_samples_per_batch", 32),
    ),
    inf_algorithm="resnet18",
    inf_image_size=32,
    inf_latency_requests=10,
    inf_throughput_requests=16,
    inf_concurrency=4,
)


@dataclass(frozen=True)
class Config:
    device: torch.device
    sizes: Sizes
    workdir: str
    inject_failure: tuple[str, ...] = ()
    trainer_image: str | None = None
    extra_pythonpath: tuple[str, ...] = ()  # bundled wheels the server's child process needs too

    @property
    def cuda(self) -> bool:
        return self.device.type == "cuda"


class InjectedFailure(RuntimeError):
    """Raised by a path named in --inject-failure: proves a failing path fails the command."""


def maybe_fail(config: Config, path: str) -> None:
    if path in config.inject_failure:
        raise InjectedFailure(f"failure injected into {path} by --inject-failure")


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def free_port() -> int:
    """A free loopback port for a child server (the OS picks it; released just before use)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def release(device: torch.device) -> None:
    """Gives the next path the device's memory back."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()
