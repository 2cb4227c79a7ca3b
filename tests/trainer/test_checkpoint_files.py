"""A checkpoint that cannot be written says why, and leaves nothing half-written."""

from __future__ import annotations

import errno
import shutil
from collections import namedtuple

import pytest
import torch
from trainer.vision import checkpoint as ckpt

Usage = namedtuple("Usage", "total used free")


def failing_save(*args, **kwargs):
    raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 66064064 vs 66063952")


def test_a_checkpoint_is_written_whole(tmp_path):
    model = torch.nn.Linear(4, 2)
    path = ckpt.write_checkpoint(tmp_path, 1, {"metrics.json": b"{}"}, model, {"epoch": 1})
    assert {p.name for p in path.iterdir()} == {"model.safetensors", "metrics.json", "train_state.pt"}


def test_a_full_volume_is_named_with_advice(tmp_path, monkeypatch):
    monkeypatch.setattr(torch, "save", failing_save)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: Usage(10**9, 10**9 - 2**20, 2**20))
    model = torch.nn.Linear(1000, 1000)  # 4 MB of weights: about 8 MB a checkpoint
    with pytest.raises(OSError) as caught:
        ckpt.write_checkpoint(tmp_path, 3, {}, model, {"epoch": 3})
    assert caught.value.errno == errno.ENOSPC
    assert "No space left for checkpoint epoch-3: 1 MB free under" in str(caught.value)
    assert "a checkpoint takes about 8 MB; raise VolumeSizeInGB" in str(caught.value)
    assert not list(tmp_path.iterdir())  # the temporary directory went with it


def test_other_failures_are_not_blamed_on_the_disk(tmp_path, monkeypatch):
    monkeypatch.setattr(torch, "save", failing_save)
    with pytest.raises(RuntimeError, match="unexpected pos"):
        ckpt.write_checkpoint(tmp_path, 1, {}, torch.nn.Linear(2, 2), {"epoch": 1})


def _write_epochs(root, accuracies):
    model = torch.nn.Linear(2, 2)
    for epoch, accuracy in enumerate(accuracies, start=1):
        record = {"epoch": epoch, "metrics": {"overall": {"accuracy": accuracy}}}
        ckpt.write_checkpoint(root, epoch, {"metrics.json": ckpt.json_bytes(record)}, model, {"epoch": epoch})
        ckpt.prune(root, 5, "classification")


def test_pruning_keeps_the_best_weights(tmp_path):
    _write_epochs(tmp_path, [0.5, 0.6, 0.7, 0.99] + [0.8] * 11)  # 15 epochs, the best at 4
    available = [e for e, p in ckpt.list_checkpoints(tmp_path) if (p / "model.safetensors").is_file()]
    assert available == [4, 11, 12, 13, 14, 15]


def test_only_the_newest_checkpoint_keeps_train_state(tmp_path):
    _write_epochs(tmp_path, [0.5, 0.9, 0.6])
    assert [e for e, p in ckpt.list_checkpoints(tmp_path) if (p / "train_state.pt").is_file()] == [3]


def test_weights_without_train_state_still_resume(tmp_path):
    _write_epochs(tmp_path, [0.5, 0.9])
    (tmp_path / "epoch-2" / "train_state.pt").unlink()
    assert ckpt.latest_resumable(tmp_path) == (2, tmp_path / "epoch-2")
