"""A job that asked for the GPU on a GPU instance fails when CUDA sees none.

Training on the CPU of a p4d for hours, billed as a GPU instance, is worse than failing in
the first minute: the usual cause is an image whose torch needs a newer NVIDIA driver than
the host has (PyPI's torch wheels are CUDA 13 builds), or a CPU-only torch. SageMaker
names the instance type in `/opt/ml/input/config/resourceconfig.json`
(`current_instance_type`), which the trainer reads once (`TrainingEnvironment.resource_config`)
and passes here; where there is none (the local platform, a laptop) nothing is checked and a
job trains on the CPU as before.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

# SageMaker's GPU families: ml.p3/p4d/p5..., ml.g4dn/g5/g6/g6e... (trn/inf are not CUDA).
_GPU_INSTANCE = re.compile(r"^ml\.[pg]\d+[a-z]*\.")
DRIVER_ADVICE = (
    "Build the trainer image on a CUDA 12.x torch (TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128, "
    "or BASE_IMAGE=<AWS PyTorch DLC> with KEEP_BASE_TORCH=true; see infra/README.md), whose driver "
    "requirement (>= 525.60.13) SageMaker's GPU hosts meet, or choose a CPU instance type with "
    "using_gpu=False / visible_devices []."
)


def instance_type(config: dict[str, Any]) -> str:
    """`current_instance_type`, or the instance group holding the current host (heterogeneous clusters)."""
    if config.get("current_instance_type"):
        return str(config["current_instance_type"])
    host = config.get("current_host")
    for group in config.get("instance_groups") or []:
        if host in (group.get("hosts") or []):
            return str(group.get("instance_type") or "")
    return ""


def is_gpu_instance(name: str) -> bool:
    return bool(_GPU_INSTANCE.match(name or ""))


def _diagnosis() -> str:
    """What torch and the driver say, for the failure message (best effort)."""
    parts = []
    try:
        import torch

        cuda = torch.version.cuda
        parts.append(
            f"torch {torch.__version__} " + (f"built for CUDA {cuda}" if cuda else "is a CPU-only build")
        )
    except Exception as exc:
        parts.append(f"torch does not import ({type(exc).__name__})")
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            parts.append(f"NVIDIA driver {pynvml.nvmlSystemGetDriverVersion()}")
        finally:
            pynvml.nvmlShutdown()
    except Exception:
        parts.append("no NVIDIA driver visible to the container")
    return "; ".join(parts)


def check(
    asked: bool,
    cuda_available: Callable[[], bool],
    config: dict[str, Any],
    diagnosis: Callable[[], str] = _diagnosis,
) -> None:
    """Raises RuntimeError (the spec's E01) when `asked` on a GPU instance (`config`: the
    environment's resource config) and `cuda_available()` is false."""
    if not asked:
        return
    name = instance_type(config)
    if not is_gpu_instance(name) or cuda_available():
        return
    raise RuntimeError(
        f"The job asked for the GPU and runs on {name}, but CUDA sees no device ({diagnosis()}). "
        f"{DRIVER_ADVICE}"
    )
