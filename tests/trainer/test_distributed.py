"""Several processes per host: the trainer relaunches itself under torchrun and trains with DDP.

Two CPU workers with gloo stand in for two GPUs with NCCL: the same code path, minus CUDA.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from trainer import launcher
from trainer.environment import TrainingEnvironment

from tests.servers import free_port
from tests.trainer.test_vision_train import CLASSIFICATION, Job, check_checkpoint, check_progress

REPO = Path(__file__).resolve().parents[2]


def test_launch_command_uses_torchrun_with_one_process_per_device(tmp_path, monkeypatch):
    job = Job(tmp_path, "classification", {**CLASSIFICATION, "visible_devices": [0, 1, 2]}, num_images=4)
    env = TrainingEnvironment.load(job.base, environ={"SM_NUM_GPUS": "4"})
    assert launcher.processes_per_host(env) == 3 and launcher.should_launch(env)
    assert launcher.command(env, 3)[2:] == [
        "torch.distributed.run",
        "--nnodes=1",
        "--node_rank=0",
        "--nproc_per_node=3",
        "--master_addr=127.0.0.1",
        "--master_port=29500",
        "-m",
        "trainer",
    ]
    launched = TrainingEnvironment.load(job.base, environ={"SM_NUM_GPUS": "4", "AIFACTORY_LAUNCHED": "1"})
    assert not launcher.should_launch(launched)


def test_two_workers_train_one_job_and_only_rank_zero_writes(tmp_path, monkeypatch):
    job = Job(
        tmp_path,
        "classification",
        {**CLASSIFICATION, "num_epochs_to_finish": 2},
        num_images=24,
        image_size=32,
    )
    monkeypatch.setenv("AIFACTORY_NPROC_PER_NODE", "2")
    monkeypatch.setenv("MASTER_PORT", str(free_port()))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(REPO / "containers" / "trainer"), str(REPO)]))
    assert job.run(monkeypatch) == 0, (
        (job.base / "output" / "failure").read_text() if (job.base / "output" / "failure").exists() else ""
    )
    progress = check_progress(job, "finished", 2, 2)
    assert job.epochs() == [1, 2]
    check_checkpoint(job, 2, "classification")
    # 16 training images split over 2 ranks with batch 2: 4 batches per rank per epoch (8 alone)
    assert progress["total_batch"] == 4
    assert len(json.loads((job.artifacts / "losses.json").read_text())) == 4  # every 2 batches, rank 0 only
