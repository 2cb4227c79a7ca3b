"""Every v1.5 algorithm and backbone builds offline, trains a step and round-trips through model.json."""

from __future__ import annotations

import pytest
import torch
from torchvision.ops.misc import FrozenBatchNorm2d
from trainer.vision import models

BIG = {
    "resnest200",
    "resnest269",
    "efficientnet_b7",
    "senet154",
    "nasnet_a_large",
    "pnasnet_5_large",
    "resnext101_32x8d",
    "wide_resnet101_2",
    "resnet152",
    "efficientnet_b6",
    "efficientnet_b5",
}
SMALL_RCNN = {
    "image_min_side": 64,
    "image_max_side": 64,
    "anchor_sizes": [16],
    "train_rpn_pre_nms_top_n": 100,
    "train_rpn_post_nms_top_n": 20,
    "eval_rpn_pre_nms_top_n": 50,
    "eval_rpn_post_nms_top_n": 10,
    "num_proposal_samples_per_batch": 16,
    "num_anchor_samples_per_batch": 32,
}


def _classification_hp(algorithm, **extra):
    side = 80 if algorithm == "inception_v3" else 32
    return {
        "algorithm": algorithm,
        "pretrained": False,
        "num_frozen_levels": 2,
        "needs_freeze_bn": False,
        "image_resized_width": side,
        "image_resized_height": side,
        "batch_size": 2,
        **extra,
    }


@pytest.mark.parametrize("algorithm", models.CLASSIFICATION_ALGORITHMS)
def test_every_classification_algorithm_builds(algorithm):
    hp = _classification_hp(algorithm)
    model = models.build_model("classification", hp, 3)
    frozen = [n for n, p in model.named_parameters() if not p.requires_grad]
    assert frozen, "num_frozen_levels=2 freezes the stem and the first stage"
    head = [m for m in model.modules() if isinstance(m, torch.nn.Linear)][-1]
    assert head.out_features == 3 and head.weight.requires_grad
    if algorithm in BIG:
        return  # construct-only: a forward pass of these costs seconds on CPU
    side = hp["image_resized_width"]
    model.train()
    logits = model(torch.rand(2, 3, side, side))
    assert logits.shape == (2, 3)
    logits.sum().backward()


@pytest.mark.parametrize("backbone", models.DETECTION_BACKBONES)
def test_every_detection_backbone_builds(backbone):
    algorithm = "faster_rcnn" if backbone in {"resnet18", "se_resnext50_32x4d"} else "fpn"
    hp = {
        "algorithm": algorithm,
        "backbone": backbone,
        "backbone_pretrained": False,
        "backbone_num_frozen_levels": 2,
        "needs_freeze_bn": True,
        "batch_size": 2,
        **SMALL_RCNN,
    }
    model = models.build_model("detection", hp, 3)
    assert model.roi_heads.box_predictor.cls_score.out_features == 3
    assert any(not p.requires_grad for p in model.backbone.parameters())
    if backbone not in {"resnet18", "resnest50", "se_resnext50_32x4d"}:
        return
    model.train()
    target = {"boxes": torch.tensor([[4.0, 4.0, 40.0, 40.0]]), "labels": torch.tensor([1])}
    losses = model([torch.rand(3, 64, 64)] * 2, [target, target])
    assert set(losses) == {"loss_classifier", "loss_box_reg", "loss_objectness", "loss_rpn_box_reg"}
    sum(losses.values()).backward()


def test_rcnn_arguments_reach_torchvision():
    hp = {
        "algorithm": "fpn",
        "backbone": "resnet18",
        "image_min_side": 300,
        "image_max_side": 500,
        "anchor_sizes": [32],
        "train_rpn_pre_nms_top_n": 111,
        "train_rpn_post_nms_top_n": 99,
        "eval_rpn_pre_nms_top_n": 77,
        "eval_rpn_post_nms_top_n": 55,
        "num_anchor_samples_per_batch": 64,
        "num_proposal_samples_per_batch": 48,
        "num_detections_per_image": 7,
        "proposal_nms_threshold": 0.6,
        "detection_nms_threshold": 0.4,
        "needs_freeze_bn": True,
    }
    model = models.build_model("detection", hp, 4)
    assert model.transform.min_size == (300,) and model.transform.max_size == 500
    rpn, roi = model.rpn, model.roi_heads
    assert rpn._pre_nms_top_n == {"training": 111, "testing": 77}
    assert rpn._post_nms_top_n == {"training": 99, "testing": 55}
    assert rpn.fg_bg_sampler.batch_size_per_image == 64 and rpn.nms_thresh == 0.6
    assert (
        roi.fg_bg_sampler.batch_size_per_image == 48 and roi.detections_per_img == 7 and roi.nms_thresh == 0.4
    )
    assert model.rpn.anchor_generator.sizes == ((32,), (64,), (128,), (256,), (512,))
    assert any(isinstance(m, FrozenBatchNorm2d) for m in model.backbone.modules())
    single = models.build_model("detection", {**hp, "algorithm": "faster_rcnn", "anchor_sizes": [16, 32]}, 4)
    assert single.rpn.anchor_generator.sizes == ((16, 32),)


def test_unconstrained_sides_keep_the_image_size():
    hp = {
        "algorithm": "mask_rcnn",
        "image_min_side": -1,
        "image_max_side": -1,
        "needs_freeze_bn": True,
        **{k: v for k, v in SMALL_RCNN.items() if "side" not in k},
    }
    model = models.build_model("instance_segmentation", hp, 3).eval()
    with torch.no_grad():
        out = model([torch.rand(3, 40, 56)])[0]
    assert set(out) == {"boxes", "labels", "scores", "masks"}
    assert out["masks"].shape[-2:] == (40, 56)
    images, _ = model.transform([torch.rand(3, 40, 56)])
    assert images.image_sizes == [(40, 56)]


def test_model_json_rebuilds_identical_state_dict_keys():
    hp = {**_classification_hp("mobilenet_v2"), "needs_freeze_bn": True}
    model = models.build_model("classification", hp, 2)
    description = models.describe_model("classification", hp, ["cat", "dog"])
    assert description["class_names"] == ["cat", "dog"] and description["format_version"] == 1
    rebuilt = models.rebuild_model(description)
    rebuilt.load_state_dict(model.state_dict(), strict=True)
    with pytest.raises(ValueError, match="format_version"):
        models.rebuild_model({**description, "format_version": 99})


@pytest.mark.parametrize("norm", ["group", "frozen_batch"])
def test_rcnn_model_json_rebuilds_the_norm_it_was_built_with(norm):
    hp = {
        "algorithm": "mask_rcnn",
        "backbone": "resnet18",
        "rcnn_norm": norm,
        "needs_freeze_bn": True,
        **SMALL_RCNN,
    }
    model = models.build_model("instance_segmentation", hp, 3)
    description = models.describe_model("instance_segmentation", hp, ["background", "a", "b"])
    assert description["hyperparameters"]["rcnn_norm"] == norm
    assert description["architecture"]["norm"] == norm
    rebuilt = models.rebuild_model(description)
    rebuilt.load_state_dict(model.state_dict(), strict=True)
    kinds = {type(m) for m in rebuilt.modules()}
    if norm == "group":
        assert torch.nn.GroupNorm in kinds and FrozenBatchNorm2d not in kinds
        assert description["architecture"]["box_head"] == "4conv1fc-gn"
    else:
        assert torch.nn.GroupNorm not in kinds and FrozenBatchNorm2d in kinds


def test_model_json_written_before_rcnn_norm_rebuilds_frozen_batchnorm():
    hp = {"algorithm": "fpn", "backbone": "resnet18", "needs_freeze_bn": True, **SMALL_RCNN}
    description = models.describe_model("detection", hp, ["background", "a"])
    del description["hyperparameters"]["rcnn_norm"], description["architecture"]
    model = models.rebuild_model(description)
    assert any(isinstance(m, FrozenBatchNorm2d) for m in model.backbone.modules())
    assert not any(isinstance(m, torch.nn.GroupNorm) for m in model.modules())


@pytest.mark.parametrize(
    "task, hp, message",
    [
        (
            "classification",
            {"algorithm": "alexnet"},
            "Invalid algorithm 'alexnet'. Choose one of: mobilenet_v2",
        ),
        ("detection", {"algorithm": "fpn", "backbone": "vgg16"}, "Invalid backbone 'vgg16'. Choose one of:"),
        ("classification", {"algorithm": "resnet18", "num_frozen_levels": 6}, "Invalid num_frozen_levels 6"),
        ("classification", {"algorithm": "inception_v3", "image_resized_width": 64}, "at least 75x75"),
        ("classification", {"algorithm": "resnest50", "batch_size": 1}, "cannot train with batch_size 1"),
        (
            "detection",
            {"algorithm": "fpn", "backbone": "resnet18", "anchor_sizes": [1]},
            "Invalid anchor_sizes",
        ),
    ],
)
def test_invalid_arguments_explain_themselves(task, hp, message):
    with pytest.raises(ValueError, match=message):
        models.build_model(task, hp, 3)


def test_pretrained_weights_unavailable_is_file_not_found(monkeypatch):
    def offline(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(models, "get_model", offline)
    with pytest.raises(FileNotFoundError, match="Pretrained weights for resnet50 could not be loaded"):
        models.build_model("classification", {"algorithm": "resnet50", "pretrained": True}, 2)
