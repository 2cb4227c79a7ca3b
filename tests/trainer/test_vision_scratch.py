"""Training from scratch trains everything: frozen levels and frozen BatchNorm keep pretrained features."""

from __future__ import annotations

from trainer.vision.main import resolve_hyperparameters


def test_rcnn_from_scratch_unfreezes_batchnorm_and_levels():
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


def test_classifier_from_scratch_keeps_an_explicit_frozen_batchnorm():
    hp = resolve_hyperparameters(
        "classification",
        {"algorithm": "resnet18", "pretrained": False, "num_frozen_levels": 2, "needs_freeze_bn": True},
    )
    assert hp["needs_freeze_bn"] is True and hp["num_frozen_levels"] == 0


def test_a_diverged_loss_fails_with_advice():
    import pytest
    import torch
    from trainer.vision.engine import finite_loss

    assert finite_loss(torch.tensor(0.25), 1, 3) == 0.25
    with pytest.raises(
        RuntimeError, match="Loss is nan at epoch 2, batch 7: training diverged; lower learning_rate"
    ):
        finite_loss(torch.tensor(float("nan")), 2, 7)
