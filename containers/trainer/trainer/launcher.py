"""One process per GPU: re-runs the trainer under torchrun when a job uses several.

SageMaker starts one `train` process per host; the PyTorch toolkit's answer to several GPUs
is torchrun, and so is ours. Workers see the same `/opt/ml`; rank 0 alone writes artifacts.
`AIFACTORY_NPROC_PER_NODE` overrides the count (CPU workers use gloo), which is how the
distributed path is tested on a machine without GPUs.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading

from contracts.text_hyperparameters import DEFAULTS, parse
from trainer.environment import TrainingEnvironment

TEXT_TASKS = ("ml_tagger", "ml_topic")
DISTRIBUTED_TASKS = ("classification", "detection", "instance_segmentation", *TEXT_TASKS)
LAUNCHED = "AIFACTORY_LAUNCHED"

log = logging.getLogger("trainer")


def _text_uses_gpu(env: TrainingEnvironment) -> bool:
    """`process.train.using_gpu`; an invalid value gets one process, which reports it (E03) once."""
    key = "process.train.using_gpu"
    value = env.hyperparameters.get(key)
    try:
        return DEFAULTS["using_gpu"] if value is None else bool(parse(key, str(value)))
    except ValueError:
        return False


def processes_per_host(env: TrainingEnvironment) -> int:
    override = env.environ.get("AIFACTORY_NPROC_PER_NODE")
    if override:
        return max(1, int(override))
    if env.task in TEXT_TASKS and not _text_uses_gpu(env):
        return 1  # a CPU text job: one process per host (several hosts still train together)
    visible = env.hyperparameters.get("visible_devices")
    if visible is not None:
        return max(1, len(visible))
    return max(1, env.num_gpus)


def should_launch(env: TrainingEnvironment) -> bool:
    return not env.environ.get(LAUNCHED) and env.task in DISTRIBUTED_TASKS and processes_per_host(env) > 1


def master_address(env: TrainingEnvironment) -> str:
    """Where rank 0 listens: `MASTER_ADDR` when the platform gives one (the local platform runs
    every host on loopback), else the first host (SageMaker resolves `algo-1`), else loopback."""
    return env.environ.get("MASTER_ADDR") or (env.hosts[0] if len(env.hosts) > 1 else "127.0.0.1")


def master_port(env: TrainingEnvironment) -> str:
    return env.environ.get("MASTER_PORT", "29500")


def command(env: TrainingEnvironment, nproc: int) -> list[str]:
    master = master_address(env)
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        f"--nnodes={len(env.hosts)}",
        f"--node_rank={env.node_rank}",
        f"--nproc_per_node={nproc}",
        f"--master_addr={master}",
        f"--master_port={master_port(env)}",
        "-m",
        "trainer",
    ]


def launch(env: TrainingEnvironment, stop_event: threading.Event) -> int:
    """Runs the workers; a stop (SIGTERM) is passed on to torchrun, which passes it to them."""
    child_env = {**os.environ, LAUNCHED: "1"}
    proc = subprocess.Popen(command(env, processes_per_host(env)), env=child_env)
    forwarded = False
    while proc.poll() is None:
        if stop_event.wait(0.5) and not forwarded:
            proc.send_signal(signal.SIGTERM)
            forwarded = True
    if forwarded and proc.returncode != 0 and not env.failure_file.exists():
        # torchrun exits non-zero after passing a SIGTERM on, however cleanly the workers
        # stopped (saved and reported `stopped`); a worker that failed wrote the failure file.
        log.info(
            "torchrun exited %s after the stop was passed on; the workers stopped cleanly", proc.returncode
        )
        return 0
    return proc.returncode
