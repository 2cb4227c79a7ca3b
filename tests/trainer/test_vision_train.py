"""The vision trainer end to end: `trainer.entry.main()` on a tmp /opt/ml tree and synthetic data."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from trainer.vision import checkpoint as ckpt
from trainer.vision import engine, synthetic
from trainer.vision.models import rebuild_model

from contracts import metrics as contract_metrics
from tests.trainer.opt_ml import OptMlJob

RPN_SMALL = {
    "anchor_sizes": [16],
    "image_min_side": 48,
    "image_max_side": 64,
    "train_rpn_pre_nms_top_n": 200,
    "train_rpn_post_nms_top_n": 50,
    "eval_rpn_pre_nms_top_n": 100,
    "eval_rpn_post_nms_top_n": 30,
    "num_anchor_samples_per_batch": 64,
    "num_proposal_samples_per_batch": 32,
    "num_detections_per_image": 20,
    "proposal_nms_threshold": 0.7,
    "detection_nms_threshold": 0.5,
}
COMMON = {
    "batch_size": 2,
    "momentum": 0.9,
    "weight_decay": 0.0005,
    "step_lr_sizes": [],
    "step_lr_gamma": 0.1,
    "clip_grad_base_and_max": ["norm", 10.0],
    "num_batches_to_display": 2,
    "num_epochs_to_validate": 1,
    "max_num_checkpoints": 5,
    "num_workers": 0,
    "visible_devices": [],
}
CLASSIFICATION = {
    **COMMON,
    "task": "classification",
    "algorithm": "resnet18",
    "pretrained": False,
    "num_frozen_levels": 0,
    "needs_freeze_bn": True,  # fixed BatchNorm statistics learn the colour cue in two epochs
    "image_resized_width": 32,
    "image_resized_height": 32,
    "image_min_side": -1,
    "image_max_side": -1,
    "eval_center_crop_ratio": 1,
    "learning_rate": 0.01,
    "num_epochs_to_finish": 2,
}
DETECTION = {
    **COMMON,
    **RPN_SMALL,
    "task": "detection",
    "algorithm": "fpn",
    "backbone": "resnet18",
    "backbone_pretrained": False,
    "backbone_num_frozen_levels": 0,
    "needs_freeze_bn": True,
    "image_resized_width": -1,
    "image_resized_height": -1,
    "learning_rate": 0.002,
    "num_epochs_to_finish": 1,
}
SEGMENTATION = {**DETECTION, "task": "instance_segmentation", "algorithm": "mask_rcnn"}
SEGMENTATION.pop("backbone")


class Job(OptMlJob):
    """A v1.5 job over a synthetic data_dir, checkpoints linked as the local platform links them."""

    def __init__(
        self,
        root: Path,
        task: str,
        hp: dict,
        num_images: int = 12,
        image_size: int = 48,
        seed: int = 0,
        data: Path | None = None,
    ):
        super().__init__(
            root, {"api": "v1.5", "task": task, "data": {"type": "data_dir", "channel": "training"}}
        )
        self.data = data or synthetic.generate(
            root / "data", task, num_images=num_images, image_size=image_size, num_classes=2, seed=seed
        )
        self.link_data(self.data)
        self.checkpoints = self.link_checkpoints()
        self.configure(hp)

    def configure(self, hp: dict | None = None, **job_fields) -> None:
        self.write(hp, **job_fields)

    def epochs(self) -> list[int]:
        return sorted(int(p.name.split("-")[1]) for p in self.checkpoints.glob("epoch-*"))

    def available(self) -> list[int]:
        return [e for e in self.epochs() if (self.checkpoints / f"epoch-{e}" / "model.safetensors").exists()]


def check_progress(job: Job, status: str, epoch: int, total_epoch: int) -> dict:
    progress = job.read("progress.json")
    assert progress["status"] == status, progress
    assert (progress["epoch"], progress["total_epoch"]) == (epoch, total_epoch)
    assert progress["batch"] == progress["total_batch"] > 0
    assert progress["avg_loss"] > 0 and progress["learning_rate"] > 0 and progress["samples_per_sec"] > 0
    assert progress["exception"] is None and progress["devices"] == []
    return progress


def check_checkpoint(job: Job, epoch: int, task: str) -> dict:
    folder = job.checkpoints / f"epoch-{epoch}"
    names = {p.name for p in folder.iterdir()}
    expected = {
        "model.safetensors",
        "model.json",
        "metrics.json",
        "summary.json",
    }
    if epoch == job.epochs()[-1]:
        expected |= {"train_state.pt"}  # the resume point; older checkpoints keep no optimizer state
    if task == "classification":
        # the numbers the plots are drawn from on request (contracts.plots); no JPEGs
        expected |= {"plot_data.json"}
        data = json.loads((folder / "plot_data.json").read_text())
        assert data["class_names"] == ["red", "green"]
        assert sum(map(sum, data["confusion_matrix"])) == len(
            (job.data / "splits" / "val.txt").read_text().split()
        )
        assert len(data["precision"]) == len(data["recall"]) == 2
        assert all(len(row) == len(data["thresholds"]) for row in data["precision"] + data["recall"])
        assert len(data["mean_precision"]) == len(data["thresholds"])
    assert names == expected
    record = json.loads((folder / "metrics.json").read_text())
    assert record["epoch"] == epoch and record["avg_loss"] > 0
    specific = record["metrics"]["specific"]
    assert specific["categories"] == ["mean", "red", "green"]
    keys = {
        "classification": {"categories", "aucs", "sensitivities", "specificities"},
        "detection": {"categories", "aps", "f1_scores", "precisions", "recalls", "accuracies"},
        "instance_segmentation": {"categories", "aps"},
    }[task]
    assert set(specific) == keys
    for key in keys - {"categories"}:
        assert len(specific[key]) == 3 and all(v == -1 or 0 <= v <= 1 for v in specific[key])
    if task == "classification":
        assert set(record["metrics"]["overall"]) == {
            "accuracy",
            "avg_recall",
            "avg_precision",
            "avg_f1_score",
        }
    else:
        assert record["metrics"]["overall"] == {}
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["flops"][-1] in "KMGT" and summary["params"].endswith("M")
    weights = load_file(folder / "model.safetensors")
    assert summary["param_keys"] == list(weights) or set(summary["param_keys"]) == set(weights)
    # model.json alone rebuilds a module the weights load into strictly
    model = rebuild_model(json.loads((folder / "model.json").read_text()))
    model.load_state_dict(weights, strict=True)
    return record


def test_classification_learns_and_reports(tmp_path, monkeypatch, capsys):
    torch.manual_seed(0)
    hp = {**CLASSIFICATION, "num_epochs_to_finish": 3, "step_lr_sizes": [2]}
    job = Job(tmp_path, "classification", hp, num_images=24, image_size=32)
    phases = []  # what monitor reads while the validation pass runs
    real_evaluate = engine.evaluate

    def evaluate(*args, **kwargs):
        progress = job.read("progress.json")
        phases.append((progress["phase"], progress["eta_hr"]))
        return real_evaluate(*args, **kwargs)

    monkeypatch.setattr(engine, "evaluate", evaluate)
    assert job.run(monkeypatch) == 0
    total_batch = check_progress(job, "finished", 3, 3)["total_batch"]
    assert phases == [("evaluating", -1)] * 3
    assert job.epochs() == [1, 2, 3]
    records = [check_checkpoint(job, e, "classification") for e in (1, 2, 3)]
    best = max(r["metrics"]["overall"]["accuracy"] for r in records)
    assert best >= 0.8, records
    losses = job.read("losses.json")
    assert len(losses) == 3 * (total_batch // 2)  # a point every 2 batches
    # the loss plot's x: the batch each point ends at, counted over all epochs
    per_epoch = list(range(2, total_batch + 1, 2))
    assert job.read("loss_steps.json") == [e * total_batch + b for e in range(3) for b in per_epoch]
    result = job.read("result.json")
    assert result["metrics"]["overall"]["accuracy"] == best
    model_dir = job.base / "model"
    assert {p.name for p in model_dir.iterdir()} >= {"model.safetensors", "model.json"}
    # the trainer draws nothing: the model graph's lines are kept for the plot tool
    graph = json.loads((job.artifacts / "plots" / "model-graph.json").read_text())["lines"]
    assert graph[0].startswith("resnet18: Classifier") and len(graph) <= 71
    assert not list(job.artifacts.rglob("*.jpg"))
    out = capsys.readouterr().out
    assert "#metric eval:accuracy=" in out and "#metric train:loss=" in out


@pytest.mark.parametrize("task, hp", [("detection", DETECTION), ("instance_segmentation", SEGMENTATION)])
def test_rcnn_tasks_finish_with_checkpoints(tmp_path, monkeypatch, task, hp):
    job = Job(tmp_path, task, hp, num_images=8, image_size=48)
    assert job.run(monkeypatch) == 0, job.failure
    check_progress(job, "finished", 1, 1)
    check_checkpoint(job, 1, task)
    assert job.read("result.json")["best_epoch"] == 1
    model_json = json.loads((job.checkpoints / "epoch-1" / "model.json").read_text())
    assert model_json["hyperparameters"]["rcnn_norm"] == "group"  # from scratch
    assert (
        model_json["architecture"]["norm"] == "group"
        and model_json["architecture"]["group_norm_groups"] == 32
    )
    total_batch = job.read("progress.json")["total_batch"]
    assert model_json["lr_warmup"] == {
        "method": "linear",
        "start_factor": 0.001,
        "iterations": total_batch - 1,
        "epoch": 1,
    }


def test_stop_then_resume_continues_at_next_epoch(tmp_path, monkeypatch):
    hp = {**CLASSIFICATION, "num_epochs_to_finish": 3, "max_num_checkpoints": 5}
    job = Job(tmp_path, "classification", hp, num_images=12, image_size=32)
    from trainer.vision import engine

    original = engine.train_one_epoch

    def sigterm_in_epoch_two(*args, **kwargs):
        if args[4] == 2:  # SIGTERM arrives after batch 2 of epoch 2: that epoch is discarded
            on_batch = kwargs["on_batch"]

            def hook(batch, loss, size):
                on_batch(batch, loss, size)
                if batch == 2:
                    os.kill(os.getpid(), signal.SIGTERM)

            kwargs["on_batch"] = hook
        return original(*args, **kwargs)

    monkeypatch.setattr(engine, "train_one_epoch", sigterm_in_epoch_two)
    assert job.run(monkeypatch) == 0
    assert job.read("progress.json")["status"] == "stopped"
    assert job.epochs() == [1]
    losses_after_one = json.loads((job.checkpoints / "epoch-1" / "metrics.json").read_text())
    assert len(job.read("losses.json")) > 2  # epoch 2 added points that resume must drop
    before = load_file(job.checkpoints / "epoch-1" / "model.safetensors")

    job.configure({**hp, "num_epochs_to_finish": 4}, attempt=2)  # restore may extend the run
    calls = []
    monkeypatch.setattr(engine, "train_one_epoch", lambda *a, **k: calls.append(a[4]) or original(*a, **k))
    assert job.run(monkeypatch) == 0
    assert calls == [2, 3, 4]
    assert job.epochs() == [1, 2, 3, 4]
    total_batch = check_progress(job, "finished", 4, 4)["total_batch"]
    assert job.read("progress.json")["attempt"] == 2
    assert len(job.read("losses.json")) == 4 * (total_batch // 2)  # epochs 1..4, none twice
    assert losses_after_one["epoch"] == 1
    after = load_file(job.checkpoints / "epoch-2" / "model.safetensors")
    assert any(not torch.equal(before[k], after[k]) for k in before)


def test_finetune_loads_weights_and_prunes(tmp_path, monkeypatch):
    source = Job(
        tmp_path / "source",
        "classification",
        {**CLASSIFICATION, "num_epochs_to_finish": 3, "max_num_checkpoints": 2},
        num_images=8,
        image_size=32,
    )
    assert source.run(monkeypatch) == 0
    scores = ckpt.read_scores(source.checkpoints, "classification")
    assert source.epochs() == [1, 2, 3]
    assert source.available() == sorted(contract_metrics.checkpoints_to_keep(scores, 2))  # newest 2 and best
    pruned = source.checkpoints / "epoch-1"
    assert {"metrics.json", "plot_data.json"} <= {p.name for p in pruned.iterdir()}
    assert not (pruned / "train_state.pt").exists()

    source_weights = load_file(source.checkpoints / "epoch-3" / "model.safetensors")
    target = Job(
        tmp_path / "target",
        "classification",
        {
            **CLASSIFICATION,
            "num_epochs_to_finish": 1,
            "learning_rate": 1e-9,
            "momentum": 1e-9,
            "weight_decay": 1e-9,
        },
        data=source.data,
    )
    target.configure(finetune={"checkpoint_uri": str(source.artifacts), "epoch": 3})
    assert target.run(monkeypatch) == 0, target.failure
    tuned = load_file(target.checkpoints / "epoch-1" / "model.safetensors")
    conv = "net.conv1.weight"
    assert torch.allclose(tuned[conv], source_weights[conv], atol=1e-6)

    missing = Job(
        tmp_path / "missing",
        "classification",
        {**CLASSIFICATION, "num_epochs_to_finish": 1},
        data=source.data,
    )
    # epoch 1 is kept when it is the best (newest 2 and the best): its weights are gone either way here
    (source.checkpoints / "epoch-1" / "model.safetensors").unlink(missing_ok=True)
    missing.configure(finetune={"checkpoint_uri": str(source.artifacts), "epoch": 1})
    assert missing.run(monkeypatch) == 1
    assert missing.failure.startswith("E04 FileNotFoundError")


def test_missing_image_fails_with_e04(tmp_path, monkeypatch):
    job = Job(tmp_path, "classification", CLASSIFICATION, num_images=8, image_size=32)
    first = sorted((job.data / "images").iterdir())[0]
    first.unlink()
    assert job.run(monkeypatch) == 1
    assert job.failure.startswith("E04 FileNotFoundError")
    assert job.read("progress.json")["exception"]["code"] == "E04"


@pytest.mark.parametrize(
    "task, hp, message",
    [
        (
            "detection",
            {**DETECTION, "backbone": "resnet9000"},
            "Invalid 'backbone': must be one of:",
        ),
        ("classification", {**CLASSIFICATION, "algorithm": "vgg"}, "Invalid 'algorithm': must be one of:"),
        (
            "classification",
            {**CLASSIFICATION, "algorithm": "inception_v3"},
            "inception_v3 needs images of at least",
        ),
        (
            "classification",
            {**CLASSIFICATION, "batch_size": 0},
            "Invalid 'batch_size': must be an integer in [1, Inf]",
        ),
    ],
)
def test_invalid_arguments_fail_with_e03(tmp_path, monkeypatch, task, hp, message):
    job = Job(tmp_path, task, hp, num_images=4, image_size=32)
    assert job.run(monkeypatch) == 1
    assert job.failure.startswith(f"E03 ValueError: {message}"), job.failure[:300]
