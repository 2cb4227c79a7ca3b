"""Epoch side work (plots, checkpoints) runs in order on one thread and is flushed before the job ends."""

from __future__ import annotations

import threading

import pytest
import torch
from trainer.vision.background import BackgroundWork, WeightsSnapshot, has_spare_core, snapshot


def test_work_runs_in_order_off_the_calling_thread_and_drain_waits():
    seen = []
    release = threading.Event()
    with BackgroundWork() as work:
        work.submit(lambda: (release.wait(5), seen.append(("first", threading.current_thread().name))))
        work.submit(lambda: seen.append(("second", threading.current_thread().name)))
        assert seen == []  # the caller was not blocked
        release.set()
        work.drain()
        assert [name for name, _ in seen] == ["first", "second"]
        assert all(thread.startswith("epoch-io") for _, thread in seen)


def test_leaving_the_block_flushes_pending_work():
    seen = []
    with BackgroundWork() as work:
        work.submit(lambda: (threading.Event().wait(0.2), seen.append("written")))
    assert seen == ["written"]


def test_drain_raises_the_first_failure():
    work = BackgroundWork()
    work.submit(lambda: 1 / 0)
    work.submit(lambda: [][1])
    with pytest.raises(ZeroDivisionError):
        work.drain()
    work.drain()  # reported once
    with pytest.raises(OSError, match="disk full"), BackgroundWork() as failing:
        failing.submit(lambda: (_ for _ in ()).throw(OSError("disk full")))


def test_snapshots_do_not_follow_the_live_tensors():
    model = torch.nn.Linear(2, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.ones(1, 2)).sum().backward()
    optimizer.step()
    weights, state = (
        WeightsSnapshot(model),
        snapshot({"optimizer": optimizer.state_dict(), "rng": (1, (2, 3))}),
    )
    before = {k: v.clone() for k, v in weights.state_dict().items()}
    momentum = state["optimizer"]["state"][0]["momentum_buffer"].clone()
    optimizer.step()
    assert all(torch.equal(before[k], v) for k, v in weights.state_dict().items())
    assert torch.equal(state["optimizer"]["state"][0]["momentum_buffer"], momentum)
    assert state["rng"] == (1, (2, 3))


def test_inline_work_runs_in_the_callers_thread_and_raises_at_once():
    seen = []
    with BackgroundWork(inline=True) as work:
        work.submit(lambda: seen.append(threading.current_thread().name))
        assert seen == [threading.current_thread().name]
        with pytest.raises(ZeroDivisionError):
            work.submit(lambda: 1 / 0)


@pytest.mark.parametrize(
    ("device", "cpus", "threads", "spare"),
    [
        ("cpu", 2, 2, False),  # the benchmark machine: training threads on every core
        ("cpu", 16, 8, True),
        ("cuda", 2, 2, True),  # the CPU mostly waits for the device
    ],
)
def test_side_work_goes_beside_training_only_where_a_core_is_spare(device, cpus, threads, spare):
    assert has_spare_core(torch.device(device), cpus=cpus, threads=threads) is spare
    assert BackgroundWork.for_device(torch.device("cpu")).inline is not has_spare_core(torch.device("cpu"))


def test_inline_work_reads_the_live_objects_and_the_thread_gets_copies():
    model = torch.nn.Linear(2, 2)
    state = {"epoch": 1, "weights": torch.ones(2)}
    inline = BackgroundWork(inline=True)
    assert inline.frozen(state) is state and inline.frozen_weights(model) is model
    with BackgroundWork() as threaded:
        copied = threaded.frozen(state)
        assert copied is not state and copied["weights"].data_ptr() != state["weights"].data_ptr()
        assert isinstance(threaded.frozen_weights(model), WeightsSnapshot)
