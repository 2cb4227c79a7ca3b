"""Training from scratch trains everything: frozen levels and frozen BatchNorm keep pretrained features."""

from __future__ import annotations

import math

import pytest
import torch
from torchvision.ops.misc import FrozenBatchNorm2d
from trainer.vision import engine, synthetic
from trainer.vision.data import collate_fn, load_data
from trainer.vision.main import resolve_hyperparameters
from trainer.vision.models import build_model


def test_rcnn_from_scratch_unfreezes_levels_and_uses_group_norm():
    hp = resolve_hyperparameters(
        "instance_segmentation",
        {
            "algorithm": "mask_rcnn",
            "backbone_pretrained": False,
            "backbone_num_frozen_levels": 2,
            "needs_freeze_bn": True,
        },
    )
    assert hp["needs_freeze_bn"] is False and hp["backbone_num_frozen_levels"] == 0
    assert hp["rcnn_norm"] == "group"


def test_pretrained_backbone_keeps_what_the_user_froze():
    hp = resolve_hyperparameters(
        "detection",
        {
            "algorithm": "fpn",
            "backbone": "resnet18",
            "backbone_pretrained": True,
            "backbone_num_frozen_levels": 3,
            "needs_freeze_bn": True,
        },
    )
    assert hp["needs_freeze_bn"] is True and hp["backbone_num_frozen_levels"] == 3
    assert "rcnn_norm" not in hp  # the frozen-BatchNorm path (models.rcnn_norm)


def test_classifier_from_scratch_keeps_an_explicit_frozen_batchnorm():
    hp = resolve_hyperparameters(
        "classification",
        {"algorithm": "resnet18", "pretrained": False, "num_frozen_levels": 2, "needs_freeze_bn": True},
    )
    assert hp["needs_freeze_bn"] is True and hp["num_frozen_levels"] == 0


def test_a_diverged_loss_fails_with_advice():
    from trainer.vision.engine import finite_loss

    assert finite_loss(torch.tensor(0.25), 1, 3) == 0.25
    with pytest.raises(
        RuntimeError, match="Loss is nan at epoch 2, batch 7: training diverged; lower learning_rate"
    ):
        finite_loss(torch.tensor(float("nan")), 2, 7)


SCRATCH_RCNN = {
    "backbone_pretrained": False,
    "batch_size": 2,
    "learning_rate": 0.005,
    "image_min_side": 64,
    "image_max_side": 64,
    "num_workers": 0,
    "visible_devices": [],
    "num_proposal_samples_per_batch": 32,
    "train_rpn_post_nms_top_n": 100,
}


@pytest.fixture(scope="module")
def scratch_data(tmp_path_factory):
    """A few training images of 64 px per task: Mask R-CNN with BatchNorm (warm-up or not) had a loss
    over 20 within 4 batches and NaN at epoch 2 on it."""
    root = tmp_path_factory.mktemp("scratch")
    return {
        task: synthetic.generate(root / task, task, num_images=10, image_size=64, num_classes=2, seed=0)
        for task in ("detection", "instance_segmentation")
    }


@pytest.mark.parametrize(
    "task, algorithm, backbone, anchors",
    [
        # resnet18 for the detectors keeps this affordable on two CPU cores (the GroupNorm box
        # head convolves every sampled proposal); resnet50 is the Mask R-CNN that diverged
        ("detection", "faster_rcnn", "resnet18", [16, 32, 64]),
        ("detection", "fpn", "resnet18", [16]),
        ("instance_segmentation", "mask_rcnn", "resnet50", [16]),
    ],
)
def test_rcnn_from_scratch_at_batch_2_and_lr_0005_does_not_diverge(
    scratch_data, task, algorithm, backbone, anchors
):
    torch.manual_seed(0)
    hp = resolve_hyperparameters(
        task, {**SCRATCH_RCNN, "algorithm": algorithm, "backbone": backbone, "anchor_sizes": anchors}
    )
    assert hp["rcnn_norm"] == "group"
    train, _ = load_data(scratch_data[task], task, hp)
    model = build_model(task, hp, len(train.class_names))
    assert any(isinstance(m, torch.nn.GroupNorm) for m in model.backbone.modules())
    assert not any(isinstance(m, torch.nn.BatchNorm2d | FrozenBatchNorm2d) for m in model.modules())
    optimizer = torch.optim.SGD(model.parameters(), lr=hp["learning_rate"], momentum=0.9, weight_decay=5e-4)
    loader = torch.utils.data.DataLoader(train, batch_size=2, shuffle=True, collate_fn=collate_fn)
    losses = []
    for epoch in (1, 2):
        engine.train_one_epoch(
            model,
            optimizer,
            loader,
            torch.device("cpu"),
            epoch,
            task,
            warmup_iterations=engine.warmup_iterations(task, len(loader)) if epoch == 1 else 0,
            on_batch=lambda _batch, loss, _size: losses.append(float(loss)),
        )
    assert len(losses) == 2 * len(loader) and all(math.isfinite(v) and v < 20 for v in losses), losses


def test_warmup_raises_the_learning_rate_linearly_over_the_first_iterations():
    model = torch.nn.Linear(2, 3)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    batches = [(torch.rand(4, 2), torch.randint(0, 3, (4,))) for _ in range(5)]
    assert engine.warmup_iterations("detection", len(batches)) == 4
    assert engine.warmup_iterations("classification", len(batches)) == 0
    used = []  # the rate each optimizer step ran with
    optimizer.register_step_pre_hook(lambda opt, *_: used.append(opt.param_groups[0]["lr"]))
    engine.train_one_epoch(
        model, optimizer, batches, torch.device("cpu"), 1, "classification", warmup_iterations=4
    )
    start = engine.WARMUP_START_FACTOR
    assert used == pytest.approx([0.01 * (start + (1 - start) * k / 4) for k in range(5)])
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.01)
    assert engine.describe_warmup(4) == {
        "method": "linear",
        "start_factor": start,
        "iterations": 4,
        "epoch": 1,
    }
    assert engine.describe_warmup(0) is None


def test_the_from_scratch_warning_is_one_sentence(caplog):
    with caplog.at_level("WARNING", logger="trainer.vision.main"):
        resolve_hyperparameters(
            "classification", {"algorithm": "resnet18", "pretrained": False, "num_frozen_levels": 2}
        )
    assert [r.getMessage() for r in caplog.records] == [
        "pretrained is false, so the model trains from scratch with nothing frozen: num_frozen_levels from 2 to 0."
    ]
