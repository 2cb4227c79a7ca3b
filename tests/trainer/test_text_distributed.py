"""Text jobs on several processes: torchrun relaunch, sharded step batches, DDP over gloo.

Two CPU workers with gloo stand in for two GPUs with NCCL, as in test_distributed.py.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from trainer import launcher
from trainer.environment import TrainingEnvironment
from trainer.text.data import Example, StepBatches

from tests.dataset_fetcher.loopback import DatasetServer
from tests.servers import free_port
from tests.trainer.test_text_quality import one_thread  # noqa: F401 - the fixture
from tests.trainer.test_text_training import (
    KEY,
    SMALL_MODEL,
    Job,
    check_result,
    sigterm_once_running,
    tagging_records,
)

REPO = Path(__file__).resolve().parents[2]
HPS = {
    **SMALL_MODEL,
    "process.train.using_gpu": "False",  # gloo on the CPU even where a GPU is present
    "process.eval.using_gpu": "False",
    "process.train.steps": "40",
    "process.train.saveCheckpointSteps": "20",
    "process.train.displaySteps": "5",
}


@pytest.fixture(autouse=True)
def _loopback_dataset_allowed(monkeypatch):
    monkeypatch.setenv("AIFACTORY_ALLOW_PRIVATE_URLS", "true")


def environment(tmp_path, hyperparameters: dict, **environ) -> TrainingEnvironment:
    job = Job(tmp_path, "ml_tagger", "http://127.0.0.1:9/unused", hyperparameters)
    return TrainingEnvironment.load(job.base, environ=environ)


def test_a_gpu_text_job_gets_one_process_per_gpu(tmp_path):
    env = environment(tmp_path, SMALL_MODEL, SM_NUM_GPUS="4")
    assert launcher.processes_per_host(env) == 4 and launcher.should_launch(env)
    assert launcher.command(env, 4)[-2:] == ["-m", "trainer"]


@pytest.mark.parametrize("using_gpu", ["False", "maybe"])
def test_a_cpu_or_invalid_text_job_runs_one_process_per_host(tmp_path, using_gpu):
    env = environment(tmp_path, {**SMALL_MODEL, "process.train.using_gpu": using_gpu}, SM_NUM_GPUS="4")
    assert launcher.processes_per_host(env) == 1 and not launcher.should_launch(env)


def test_rank_shards_are_disjoint_equal_and_cover_the_epoch():
    examples = [Example([i], 0) for i in range(11)]
    ranks = [StepBatches(examples, 2, seed=3, rank=r, world=2) for r in (0, 1)]
    assert [r.per_epoch for r in ranks] == [2, 2]  # 5 examples per rank, batches of 2, tail dropped
    for epoch in range(3):
        seen = [
            [int(i) for step in range(epoch * 2, epoch * 2 + 2) for i in r(step).ids[:, 0]] for r in ranks
        ]
        assert not set(seen[0]) & set(seen[1]) and len(seen[0]) == len(seen[1]) == 4
    alone = StepBatches(examples, 2, seed=3)
    first_epoch = [int(i) for step in range(5) for i in alone(step).ids[:, 0]]
    assert alone.per_epoch == 5 and len(set(first_epoch)) == 10


def test_too_few_records_for_the_processes_is_an_error():
    with pytest.raises(ValueError, match="1 training record\\(s\\) cannot be shared by 2 processes"):
        StepBatches([Example([1], 0)], 4, seed=0, rank=0, world=2)


def run(root: Path, monkeypatch, records, workers: int) -> tuple[Job, list[int]]:
    with DatasetServer(records, header=KEY) as server:
        job = Job(root, "ml_tagger", server.url, HPS, page_size=100)
        if workers > 1:
            monkeypatch.setenv("AIFACTORY_NPROC_PER_NODE", str(workers))
            monkeypatch.setenv("MASTER_PORT", str(free_port()))
            monkeypatch.setenv(
                "PYTHONPATH", os.pathsep.join([str(REPO / "containers" / "trainer"), str(REPO)])
            )
        status = job.run(monkeypatch)
        requested = list(server.requests)
    failure = job.base / "output" / "failure"
    assert status == 0, failure.read_text() if failure.exists() else ""
    return job, requested


@pytest.mark.usefixtures("one_thread")
def test_two_workers_train_as_well_as_one_and_rank_zero_alone_writes(tmp_path, monkeypatch, capfd):
    records = tagging_records(300)
    alone, _ = run(tmp_path / "one", monkeypatch, records, workers=1)
    capfd.readouterr()
    pair, requested = run(tmp_path / "two", monkeypatch, records, workers=2)
    out, err = capfd.readouterr()

    one_f1 = check_result(alone.read("result.json"), classes=4)
    two_f1 = check_result(pair.read("result.json"), classes=4)
    assert one_f1 > 0.8 and abs(two_f1 - one_f1) <= 0.05
    assert len(requested) == len(set(requested)) and {0, 100, 200} <= set(requested)  # rank 0 alone fetched
    # One writer: one evaluation line per save point, one log line per checkpoint written.
    assert len(re.findall(r"#metric eval:f1=", out)) == 2  # step 20 and the end
    assert len(re.findall(r"Saved checkpoint .*step-20\n", err)) == 1
    assert len(re.findall(r"Saved checkpoint .*step-40\n", err)) == 1
    assert "Rank 1 of 2 (gloo" in err
    assert pair.steps_saved() == [20, 40]
    progress = pair.read("progress.json")
    assert progress["status"] == "finished" and progress["batch"] == progress["total_batch"] == 40
    assert len(pair.read("losses.json")) == 8  # every 5 steps, from rank 0 alone
    meta = json.loads((pair.base / "model" / "model.json").read_text())
    assert meta["vocab"] == json.loads((alone.base / "model" / "model.json").read_text())["vocab"]


def test_sigterm_stops_every_worker_after_the_same_step_and_saves_once(tmp_path, monkeypatch):
    hps = {**HPS, "process.train.steps": "100000", "process.train.saveCheckpointSteps": "0"}
    with DatasetServer(tagging_records(200), header=KEY) as server:
        job = Job(tmp_path, "ml_tagger", server.url, hps)
        returncode, stderr = sigterm_once_running(
            job, tmp_path, {"AIFACTORY_NPROC_PER_NODE": "2", "MASTER_PORT": str(free_port())}, timeout=120
        )
    assert returncode == 0, stderr
    assert job.read("progress.json")["status"] == "stopped"
    [stopped_at] = job.steps_saved()
    assert stopped_at > 0
    assert stderr.count("Saved checkpoint") == 1
    assert stderr.count(f"Stop requested at step {stopped_at}:") == 2  # both ranks, the same step
