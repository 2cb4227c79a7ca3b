"""Several processes per host: the trainer relaunches itself under torchrun and trains with DDP.

Two CPU workers with gloo stand in for two GPUs with NCCL: the same code path, minus CUDA.
Below them, trainer.distributed's agreement between two real gloo ranks (stop, failure, a
missing peer) and the vision epoch's agreement points.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
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


# --- trainer.distributed: agreement between two real gloo ranks on loopback -----------------


def _rank_main(rank: int, port: int, results, peer_done) -> None:
    """One rank of the agreement test (a spawned process): reports what it saw, step by step."""
    from types import SimpleNamespace

    from trainer import distributed

    from contracts.statuses import exception_code

    hosts = ["algo-1", "algo-2"]
    environ = {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), distributed.TIMEOUT_ENV: "3"}
    env = SimpleNamespace(environ=environ, hosts=hosts, node_rank=rank, current_host=hosts[rank])
    group = distributed.setup(env)
    seen = {"writer": group.is_writer, "world": group.world}
    seen["stop"] = group.agree_stop(rank == 1)  # rank 1 alone was asked: both stop at this step
    seen["go_on"] = group.agree_stop(False)
    seen["chosen"] = group.broadcast({"epoch": 3} if rank == 0 else None)
    try:
        group.agree_stop(False, ValueError("bad image 7.jpg") if rank == 1 else None, "epoch 2")
    except Exception as exc:  # what each rank raised is the result
        seen["failure"] = (type(exc).__name__, exception_code(exc), str(exc))
    if rank == 0:
        try:
            group.barrier("rank 0's checkpoint")  # rank 1 never comes
        except RuntimeError as exc:
            seen["barrier"] = str(exc)
        peer_done.set()
    else:
        peer_done.wait(60)
    results.put((rank, seen))


def test_two_ranks_agree_on_stop_failure_and_a_missing_peer():
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    results, peer_done = context.Queue(), context.Event()
    port = free_port()
    procs = [context.Process(target=_rank_main, args=(r, port, results, peer_done)) for r in (0, 1)]
    for proc in procs:
        proc.start()
    seen = dict(results.get(timeout=240) for _ in procs)
    for proc in procs:
        proc.join(30)
    assert [seen[r]["writer"] for r in (0, 1)] == [True, False] and seen[0]["world"] == 2
    assert seen[0]["stop"] is seen[1]["stop"] is True  # a stop seen by one rank stops both
    assert seen[0]["go_on"] is seen[1]["go_on"] is False
    assert seen[1]["chosen"] == {"epoch": 3}  # rank 0's choice, e.g. the checkpoint to resume
    assert seen[1]["failure"] == ("ValueError", "E03", "bad image 7.jpg")  # its own error
    # the other rank fails at the same point, with the cause's code, naming the host
    assert seen[0]["failure"] == ("ValueError", "E03", "algo-2 (rank 1) failed: bad image 7.jpg")
    message = seen[0]["barrier"]
    assert message.startswith("algo-1 (rank 0 of 2) lost the other hosts at rank 0's checkpoint")
    assert "did not answer within 3 s" in message and "AIFACTORY_COLLECTIVE_TIMEOUT_S" in message
    assert "restore the job" in message


class _Votes:
    """A stand-in for Group.agree_stop that records each call and stops when told."""

    def __init__(self, stop_at: int | None = None):
        self.calls: list[tuple[bool, str | None]] = []
        self.stop_at = stop_at

    def __call__(self, stop: bool, failure: BaseException | None) -> bool:
        self.calls.append((stop, None if failure is None else str(failure)))
        if failure is not None:
            raise failure
        return stop or len(self.calls) == self.stop_at


def _epoch(batches, agree, on_batch=None):
    from trainer.vision import engine

    model = torch.nn.Linear(2, 3)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    return engine.train_one_epoch(
        model, optimizer, batches, torch.device("cpu"), 1, "classification", agree=agree, on_batch=on_batch
    )


def test_the_epoch_agrees_before_every_step_and_at_its_end():
    batches = [(torch.rand(4, 2), torch.randint(0, 3, (4,))) for _ in range(3)]
    votes = _Votes()
    result = _epoch(batches, votes)
    assert votes.calls == [(False, None)] * 4 and not result.stopped  # 3 steps and the epoch's end

    votes = _Votes(stop_at=2)  # another rank asked to stop: this one stops before its 2nd step
    result = _epoch(batches, votes)
    assert result.stopped and result.num_batches == 1 and len(votes.calls) == 2

    def broken():  # loading the 2nd batch fails: agreed on before any rank trains on it
        yield batches[0]
        raise OSError("image 7.jpg is truncated")

    votes = _Votes()
    with pytest.raises(OSError, match="truncated"):
        _epoch(broken(), votes)
    assert votes.calls == [(False, None), (False, "image 7.jpg is truncated")]

    def report(batch, loss, size):  # the last step's report fails: agreed on at the epoch's end
        if batch == 3:
            raise RuntimeError("Loss is nan at epoch 1, batch 3")

    votes = _Votes()
    with pytest.raises(RuntimeError, match="Loss is nan"):
        _epoch(batches, votes, on_batch=report)
    assert votes.calls[-1] == (False, "Loss is nan at epoch 1, batch 3") and len(votes.calls) == 4
