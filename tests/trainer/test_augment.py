"""The aug_* pipeline keeps boxes, masks and labels aligned and follows the strategies."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torchvision import tv_tensors
from torchvision.transforms.v2 import functional as F
from trainer.vision.augment import (
    RANGE_KEYS,
    AugmentPolicy,
    ResizeSides,
    build_eval_transforms,
    build_train_transforms,
    find_policy,
    fixed_size_prefix,
    masks_to_boxes,
    resolve_aug,
)
from trainer.vision.preview import preview
from trainer.vision.synthetic import generate

ALL_OFF = {"aug_hflip_prob": 0.0}
GEOMETRIC = {
    "hflip": {"aug_hflip_prob": 1.0},
    "vflip": {"aug_vflip_prob": 1.0},
    "rotate90": {"aug_rotate90_prob": 1.0},
    "crop": {"aug_crop_prob_and_min_max": (1.0, (0.2, 1.0))},
    "zoom": {"aug_zoom_prob_and_min_max": (1.0, (-1.0, 1.0))},
    "scale": {"aug_scale_prob_and_min_max": (1.0, (-1.0, 1.0))},
    "translate": {"aug_translate_prob_and_min_max": (1.0, (-1.0, 1.0))},
    "resized_crop": {"aug_resized_crop_prob_and_width_height": (1.0, (40, 28))},
    "rotate": {"aug_rotate_prob_and_min_max": (1.0, (-1.0, 1.0))},
    "shear": {"aug_shear_prob_and_min_max": (1.0, (-1.0, 1.0))},
}
AXIS_ALIGNED = {"hflip", "vflip", "rotate90", "crop", "zoom", "scale", "translate", "resized_crop"}
TOL = 1.5  # pixels: nearest-neighbour masks against exactly transformed box coordinates


def everything_on() -> dict:
    hp = {f"aug_{name}_prob_and_min_max": (1.0, rng) for name, rng in RANGE_KEYS.items()}
    hp.update(aug_hflip_prob=1.0, aug_vflip_prob=1.0, aug_rotate90_prob=1.0)
    hp["aug_resized_crop_prob_and_width_height"] = (1.0, (24, 20))
    return hp


def one_object_sample(height, width, box):
    x1, y1, x2, y2 = box
    image = torch.randint(0, 256, (3, height, width), dtype=torch.uint8)
    mask = torch.zeros((1, height, width), dtype=torch.uint8)
    mask[0, y1:y2, x1:x2] = 1
    image[:, y1:y2, x1:x2] = torch.tensor([250, 30, 30], dtype=torch.uint8)[:, None, None]
    target = {
        "boxes": tv_tensors.BoundingBoxes(
            torch.tensor([box], dtype=torch.float32), format="XYXY", canvas_size=(height, width)
        ),
        "labels": torch.tensor([1]),
        "masks": tv_tensors.Mask(mask),
        "image_id": 7,
    }
    return tv_tensors.Image(image), target


@st.composite
def samples(draw):
    height, width = draw(st.integers(24, 48)), draw(st.integers(24, 48))
    w, h = draw(st.integers(6, width - 2)), draw(st.integers(6, height - 2))
    x1, y1 = draw(st.integers(0, width - w)), draw(st.integers(0, height - h))
    return height, width, (x1, y1, x1 + w, y1 + h)


@pytest.mark.parametrize("op", sorted(GEOMETRIC))
@settings(
    max_examples=30, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(sample=samples(), seed=st.integers(0, 2**31 - 1))
def test_boxes_follow_masks_under_geometric_ops(op, sample, seed):
    height, width, box = sample
    pipeline = build_train_transforms("detection", {**ALL_OFF, **GEOMETRIC[op]})
    torch.manual_seed(seed)
    image, target = pipeline(*one_object_sample(height, width, box))
    assert find_policy(pipeline).last_applied == [op]
    boxes, masks = target["boxes"], target["masks"]
    assert len(boxes) == len(target["labels"]) == len(masks) <= 1
    assert target["image_id"] == 7 and image.dtype == torch.float32
    assert tuple(masks.shape[-2:]) == tuple(image.shape[-2:]) == tuple(boxes.canvas_size)
    if not len(boxes):
        return
    x1, y1, x2, y2 = boxes[0].tolist()
    assert 0 <= x1 < x2 <= image.shape[-1] and 0 <= y1 < y2 <= image.shape[-2]
    if (x2 - x1) < 2 or (y2 - y1) < 2:
        return  # a sliver at the canvas edge: too thin for the pixel tolerance to mean anything
    mx1, my1, mx2, my2 = masks_to_boxes(masks)[0].tolist()
    assert masks.sum() > 0, "the box survived but its object vanished"
    # the mask lies inside the box ...
    assert mx1 >= x1 - TOL and my1 >= y1 - TOL and mx2 <= x2 + TOL and my2 <= y2 + TOL
    touches_edge = mx1 == 0 or my1 == 0 or mx2 == image.shape[-1] or my2 == image.shape[-2]
    if op in AXIS_ALIGNED or not touches_edge:
        # ... and the box is tight: an axis-aligned rectangle stays one, and for a rotated or
        # sheared one the box of its corners is its exact bounding box while fully visible
        assert x1 >= mx1 - TOL and y1 >= my1 - TOL and x2 <= mx2 + TOL and y2 <= my2 + TOL
    else:
        # clipped by the canvas, the clamped corner box may exceed the visible part, but not by much
        box_area, mask_box_area = (x2 - x1) * (y2 - y1), (mx2 - mx1) * (my2 - my1)
        assert box_area <= 2.5 * mask_box_area + 4 * (x2 - x1 + y2 - y1)


@settings(max_examples=15, deadline=None, database=None)
@given(sample=samples(), seed=st.integers(0, 2**31 - 1))
def test_all_ops_together_keep_counts_aligned_and_segmentation_boxes_tight(sample, seed):
    height, width, box = sample
    pipeline = build_train_transforms("instance_segmentation", everything_on())
    torch.manual_seed(seed)
    image, target = pipeline(*one_object_sample(height, width, box))
    assert len(target["boxes"]) == len(target["labels"]) == len(target["masks"])
    assert image.shape[-2:] == (20, 24)
    # instance segmentation recomputes boxes from the masks: exact, whatever happened
    assert torch.equal(target["boxes"].as_subclass(torch.Tensor), masks_to_boxes(target["masks"]))


def test_sanitize_drops_objects_cropped_away_with_their_labels_and_masks():
    # two objects in opposite corners; a small crop window can keep at most one of them
    image, target = one_object_sample(40, 40, (0, 0, 8, 8))
    mask2 = torch.zeros((1, 40, 40), dtype=torch.uint8)
    mask2[0, 32:40, 32:40] = 1
    target["boxes"] = tv_tensors.BoundingBoxes(
        torch.tensor([[0.0, 0, 8, 8], [32, 32, 40, 40]]), format="XYXY", canvas_size=(40, 40)
    )
    target["labels"] = torch.tensor([1, 2])
    target["masks"] = tv_tensors.Mask(torch.cat([target["masks"], mask2]))
    pipeline = build_train_transforms(
        "detection", {**ALL_OFF, "aug_crop_prob_and_min_max": (1.0, (0.1, 0.1))}
    )
    kept = set()
    for seed in range(30):
        torch.manual_seed(seed)
        _, out = pipeline(image, target)
        assert len(out["boxes"]) == len(out["labels"]) == len(out["masks"]) <= 1
        for label, mask in zip(out["labels"].tolist(), out["masks"], strict=True):
            assert mask.sum() > 0
            kept.add(label)
    assert kept == {1, 2}


def test_photometric_ops_leave_boxes_and_masks_alone():
    hp = {**ALL_OFF}
    for name in ("blur", "sharpen", "color", "brightness", "grayscale", "contrast", "noise"):
        hp[f"aug_{name}_prob_and_min_max"] = (1.0, RANGE_KEYS[name])
    image, target = one_object_sample(32, 40, (5, 6, 20, 30))
    pipeline = build_train_transforms("instance_segmentation", hp)
    torch.manual_seed(0)
    out_image, out = pipeline(image, target)
    assert len(find_policy(pipeline).last_applied) == 7
    assert torch.equal(out["boxes"].as_subclass(torch.Tensor), target["boxes"].as_subclass(torch.Tensor))
    assert torch.equal(out["masks"], target["masks"])
    assert not torch.allclose(out_image, F.to_dtype(image, torch.float32, scale=True))
    assert 0.0 <= out_image.min() and out_image.max() <= 1.0


def test_magnitude_mapping_brightness_and_grayscale():
    image = tv_tensors.Image(torch.full((3, 8, 8), 60, dtype=torch.uint8))
    image[0] = 100
    doubled = build_train_transforms("classification", {**ALL_OFF, "image_resized_width": -1,
                                                         "image_resized_height": -1,
                                                         "aug_brightness_prob_and_min_max": (1.0, (1.0, 1.0))})  # fmt: skip
    assert torch.allclose(doubled(image), F.to_dtype(image, torch.float32, scale=True) * 2, atol=1e-6)
    gray = build_train_transforms("classification", {**ALL_OFF, "image_resized_width": -1,
                                                      "image_resized_height": -1,
                                                      "aug_grayscale_prob_and_min_max": (1.0, (1.0, 1.0))})  # fmt: skip
    out = gray(image)
    assert torch.allclose(out[0], out[1]) and torch.allclose(out[1], out[2])


def count_ops(hp, calls=60):
    pipeline = build_train_transforms("detection", hp)
    policy = find_policy(pipeline)
    image, target = one_object_sample(32, 32, (4, 4, 20, 20))
    seen = []
    for seed in range(calls):
        torch.manual_seed(seed)
        pipeline(image, target)
        seen.append(list(policy.last_applied))
    return policy, seen


def test_strategy_all_with_probability_one_applies_every_op_in_order():
    policy, seen = count_ops({**everything_on(), "aug_strategy": "all"}, calls=5)
    assert len(policy.ops) == 17
    assert all(applied == [op.name for op in policy.ops] for applied in seen)


def test_strategy_one_applies_exactly_one_op_and_varies():
    _, seen = count_ops({**everything_on(), "aug_strategy": "one"})
    assert all(len(applied) == 1 for applied in seen)
    assert len({applied[0] for applied in seen}) >= 8


def test_strategy_one_honours_the_chosen_ops_probability():
    hp = {"aug_strategy": "one", "aug_hflip_prob": 0.5, "aug_vflip_prob": 0.5}
    _, seen = count_ops(hp, calls=200)
    assert all(len(applied) <= 1 for applied in seen)
    assert 60 < sum(len(applied) for applied in seen) < 140


def test_strategy_some_applies_random_shuffled_subsets():
    policy, seen = count_ops({**everything_on(), "aug_strategy": "some"})
    canonical = [op.name for op in policy.ops]
    sizes = {len(applied) for applied in seen}
    assert min(sizes) < 17 and max(sizes) > 1 and len(sizes) > 3
    assert all(len(set(applied)) == len(applied) for applied in seen)
    assert any(applied != sorted(applied, key=canonical.index) for applied in seen)


def test_zero_probability_ops_are_never_applied():
    _, seen = count_ops({"aug_hflip_prob": 0.0, "aug_rotate_prob_and_min_max": (0.0, (-1, 1))}, calls=10)
    assert seen == [[]] * 10


def test_eval_transforms_are_deterministic_and_have_no_policy():
    image, target = one_object_sample(30, 40, (3, 3, 25, 20))
    pipeline = build_eval_transforms("instance_segmentation", everything_on())
    assert not any(isinstance(t, AugmentPolicy) for t in pipeline.transforms)
    torch.manual_seed(1)
    a_image, a_target = pipeline(image, target)
    torch.manual_seed(2)
    b_image, b_target = pipeline(image, target)
    assert torch.equal(a_image, b_image) and torch.equal(a_target["masks"], b_target["masks"])
    assert torch.equal(a_image, F.to_dtype(image, torch.float32, scale=True))


def test_classification_sizes_and_center_crop():
    image = tv_tensors.Image(torch.zeros((3, 60, 80), dtype=torch.uint8))
    assert build_train_transforms("classification", {})(image).shape == (3, 224, 224)
    hp = {"image_resized_width": 40, "image_resized_height": 30, "eval_center_crop_ratio": 0.5}
    assert build_train_transforms("classification", hp)(image).shape == (3, 30, 40)
    # eval: keeps the central half of each side (a bright 30x40 centre block fills the output)
    image[:, 15:45, 20:60] = 255
    out = build_eval_transforms("classification", hp)(image)
    assert out.shape == (3, 30, 40) and out.dtype == torch.float32 and torch.all(out == 1.0)
    keep_width = build_eval_transforms(
        "classification", {"image_resized_width": -1, "image_resized_height": 16}
    )
    assert keep_width(image).shape == (3, 16, 80)


def test_a_fixed_size_pipeline_splits_after_its_deterministic_sizing():
    train = build_train_transforms("classification", {"image_resized_width": 40, "image_resized_height": 30})
    prefix, rest, size = fixed_size_prefix(train)
    assert size == (30, 40) and len(prefix.transforms) == 2
    assert isinstance(rest.transforms[0], AugmentPolicy)  # the random ops stay per epoch
    hp = {"image_resized_width": 40, "image_resized_height": 30, "eval_center_crop_ratio": 0.5}
    prefix, rest, size = fixed_size_prefix(build_eval_transforms("classification", hp, as_float=False))
    assert size == (30, 40) and rest is None
    image = tv_tensors.Image(torch.randint(0, 256, (3, 60, 80), dtype=torch.uint8))
    assert torch.equal(prefix(image), build_eval_transforms("classification", hp, as_float=False)(image))


def test_a_pipeline_that_keeps_a_side_of_the_input_has_no_fixed_size():
    keep_width = {"image_resized_width": -1, "image_resized_height": 16}
    assert fixed_size_prefix(build_eval_transforms("classification", keep_width)) is None
    assert fixed_size_prefix(build_train_transforms("classification", keep_width)) is None


def test_resize_to_the_size_an_image_has_returns_it_and_resizes_any_other():
    image = tv_tensors.Image(torch.randint(0, 256, (3, 30, 40), dtype=torch.uint8))
    resize = ResizeSides(40, 30)
    assert resize(image) is image
    assert resize(tv_tensors.Image(torch.zeros((3, 60, 80), dtype=torch.uint8))).shape == (3, 30, 40)


def test_detection_keeps_size_by_default_and_resizes_boxes_with_the_image():
    image, target = one_object_sample(30, 40, (4, 6, 20, 18))
    out_image, out = build_eval_transforms("detection", {})(image, target)
    assert out_image.shape == (3, 30, 40)
    out_image, out = build_eval_transforms(
        "detection", {"image_resized_width": 80, "image_resized_height": 60}
    )(image, target)
    assert out_image.shape == (3, 60, 80)
    assert out["boxes"].tolist() == [[8.0, 12.0, 40.0, 36.0]]


@pytest.mark.parametrize(
    ("hp", "message"),
    [
        ({"aug_strategy": "many"}, "Invalid aug_strategy 'many'. Choose one of: all, one, some"),
        ({"aug_hflip_prob": 1.5}, "aug_hflip_prob must be a probability"),
        (
            {"aug_blur_prob_and_min_max": (0.5, (-1, 1))},
            "aug_blur_prob_and_min_max: min and max must satisfy",
        ),
        ({"aug_zoom_prob_and_min_max": (0.5, (1, -1))}, "aug_zoom_prob_and_min_max: min and max"),
        ({"aug_zoom_prob_and_min_max": "0.5"}, "must look like (prob, (min, max))"),
        ({"aug_resized_crop_prob_and_width_height": (0.5, (0, 10))}, "width and height must be positive"),
    ],
)
def test_invalid_arguments_are_rejected_with_the_reason(hp, message):
    with pytest.raises(ValueError) as excinfo:
        resolve_aug(hp)
    assert message in str(excinfo.value)


def test_arguments_accept_lists_and_python_literal_strings():
    cfg = resolve_aug(
        {"aug_rotate_prob_and_min_max": "(0.5, (0, 1))", "aug_zoom_prob_and_min_max": [0.25, [-0.5, 0.5]]}
    )
    assert cfg.probs["rotate"] == 0.5 and cfg.ranges["rotate"] == (0.0, 1.0)
    assert cfg.probs["zoom"] == 0.25 and cfg.ranges["zoom"] == (-0.5, 0.5)
    assert cfg.probs["hflip"] == 0.5 and cfg.strategy == "all"  # spec defaults


@pytest.mark.parametrize("task", ["classification", "detection", "instance_segmentation"])
def test_preview_draws_the_training_view(tmp_path, task):
    root = generate(tmp_path / task, task, num_images=4, image_size=48)
    hp = {
        "aug_rotate_prob_and_min_max": (1.0, (-1, 1)),
        "image_resized_width": 40,
        "image_resized_height": 36,
    }
    first = preview(root, task, 0, hp, seed=3)
    assert first.size == (40, 36) and first.mode == "RGB"
    assert np.array_equal(np.asarray(first), np.asarray(preview(root, task, 0, hp, seed=3)))
    with pytest.raises(ValueError, match="index 99 is out of range"):
        preview(root, task, 99, hp)
