"""The v1.5 `POST /train` arguments against the spec's table: defaults, constraints, resume/fine-tune."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.errors import ValidationError
from contracts.v15_arguments import (
    ALGORITHMS,
    ARGS,
    DETECTION_BACKBONES,
    TASKS,
    VIEW_KEYS,
    arguments_for,
    hyperparameters_view,
    parse_source,
    resolve_train_args,
    to_sagemaker_hyperparameters,
)

JOB_ID = "20200106173410-49c73c67-8e0e-4061-a782-39b8b1cc8d8a"
BASE = {
    "classification": {"task": "classification", "data_dir": "/data/catdog", "algorithm": "resnet18"},
    "detection": {
        "task": "detection",
        "data_dir": "/data/voc",
        "algorithm": "faster_rcnn",
        "backbone": "resnet50",
    },
    "instance_segmentation": {
        "task": "instance_segmentation",
        "data_dir": "/data/coco",
        "algorithm": "mask_rcnn",
    },
}
COMMON_ROWS = [
    "task",
    "data_dir",
    "resume_job_id_and_epoch",
    "finetune_job_id_and_epoch",
    "num_workers",
    "visible_devices",
    "needs_freeze_bn",
    "image_resized_width",
    "image_resized_height",
    "image_min_side",
    "image_max_side",
    "aug_strategy",
    "aug_hflip_prob",
    "aug_vflip_prob",
    "aug_rotate90_prob",
    "aug_crop_prob_and_min_max",
    "aug_zoom_prob_and_min_max",
    "aug_scale_prob_and_min_max",
    "aug_translate_prob_and_min_max",
    "aug_rotate_prob_and_min_max",
    "aug_shear_prob_and_min_max",
    "aug_blur_prob_and_min_max",
    "aug_sharpen_prob_and_min_max",
    "aug_color_prob_and_min_max",
    "aug_brightness_prob_and_min_max",
    "aug_grayscale_prob_and_min_max",
    "aug_contrast_prob_and_min_max",
    "aug_noise_prob_and_min_max",
    "aug_resized_crop_prob_and_width_height",
    "batch_size",
    "learning_rate",
    "momentum",
    "weight_decay",
    "clip_grad_base_and_max",
    "step_lr_sizes",
    "step_lr_gamma",
    "num_batches_to_display",
    "num_epochs_to_validate",
    "num_epochs_to_finish",
    "max_num_checkpoints",
]
RPN_ROWS = [
    "backbone_pretrained",
    "backbone_num_frozen_levels",
    "train_rpn_pre_nms_top_n",
    "train_rpn_post_nms_top_n",
    "eval_rpn_pre_nms_top_n",
    "eval_rpn_post_nms_top_n",
    "num_anchor_samples_per_batch",
    "num_proposal_samples_per_batch",
    "num_detections_per_image",
    "proposal_nms_threshold",
    "detection_nms_threshold",
]


def form(task: str, /, **extra: str) -> dict[str, str]:
    return {**BASE[task], **extra}


def reject(request: dict, **kwargs) -> ValidationError:
    with pytest.raises(ValidationError) as caught:
        resolve_train_args(request, **kwargs)
    return caught.value


# ---------------------------------------------------------------- the table mirrors the spec


def test_table_has_every_spec_row_per_task():
    assert [a.name for a in arguments_for("classification")] == COMMON_ROWS + [
        "algorithm",
        "pretrained",
        "num_frozen_levels",
        "eval_center_crop_ratio",
    ]
    assert [a.name for a in arguments_for("detection")] == COMMON_ROWS + [
        "algorithm",
        "backbone",
        "anchor_sizes",
    ] + RPN_ROWS
    assert [a.name for a in arguments_for("instance_segmentation")] == COMMON_ROWS + ["algorithm"] + RPN_ROWS


def test_overwritable_columns_match_the_spec():
    columns = {(a.name, a.overwritable_resume, a.overwritable_finetune) for a in ARGS}
    for name, resume, finetune in [
        ("task", False, False),
        ("data_dir", False, True),
        ("resume_job_id_and_epoch", True, False),
        ("finetune_job_id_and_epoch", False, True),
        ("learning_rate", False, True),
        ("momentum", False, True),
        ("weight_decay", False, True),
        ("algorithm", False, False),
        ("backbone", False, False),
        ("anchor_sizes", False, False),
        ("backbone_pretrained", False, False),
        ("pretrained", False, False),
        ("batch_size", True, True),
        ("aug_noise_prob_and_min_max", True, True),
    ]:
        assert (name, resume, finetune) in columns


@pytest.mark.parametrize("task", TASKS)
def test_every_default_passes_its_own_validator(task):
    for algorithm in ALGORITHMS[task]:
        for arg in arguments_for(task):
            if not arg.required:
                default = arg.default_for(task, algorithm)
                assert arg.validator(arg.name, default) == default, arg.name


# ---------------------------------------------------------------- defaults


@pytest.mark.parametrize(
    ("request_form", "expected"),
    [
        (
            BASE["classification"],
            {
                "batch_size": 8,
                "learning_rate": 0.008,
                "step_lr_sizes": [6, 8],
                "num_epochs_to_finish": 10,
                "needs_freeze_bn": False,
                "image_resized_width": 224,
                "image_resized_height": 224,
                "image_min_side": -1,
                "image_max_side": -1,
                "pretrained": True,
                "num_frozen_levels": 2,
                "eval_center_crop_ratio": 1.0,
                "num_workers": 2,
                "visible_devices": None,
                "aug_strategy": "all",
                "aug_hflip_prob": 0.5,
                "aug_crop_prob_and_min_max": [0.0, [0.0, 1.0]],
                "aug_zoom_prob_and_min_max": [0.0, [-1.0, 1.0]],
                "aug_resized_crop_prob_and_width_height": [0.0, [224, 224]],
                "momentum": 0.9,
                "weight_decay": 0.0005,
                "clip_grad_base_and_max": None,
                "step_lr_gamma": 0.1,
                "num_batches_to_display": 20,
                "num_epochs_to_validate": 1,
                "max_num_checkpoints": 5,
            },
        ),
        (
            BASE["detection"],
            {
                "batch_size": 2,
                "learning_rate": 0.002,
                "step_lr_sizes": [10, 14],
                "num_epochs_to_finish": 16,
                "needs_freeze_bn": True,
                "image_resized_width": -1,
                "image_min_side": 600,
                "image_max_side": 1000,
                "anchor_sizes": [128, 256, 512],
                "backbone_pretrained": True,
                "backbone_num_frozen_levels": 2,
                "train_rpn_pre_nms_top_n": 12000,
                "train_rpn_post_nms_top_n": 2000,
                "eval_rpn_pre_nms_top_n": 6000,
                "eval_rpn_post_nms_top_n": 1000,
                "num_anchor_samples_per_batch": 256,
                "num_proposal_samples_per_batch": 128,
                "num_detections_per_image": 100,
                "proposal_nms_threshold": 0.7,
                "detection_nms_threshold": 0.5,
            },
        ),
        (
            {**BASE["detection"], "algorithm": "fpn"},
            {"anchor_sizes": [128], "train_rpn_pre_nms_top_n": 2000, "eval_rpn_pre_nms_top_n": 1000},
        ),
        (
            BASE["instance_segmentation"],
            {
                "batch_size": 1,
                "learning_rate": 0.001,
                "step_lr_sizes": [20, 28],
                "num_epochs_to_finish": 32,
                "needs_freeze_bn": True,
                "image_min_side": 800,
                "image_max_side": 1333,
                "backbone_pretrained": True,
                "train_rpn_pre_nms_top_n": 2000,
                "eval_rpn_pre_nms_top_n": 1000,
            },
        ),
    ],
)
def test_defaults_per_task_and_algorithm(request_form, expected):
    hyperparameters = resolve_train_args(request_form)["hyperparameters"]
    for name, value in expected.items():
        assert hyperparameters[name] == value, name
        assert type(hyperparameters[name]) is type(value), name


def test_new_job_result_shape():
    resolved = resolve_train_args(form("detection"))
    assert resolved["task"] == "detection"
    assert resolved["data_dir"] == "/data/voc"
    assert resolved["resume"] is None and resolved["finetune"] is None
    hyperparameters = resolved["hyperparameters"]
    assert hyperparameters["algorithm"] == "faster_rcnn" and hyperparameters["backbone"] == "resnet50"
    assert not {"task", "data_dir", "resume_job_id_and_epoch"} & set(hyperparameters)
    assert json.loads(json.dumps(hyperparameters)) == hyperparameters  # travels in job.json as is


def test_defaulted_step_sizes_drop_steps_after_the_last_epoch():
    hyperparameters = resolve_train_args(form("classification", num_epochs_to_finish="7"))["hyperparameters"]
    assert hyperparameters["step_lr_sizes"] == [6]
    explicit = reject(form("classification", num_epochs_to_finish="7", step_lr_sizes="[6, 8]"))
    assert explicit.field == "step_lr_sizes"
    assert "[0, num_epochs_to_finish=7]" in explicit.message


# ---------------------------------------------------------------- valid full requests


def test_full_classification_request():
    request_form = form(
        "classification",
        algorithm="efficientnet_b0",
        num_workers="0",
        visible_devices="",
        needs_freeze_bn="true",
        image_resized_width="64",
        image_resized_height="48",
        image_min_side="32",
        image_max_side="64",
        aug_strategy="some",
        aug_hflip_prob="1",
        aug_vflip_prob="0.25",
        aug_rotate90_prob="0",
        aug_crop_prob_and_min_max="(0.5, (0, 1))",
        aug_zoom_prob_and_min_max="(0.5, (-0.5, 0.5))",
        aug_scale_prob_and_min_max="[0.1, [-1, 1]]",
        aug_translate_prob_and_min_max="(0.2, (-0.3, 0.3))",
        aug_rotate_prob_and_min_max="(0.2, (-1.0, 1.0))",
        aug_shear_prob_and_min_max="(0.2, (0, 0))",
        aug_blur_prob_and_min_max="(0.2, (0.1, 0.9))",
        aug_sharpen_prob_and_min_max="(0.2, (0.1, 0.9))",
        aug_color_prob_and_min_max="(0.2, (-0.1, 0.9))",
        aug_brightness_prob_and_min_max="(0.2, (-0.1, 0.9))",
        aug_grayscale_prob_and_min_max="(1, (1, 1))",
        aug_contrast_prob_and_min_max="(0.2, (-0.1, 0.9))",
        aug_noise_prob_and_min_max="(0.2, (0.1, 0.9))",
        aug_resized_crop_prob_and_width_height="(0.5, (32, 48))",
        batch_size="4",
        learning_rate="0.01",
        momentum="1",
        weight_decay="0.0001",
        clip_grad_base_and_max="('norm', 10)",
        step_lr_sizes="[1]",
        step_lr_gamma="0",
        num_batches_to_display="5",
        num_epochs_to_validate="2",
        num_epochs_to_finish="2",
        max_num_checkpoints="1",
        pretrained="False",
        num_frozen_levels="0",
        eval_center_crop_ratio="0.875",
    )
    resolved = resolve_train_args(request_form)
    hyperparameters = resolved["hyperparameters"]
    assert hyperparameters["algorithm"] == "efficientnet_b0"
    assert hyperparameters["visible_devices"] == []
    assert hyperparameters["needs_freeze_bn"] is True
    assert hyperparameters["aug_crop_prob_and_min_max"] == [0.5, [0.0, 1.0]]
    assert hyperparameters["aug_scale_prob_and_min_max"] == [0.1, [-1.0, 1.0]]
    assert hyperparameters["aug_resized_crop_prob_and_width_height"] == [0.5, [32, 48]]
    assert hyperparameters["clip_grad_base_and_max"] == ["norm", 10.0]
    assert hyperparameters["step_lr_sizes"] == [1]
    assert hyperparameters["step_lr_gamma"] == 0.0
    assert hyperparameters["pretrained"] is False
    assert hyperparameters["eval_center_crop_ratio"] == 0.875
    assert hyperparameters["momentum"] == 1.0


def test_full_detection_request():
    request_form = form(
        "detection",
        algorithm="fpn",
        backbone="resnext50_32x4d",
        visible_devices="[0, 1]",
        image_min_side="32",
        image_max_side="64",
        anchor_sizes="[2, 16, 64]",
        backbone_pretrained="false",
        backbone_num_frozen_levels="5",
        train_rpn_pre_nms_top_n="300",
        train_rpn_post_nms_top_n="200",
        eval_rpn_pre_nms_top_n="100",
        eval_rpn_post_nms_top_n="50",
        num_anchor_samples_per_batch="64",
        num_proposal_samples_per_batch="32",
        num_detections_per_image="10",
        proposal_nms_threshold="1",
        detection_nms_threshold="0",
        clip_grad_base_and_max="('value', 0.5)",
        num_epochs_to_finish="1",
        step_lr_sizes="[]",
    )
    hyperparameters = resolve_train_args(request_form, device_count=2)["hyperparameters"]
    assert hyperparameters["backbone"] == "resnext50_32x4d"
    assert hyperparameters["visible_devices"] == [0, 1]
    assert hyperparameters["anchor_sizes"] == [2, 16, 64]
    assert hyperparameters["backbone_pretrained"] is False
    assert hyperparameters["train_rpn_pre_nms_top_n"] == 300
    assert hyperparameters["proposal_nms_threshold"] == 1.0
    assert hyperparameters["detection_nms_threshold"] == 0.0
    assert hyperparameters["clip_grad_base_and_max"] == ["value", 0.5]
    assert hyperparameters["step_lr_sizes"] == []


def test_full_instance_segmentation_request():
    request_form = form(
        "instance_segmentation",
        visible_devices="None",
        image_min_side="-1",
        image_max_side="-1",
        backbone_pretrained="0",
        num_detections_per_image="5",
        batch_size="2",
        num_epochs_to_finish="3",
        step_lr_sizes="(2, 3)",
        # Not instance segmentation arguments: tolerated and ignored, even when malformed.
        backbone="not-a-backbone",
        anchor_sizes="xyz",
        pretrained="maybe",
        callback_url="http://example.com",
    )
    hyperparameters = resolve_train_args(request_form)["hyperparameters"]
    assert hyperparameters["visible_devices"] is None
    assert hyperparameters["backbone_pretrained"] is False
    assert hyperparameters["step_lr_sizes"] == [2, 3]
    assert hyperparameters["num_detections_per_image"] == 5
    assert not {"backbone", "anchor_sizes", "pretrained", "callback_url"} & set(hyperparameters)


def test_detection_sizes_small_enough_for_tiny_images():
    hyperparameters = resolve_train_args(
        form("detection", image_min_side="32", image_max_side="64", anchor_sizes="[8, 16, 32]")
    )["hyperparameters"]
    assert hyperparameters["anchor_sizes"] == [8, 16, 32]


# ---------------------------------------------------------------- rejections


REJECTED = [
    # (task, field, value, part of the expectation)
    # type
    ("classification", "batch_size", "2.5", "must be an integer in [1, Inf]"),
    ("classification", "batch_size", "abc", "must be an integer in [1, Inf]"),
    ("classification", "learning_rate", "fast", "must be a number in (0, 1]"),
    ("classification", "learning_rate", "nan", "must be a number in (0, 1]"),
    ("classification", "needs_freeze_bn", "maybe", "must be True or False"),
    ("classification", "pretrained", "yes", "must be True or False"),
    ("detection", "backbone_pretrained", "2", "must be True or False"),
    ("classification", "step_lr_sizes", "[6.5]", "must be a list of 0 to 5 integers"),
    ("classification", "aug_crop_prob_and_min_max", "(0.5, 0.1)", "must be (prob, (min, max))"),
    ("classification", "aug_crop_prob_and_min_max", "0.5", "must be (prob, (min, max))"),
    ("classification", "aug_crop_prob_and_min_max", "(0.5, (0, 1), 2)", "must be (prob, (min, max))"),
    ("classification", "aug_crop_prob_and_min_max", "('a', (0, 1))", "must be (prob, (min, max))"),
    (
        "classification",
        "aug_resized_crop_prob_and_width_height",
        "(0.5, (1.5, 2))",
        "(prob, (width, height))",
    ),
    ("classification", "clip_grad_base_and_max", "('norm', 'big')", "None or (base, max)"),
    ("classification", "visible_devices", "[0.5]", "None, empty (CPU) or a list"),
    (
        "classification",
        "aug_zoom_prob_and_min_max",
        "__import__('os').system('x')",
        "must be (prob, (min, max))",
    ),
    # closed and open range ends
    ("classification", "batch_size", "0", "must be an integer in [1, Inf]"),
    ("classification", "num_workers", "-1", "must be an integer in [0, Inf]"),
    ("classification", "learning_rate", "0", "must be a number in (0, 1]"),
    ("classification", "learning_rate", "1.5", "must be a number in (0, 1]"),
    ("classification", "momentum", "0", "must be a number in (0, 1]"),
    ("classification", "weight_decay", "-0.1", "must be a number in (0, 1]"),
    ("classification", "step_lr_gamma", "1.01", "must be a number in [0, 1]"),
    ("classification", "aug_hflip_prob", "1.5", "must be a number in [0, 1]"),
    ("classification", "aug_vflip_prob", "-0.1", "must be a number in [0, 1]"),
    ("classification", "aug_rotate90_prob", "inf", "must be a number in [0, 1]"),
    ("classification", "eval_center_crop_ratio", "0", "must be a number in (0, 1]"),
    ("classification", "num_frozen_levels", "6", "must be an integer in [0, 5]"),
    ("detection", "backbone_num_frozen_levels", "-1", "must be an integer in [0, 5]"),
    ("classification", "num_batches_to_display", "0", "must be an integer in [1, Inf]"),
    ("classification", "num_epochs_to_finish", "0", "must be an integer in [1, Inf]"),
    ("classification", "num_epochs_to_validate", "0", "must be an integer in [1, Inf]"),
    ("classification", "max_num_checkpoints", "0", "must be an integer in [1, Inf]"),
    ("detection", "train_rpn_pre_nms_top_n", "0", "must be an integer in [1, Inf]"),
    ("detection", "train_rpn_post_nms_top_n", "-5", "must be an integer in [1, Inf]"),
    ("detection", "eval_rpn_pre_nms_top_n", "0", "must be an integer in [1, Inf]"),
    ("detection", "eval_rpn_post_nms_top_n", "0", "must be an integer in [1, Inf]"),
    ("detection", "num_anchor_samples_per_batch", "0", "must be an integer in [1, Inf]"),
    ("detection", "num_proposal_samples_per_batch", "0", "must be an integer in [1, Inf]"),
    ("detection", "num_detections_per_image", "0", "must be an integer in [1, Inf]"),
    ("detection", "proposal_nms_threshold", "1.1", "must be a number in [0, 1]"),
    ("detection", "detection_nms_threshold", "-0.1", "must be a number in [0, 1]"),
    ("instance_segmentation", "proposal_nms_threshold", "2", "must be a number in [0, 1]"),
    # {(0, Inf], -1}
    ("classification", "image_resized_width", "0", "must be -1 or an integer in (0, Inf]"),
    ("classification", "image_resized_height", "-2", "must be -1 or an integer in (0, Inf]"),
    ("detection", "image_min_side", "0", "must be -1 or an integer in (0, Inf]"),
    ("detection", "image_max_side", "-3", "must be -1 or an integer in (0, Inf]"),
    # enums
    ("classification", "task", "segmentation", "one of: classification, detection, instance_segmentation"),
    ("classification", "algorithm", "vgg16", "one of: mobilenet_v2, googlenet"),
    ("classification", "algorithm", "faster_rcnn", "one of: mobilenet_v2"),
    ("detection", "algorithm", "mask_rcnn", "one of: faster_rcnn, fpn"),
    ("instance_segmentation", "algorithm", "fpn", "one of: mask_rcnn"),
    ("detection", "backbone", "vgg16", "one of: resnet18, resnet34"),
    ("classification", "aug_strategy", "many", "one of: all, one, some"),
    ("classification", "clip_grad_base_and_max", "('l2', 10)", "base one of: value, norm"),
    ("classification", "clip_grad_base_and_max", "('norm', 0)", "max in (0, Inf]"),
    # list length and elements
    ("classification", "step_lr_sizes", "[1, 2, 3, 4, 5, 6]", "a list of 0 to 5 integers in [0, Inf]"),
    ("classification", "step_lr_sizes", "[-1]", "a list of 0 to 5 integers in [0, Inf]"),
    ("detection", "anchor_sizes", "[]", "a list of 1 to 5 integers in [2, Inf]"),
    ("detection", "anchor_sizes", "[1]", "a list of 1 to 5 integers in [2, Inf]"),
    ("detection", "anchor_sizes", "[8, 16, 32, 64, 128, 256]", "a list of 1 to 5 integers"),
    ("classification", "visible_devices", "[-1]", "distinct device indices >= 0"),
    ("classification", "visible_devices", "[0, 0]", "distinct device indices >= 0"),
    # prob and pair values
    ("classification", "aug_crop_prob_and_min_max", "(1.5, (0, 1))", "prob in [0, 1]"),
    ("classification", "aug_crop_prob_and_min_max", "(0.5, (-0.5, 1))", "numbers in [0, 1]"),
    ("classification", "aug_zoom_prob_and_min_max", "(0.5, (-2, 1))", "numbers in [-1, 1]"),
    ("classification", "aug_brightness_prob_and_min_max", "(0.5, (0.5, -0.5))", "min <= max"),
    ("classification", "aug_noise_prob_and_min_max", "(0.5, (0.9, 0.1))", "min <= max"),
    ("classification", "aug_resized_crop_prob_and_width_height", "(0.5, (0, 224))", "integers in (0, Inf]"),
    # cross-field
    ("detection", "image_min_side", "1200", "(0, image_max_side=1000]"),
    ("classification", "num_epochs_to_validate", "11", "[1, num_epochs_to_finish=10]"),
    ("detection", "step_lr_sizes", "[10, 17]", "[0, num_epochs_to_finish=16]"),
    ("detection", "anchor_sizes", "[128, 2000]", "[2, image_max_side=1000]"),
    # data_dir
    ("classification", "data_dir", "", "a path or s3:// URI"),
    ("classification", "data_dir", "/data/\x00x", "a path or s3:// URI"),
    ("classification", "data_dir", "/" + "a" * 2000, "a path or s3:// URI"),
]


@pytest.mark.parametrize(("task", "field", "value", "expected"), REJECTED)
def test_rejected_values_name_the_argument_and_the_problem(task, field, value, expected):
    error = reject(form(task, **{field: value}))
    assert error.field == field
    assert error.message.startswith(f"Invalid '{field}': must be ")
    assert expected in error.message
    assert "; got '" in error.message


@pytest.mark.parametrize(
    ("task", "field", "value"),
    [
        ("classification", "learning_rate", "1"),
        ("classification", "step_lr_gamma", "0"),
        ("classification", "step_lr_gamma", "1"),
        ("classification", "aug_hflip_prob", "0"),
        ("classification", "num_workers", "0"),
        ("classification", "num_frozen_levels", "5"),
        ("classification", "image_resized_width", "-1"),
        ("classification", "image_resized_width", "1"),
        ("detection", "image_min_side", "1000"),
        ("detection", "anchor_sizes", "[2, 1000]"),
        ("detection", "step_lr_sizes", "[0, 16]"),
        ("classification", "num_epochs_to_validate", "10"),
        ("classification", "clip_grad_base_and_max", "None"),
        ("classification", "clip_grad_base_and_max", "('value', 1e999)"),
        ("classification", "step_lr_sizes", "[1, 2, 3, 4, 5]"),
    ],
)
def test_boundary_values_are_accepted(task, field, value):
    resolve_train_args(form(task, **{field: value}))


@pytest.mark.parametrize(
    ("task", "field"),
    [
        ("classification", "task"),
        ("classification", "data_dir"),
        ("classification", "algorithm"),
        ("detection", "algorithm"),
        ("detection", "backbone"),
        ("instance_segmentation", "algorithm"),
    ],
)
def test_missing_required_argument(task, field):
    request_form = dict(BASE[task])
    del request_form[field]
    error = reject(request_form)
    assert error.field == field
    allowed = {
        "task": TASKS,
        "algorithm": ALGORITHMS[task],
        "backbone": DETECTION_BACKBONES,
    }.get(field)
    listed = "; one of: " + ", ".join(allowed) if allowed else ""  # a required choice names its values
    assert error.message == f"Invalid '{field}': required{listed}"


def test_cross_field_conflict_names_the_argument_the_user_gave():
    error = reject(form("detection", image_max_side="500"))  # default image_min_side is 600
    assert error.field == "image_max_side"
    assert "[image_min_side=600, Inf]" in error.message

    error = reject(form("detection", image_min_side="32", image_max_side="64"))  # default anchors 128..512
    assert error.field == "image_max_side"
    assert "anchor_sizes is [128, 256, 512]" in error.message

    error = reject(form("detection", num_epochs_to_finish="12", step_lr_sizes="[10, 14]"))
    assert error.field == "step_lr_sizes"

    error = reject(form("classification", num_epochs_to_validate="3", num_epochs_to_finish="2"))
    assert error.field == "num_epochs_to_validate"
    assert "[1, num_epochs_to_finish=2]" in error.message


def test_image_max_side_unconstrained_allows_any_anchor():
    hyperparameters = resolve_train_args(form("detection", image_max_side="-1", anchor_sizes="[4096]"))[
        "hyperparameters"
    ]
    assert hyperparameters["anchor_sizes"] == [4096]


def test_visible_devices_bounded_by_device_count_when_known():
    assert resolve_train_args(form("classification", visible_devices="[0, 1]"), device_count=2)
    error = reject(form("classification", visible_devices="[0, 2]"), device_count=2)
    assert error.field == "visible_devices"
    assert "[0, 2)" in error.message
    # Unknown device count: only the lower bound holds.
    assert resolve_train_args(form("classification", visible_devices="[7]"))["hyperparameters"][
        "visible_devices"
    ] == [7]


@settings(max_examples=150, deadline=None)
@given(
    # The source arguments are excluded: a valid one needs a source job (see the resume tests).
    field=st.sampled_from([a.name for a in arguments_for("detection") if "job_id" not in a.name]),
    value=st.text(max_size=60),
)
def test_arbitrary_text_is_either_accepted_or_rejected_as_validation_error(field, value):
    try:
        resolve_train_args(form("detection", **{field: value}))
    except ValidationError as error:
        assert error.message.startswith("Invalid '")


# ---------------------------------------------------------------- resume and fine-tune


def source_job(task: str = "detection", **extra: str) -> dict:
    resolved = resolve_train_args(form(task, batch_size="4", learning_rate="0.004", **extra))
    return {
        "job_id": JOB_ID,
        "task": resolved["task"],
        "data_dir": resolved["data_dir"],
        # The record comes back from JSON storage: tuples are lists, exactly as resolved.
        "hyperparameters": json.loads(json.dumps(resolved["hyperparameters"])),
    }


RESUME = f'("{JOB_ID}", 2)'


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f'("{JOB_ID}", 2)', ("resume", JOB_ID, 2)),
        (f"['{JOB_ID}', 1]", ("resume", JOB_ID, 1)),
        ("('00000001', 3)", ("resume", "00000001", 3)),
        ("None", None),
    ],
)
def test_parse_source(text, expected):
    assert parse_source({"resume_job_id_and_epoch": text}) == expected


def test_parse_source_finetune_and_none():
    assert parse_source({"finetune_job_id_and_epoch": f"('{JOB_ID}', 5)"}) == ("finetune", JOB_ID, 5)
    assert parse_source({"task": "detection"}) is None
    assert parse_source(
        {"resume_job_id_and_epoch": "None", "finetune_job_id_and_epoch": f"('{JOB_ID}', 5)"}
    ) == (
        "finetune",
        JOB_ID,
        5,
    )


@pytest.mark.parametrize(
    "text",
    [
        JOB_ID,
        f"('{JOB_ID}', 0)",
        f"('{JOB_ID}', -1)",
        f"('{JOB_ID}', 1.5)",
        f"('{JOB_ID}', True)",
        f"('{JOB_ID}',)",
        f"('{JOB_ID}', 1, 2)",
        "('../../etc', 1)",
        "('a/b', 1)",
        "('', 1)",
        "(1, 2)",
        f"('{'x' * 200}', 1)",
    ],
)
@pytest.mark.parametrize("field", ["resume_job_id_and_epoch", "finetune_job_id_and_epoch"])
def test_bad_job_id_and_epoch_rejected(field, text):
    with pytest.raises(ValidationError) as caught:
        parse_source({field: text})
    assert caught.value.field == field
    assert 'must be None or ("<job id>", <epoch >= 1>)' in caught.value.message


def test_resume_and_finetune_together_rejected():
    request_form = {"resume_job_id_and_epoch": RESUME, "finetune_job_id_and_epoch": RESUME}
    with pytest.raises(ValidationError) as caught:
        parse_source(request_form)
    assert caught.value.field == "finetune_job_id_and_epoch"
    assert "resume_job_id_and_epoch" in caught.value.message
    with pytest.raises(ValidationError):
        resolve_train_args(request_form, source_job())


def test_resume_inherits_everything_not_given():
    source = source_job(anchor_sizes="[64, 128]", num_epochs_to_finish="12", step_lr_sizes="[8]")
    resolved = resolve_train_args({"resume_job_id_and_epoch": RESUME}, source)
    assert resolved["resume"] == {"job_id": JOB_ID, "epoch": 2}
    assert resolved["finetune"] is None
    assert resolved["task"] == "detection" and resolved["data_dir"] == "/data/voc"
    assert resolved["hyperparameters"] == source["hyperparameters"]
    assert resolved["hyperparameters"]["batch_size"] == 4  # the source's, not the default 2


def test_resume_accepts_overwritable_changes_and_unchanged_fixed_ones():
    source = source_job()
    resolved = resolve_train_args(
        {
            "resume_job_id_and_epoch": RESUME,
            "task": "detection",
            "algorithm": "faster_rcnn",
            "learning_rate": "0.004",  # same as the source: allowed
            "batch_size": "1",
            "num_epochs_to_finish": "20",
        },
        source,
    )
    assert resolved["hyperparameters"]["batch_size"] == 1
    assert resolved["hyperparameters"]["num_epochs_to_finish"] == 20
    assert resolved["hyperparameters"]["learning_rate"] == 0.004


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("learning_rate", "0.01"),
        ("momentum", "0.5"),
        ("weight_decay", "0.001"),
        ("data_dir", "/data/other"),
        ("algorithm", "fpn"),
        ("backbone", "resnet18"),
        ("anchor_sizes", "[64]"),
        ("backbone_pretrained", "False"),
        ("task", "classification"),
    ],
)
def test_resume_rejects_changing_a_fixed_argument(field, value):
    error = reject({"resume_job_id_and_epoch": RESUME, field: value}, source_job=source_job())
    assert error.field == field
    assert "cannot be changed when resuming a job" in error.message


def test_resume_still_validates_given_values():
    error = reject({"resume_job_id_and_epoch": RESUME, "batch_size": "0"}, source_job=source_job())
    assert error.field == "batch_size"
    error = reject({"resume_job_id_and_epoch": RESUME, "num_epochs_to_finish": "12"}, source_job=source_job())
    assert error.field == "num_epochs_to_finish"  # below the inherited step_lr_sizes [10, 14]


def test_finetune_allows_data_dir_and_learning_rate_changes():
    finetune = f"('{JOB_ID}', 3)"
    resolved = resolve_train_args(
        {
            "finetune_job_id_and_epoch": finetune,
            "task": "detection",
            "data_dir": "/data/new",
            "learning_rate": "0.0001",
            "momentum": "0.8",
        },
        source_job(),
    )
    assert resolved["finetune"] == {"job_id": JOB_ID, "epoch": 3}
    assert resolved["resume"] is None
    assert resolved["data_dir"] == "/data/new"
    assert resolved["hyperparameters"]["learning_rate"] == 0.0001
    assert resolved["hyperparameters"]["momentum"] == 0.8
    assert resolved["hyperparameters"]["batch_size"] == 4  # inherited


@pytest.mark.parametrize(
    ("task", "field", "value"),
    [
        ("detection", "algorithm", "fpn"),
        ("detection", "backbone", "resnet101"),
        ("detection", "anchor_sizes", "[32]"),
        ("detection", "task", "instance_segmentation"),
        ("classification", "algorithm", "resnet50"),
        ("classification", "pretrained", "False"),
    ],
)
def test_finetune_rejects_changing_the_model(task, field, value):
    error = reject(
        {"finetune_job_id_and_epoch": f"('{JOB_ID}', 1)", field: value}, source_job=source_job(task)
    )
    assert error.field == field
    assert "cannot be changed when fine-tuning a job" in error.message


def test_source_job_must_match_the_form():
    with pytest.raises(ValueError):
        resolve_train_args({"resume_job_id_and_epoch": RESUME})
    with pytest.raises(ValueError):
        resolve_train_args(form("detection"), source_job())
    with pytest.raises(ValueError):
        resolve_train_args({"resume_job_id_and_epoch": "('other-job', 1)"}, source_job())


# ---------------------------------------------------------------- views


SPEC_VIEW = {
    "classification": [
        "image_resized_width",
        "image_resized_height",
        "image_min_side",
        "image_max_side",
        "batch_size",
        "learning_rate",
        "momentum",
        "weight_decay",
        "step_lr_sizes",
        "step_lr_gamma",
        "num_epochs_to_validate",
        "num_epochs_to_finish",
        "pretrained",
        "num_frozen_levels",
        "eval_center_crop_ratio",
    ],
    "detection": [
        "image_resized_width",
        "image_resized_height",
        "image_min_side",
        "image_max_side",
        "batch_size",
        "learning_rate",
        "momentum",
        "weight_decay",
        "step_lr_sizes",
        "step_lr_gamma",
        "num_epochs_to_validate",
        "num_epochs_to_finish",
        "anchor_sizes",
        "backbone_pretrained",
        "backbone_num_frozen_levels",
        "proposal_nms_threshold",
        "detection_nms_threshold",
    ],
    "instance_segmentation": [
        "image_resized_width",
        "image_resized_height",
        "image_min_side",
        "image_max_side",
        "batch_size",
        "learning_rate",
        "momentum",
        "weight_decay",
        "step_lr_sizes",
        "step_lr_gamma",
        "num_epochs_to_validate",
        "num_epochs_to_finish",
    ],
}


@pytest.mark.parametrize("task", TASKS)
def test_hyperparameters_view_has_the_spec_keys_in_order(task):
    hyperparameters = resolve_train_args(form(task, batch_size="3"))["hyperparameters"]
    view = hyperparameters_view(task, hyperparameters)
    assert list(view) == SPEC_VIEW[task] == list(VIEW_KEYS[task])
    assert view["batch_size"] == 3
    assert all(view[name] == hyperparameters[name] for name in view)


def test_hyperparameters_view_fills_keys_an_older_job_lacks():
    view = hyperparameters_view("detection", {"algorithm": "fpn", "batch_size": 5})
    assert view["batch_size"] == 5
    assert view["anchor_sizes"] == [128]
    assert view["image_min_side"] == 600


@pytest.mark.parametrize("task", TASKS)
def test_sagemaker_hyperparameters_are_short_strings(task):
    hyperparameters = resolve_train_args(form(task, clip_grad_base_and_max="('norm', 10)"))["hyperparameters"]
    out = to_sagemaker_hyperparameters(hyperparameters)
    assert len(out) <= 100
    assert all(isinstance(v, str) and len(v) <= 256 for v in out.values())
    assert out["batch_size"] == str(hyperparameters["batch_size"])
    assert out["clip_grad_base_and_max"] == '["norm", 10.0]'
    assert out["aug_crop_prob_and_min_max"] == "[0.0, [0.0, 1.0]]"
    assert json.loads(out["step_lr_sizes"]) == hyperparameters["step_lr_sizes"]


def test_sagemaker_hyperparameters_skip_what_does_not_fit():
    many = {f"key_{i}": i for i in range(150)}
    many["key_3"] = "x" * 300
    out = to_sagemaker_hyperparameters(many)
    assert len(out) == 100
    assert "key_3" not in out
    assert to_sagemaker_hyperparameters({"a": True, "b": None, "c": "s"}, max_keys=2) == {
        "a": "true",
        "b": "null",
    }


def test_backbone_list_matches_the_spec():
    assert len(DETECTION_BACKBONES) == 18 and DETECTION_BACKBONES[0] == "resnet18"
    assert len(ALGORITHMS["classification"]) == 19
