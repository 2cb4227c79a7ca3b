"""`environment` and `devices`: this machine on the local stage; the training fleet on AWS.

The Lambda has no GPUs and no torch, so the aws stage reports the configured training
instance type's GPUs, the versions the trainer image recorded (`environment.json` of the
latest job) and live readings from running jobs' heartbeats.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from chalicelib import settings
from chalicelib.ports import IN_PROGRESS
from chalicelib.wiring import Services

REPO_ROOT = Path(__file__).resolve().parents[2]
# GPUs per SageMaker instance type: (count, name, memory in MiB).
INSTANCE_GPUS = {
    "ml.p3.2xlarge": (1, "Tesla V100-SXM2-16GB", 16160),
    "ml.p3.8xlarge": (4, "Tesla V100-SXM2-16GB", 16160),
    "ml.p3.16xlarge": (8, "Tesla V100-SXM2-16GB", 16160),
    "ml.p3dn.24xlarge": (8, "Tesla V100-SXM2-32GB", 32510),
    "ml.g4dn.xlarge": (1, "Tesla T4", 15360),
    "ml.g4dn.2xlarge": (1, "Tesla T4", 15360),
    "ml.g4dn.4xlarge": (1, "Tesla T4", 15360),
    "ml.g4dn.8xlarge": (1, "Tesla T4", 15360),
    "ml.g4dn.12xlarge": (4, "Tesla T4", 15360),
    "ml.g4dn.16xlarge": (1, "Tesla T4", 15360),
    "ml.g5.xlarge": (1, "NVIDIA A10G", 23028),
    "ml.g5.2xlarge": (1, "NVIDIA A10G", 23028),
    "ml.g5.4xlarge": (1, "NVIDIA A10G", 23028),
    "ml.g5.8xlarge": (1, "NVIDIA A10G", 23028),
    "ml.g5.12xlarge": (4, "NVIDIA A10G", 23028),
    "ml.g5.16xlarge": (1, "NVIDIA A10G", 23028),
    "ml.g5.24xlarge": (4, "NVIDIA A10G", 23028),
    "ml.g5.48xlarge": (8, "NVIDIA A10G", 23028),
    "ml.g6.xlarge": (1, "NVIDIA L4", 23034),
    "ml.g6.12xlarge": (4, "NVIDIA L4", 23034),
    "ml.g6.48xlarge": (8, "NVIDIA L4", 23034),
    "ml.p4d.24xlarge": (8, "NVIDIA A100-SXM4-40GB", 40960),
    "ml.p4de.24xlarge": (8, "NVIDIA A100-SXM4-80GB", 81920),
    "ml.p5.48xlarge": (8, "NVIDIA H100 80GB HBM3", 81559),
    "ml.p5e.48xlarge": (8, "NVIDIA H200", 143771),
}


@functools.cache
def _local_probe() -> dict[str, Any]:
    """Runs the trainer's probe in a child process: the API process never imports torch."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO_ROOT / "containers" / "trainer"), str(REPO_ROOT)]),
    }
    out = subprocess.run(
        [sys.executable, "-m", "trainer.probe"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=True,
    ).stdout
    return json.loads(out)


def _live_local_devices() -> list[dict[str, Any]]:
    trainer_path = str(REPO_ROOT / "containers" / "trainer")
    if trainer_path not in sys.path:
        sys.path.insert(0, trainer_path)
    from trainer.probe import gpu_devices  # pynvml only: no torch

    return gpu_devices(live=True)


def environment(svc: Services) -> dict[str, Any]:
    if settings.is_local():
        probe = _local_probe()
        devices = [  # the hardware does not change: the cached probe already listed it
            {"id": d["id"], "name": d["name"], "memory_in_mb": d["memory_in_mb"]} for d in probe["devices"]
        ]
        software = {k: probe["software"][k] for k in ("python_version", "cuda_version", "cudnn_version")}
    else:
        count, name, memory = INSTANCE_GPUS.get(settings.v15_instance_type(), (0, "", 0))
        devices = [{"id": i, "name": name, "memory_in_mb": memory} for i in range(count)]
        recorded = _latest_recorded_environment(svc)
        software = {k: recorded.get(k) for k in ("python_version", "cuda_version", "cudnn_version")}
    return {"result": "OK", "environment": {"hardware": {"devices": devices}, "software": software}}


def _latest_recorded_environment(svc: Services) -> dict[str, Any]:
    for job in reversed(svc.jobs.list()):
        data = svc.artifacts.get_json(f"{job['artifact_key']}/environment.json", None)
        if data:
            return data.get("software", {})
    return {}


def devices(svc: Services) -> dict[str, Any]:
    if settings.is_local():
        return {"result": "OK", "devices": _live_local_devices()}
    found = []
    for job in svc.jobs.list():
        if job["status"] == IN_PROGRESS:
            progress = svc.artifacts.get_json(f"{job['artifact_key']}/progress.json", {}) or {}
            found.extend(progress.get("devices") or [])
    return {"result": "OK", "devices": found}
