"""The arguments of v1.5 `POST /api/v1.5.0/train`.

`ARGS` mirrors the spec's "Start a training job" table row by row, so a change in the spec is a
change in one row here. `resolve_train_args` turns a form (all strings) into the typed, fully
defaulted configuration that goes into job.json; every rejection names the argument.

Choices the spec leaves open (see DESIGN.md for the first two):
- `pretrained` (classification) and `backbone_pretrained` (detection, instance segmentation)
  default to True and, like the spec's `backbone_pretrained` row, cannot change on resume or
  fine-tune.
- A name no task knows is refused with the closest known name (`check_argument_names`); an
  argument of another task is accepted and reported (`ignored_arguments`); every argument the
  task knows is validated.
- `task`, `data_dir`, `algorithm` and `backbone` are required for a new job. With
  `resume_job_id_and_epoch` or `finetune_job_id_and_epoch` they may be omitted: every argument
  not given is inherited from the source job (not from the defaults); a given argument whose
  "Overwritable" column is False for that mode must equal the source job's value.
- instance_segmentation (mask_rcnn, an FPN model) also takes `backbone_pretrained`,
  `backbone_num_frozen_levels` and the RPN / sampling / NMS arguments of detection, with the
  defaults of detection's `fpn`; it has no `backbone` or `anchor_sizes` (fixed ResNet-50 FPN).
- A defaulted `step_lr_sizes` drops the steps beyond `num_epochs_to_finish` (they would never
  fire), so `num_epochs_to_finish=2` alone is accepted; an explicit one is checked strictly.
- Tuples are stored as lists (`[prob, [min, max]]`) so the configuration survives JSON as is.
"""

from __future__ import annotations

import copy
import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from contracts import argument_names
from contracts.errors import ArgumentError as ValidationError
from contracts.v15_literals import (
    is_number,
    parse_bool,
    parse_float,
    parse_int,
    parse_int_list,
    parse_optional_int_list,
    parse_sequence,
    parse_str,
    quote,
)

TASKS = ("classification", "detection", "instance_segmentation")
ALGORITHMS = {
    "classification": (
        "mobilenet_v2",
        "googlenet",
        "inception_v3",
        "resnet18",
        "resnet34",
        "resnet50",
        "resnet101",
        "efficientnet_b0",
        "efficientnet_b1",
        "efficientnet_b2",
        "efficientnet_b3",
        "efficientnet_b4",
        "efficientnet_b5",
        "efficientnet_b6",
        "efficientnet_b7",
        "resnest50",
        "resnest101",
        "resnest200",
        "resnest269",
    ),
    "detection": ("faster_rcnn", "fpn"),
    "instance_segmentation": ("mask_rcnn",),
}
DETECTION_BACKBONES = (
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
    "resnet152",
    "resnext50_32x4d",
    "resnext101_32x8d",
    "wide_resnet50_2",
    "wide_resnet101_2",
    "senet154",
    "se_resnext50_32x4d",
    "se_resnext101_32x4d",
    "nasnet_a_large",
    "pnasnet_5_large",
    "resnest50",
    "resnest101",
    "resnest200",
    "resnest269",
)
INF = math.inf
RESUME = "resume"
FINETUNE = "finetune"
_VERB = {RESUME: "resuming", FINETUNE: "fine-tuning"}
_SOURCE_ARGS = {RESUME: "resume_job_id_and_epoch", FINETUNE: "finetune_job_id_and_epoch"}
# Arguments that describe the job rather than the training run: returned beside the hyper-parameters.
_TOP_LEVEL = ("task", "data_dir", "resume_job_id_and_epoch", "finetune_job_id_and_epoch")
_JOB_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")
_MAX_PATH_LENGTH = 1024
_SAGEMAKER_MAX_KEYS = 100
_SAGEMAKER_MAX_LENGTH = 256

Validator = Callable[[str, Any], Any]
Default = Any  # a value, or a callable (task, algorithm) -> value


# ---------------------------------------------------------------- constraint kinds


def _fmt(number: float) -> str:
    if math.isinf(number):
        return "Inf" if number > 0 else "-Inf"
    return str(int(number)) if float(number).is_integer() else str(number)


@dataclass(frozen=True)
class Interval:
    """A range written the spec's way: `(0, 1]` is open at 0 and closed at 1."""

    low: float
    high: float
    low_closed: bool = True
    high_closed: bool = True

    def __contains__(self, value: float) -> bool:
        above = value >= self.low if self.low_closed else value > self.low
        below = value <= self.high if self.high_closed else value < self.high
        return above and below

    def __str__(self) -> str:
        left = "[" if self.low_closed else "("
        right = "]" if self.high_closed else ")"
        return f"{left}{_fmt(self.low)}, {_fmt(self.high)}{right}"


UNIT = Interval(0, 1)  # [0, 1]
UNIT_OPEN_LOW = Interval(0, 1, low_closed=False)  # (0, 1]
SIGNED_UNIT = Interval(-1, 1)  # [-1, 1]
POSITIVE = Interval(0, INF, low_closed=False)  # (0, Inf]
NON_NEGATIVE = Interval(0, INF)  # [0, Inf]
AT_LEAST_ONE = Interval(1, INF)  # [1, Inf]
LEVELS = Interval(0, 5)  # [0, 5]


def _reject(field: str, expected: str, raw: Any) -> ValidationError:
    return ValidationError(field, f"must be {expected}; got {quote(raw)}")


def integer(interval: Interval, *, or_minus_one: bool = False) -> Validator:
    """`int` with `Value: [a, b]`, or `Value: {(0, Inf], -1}` when `or_minus_one`."""
    expected = f"-1 or an integer in {interval}" if or_minus_one else f"an integer in {interval}"

    def validate(field: str, raw: Any) -> int:
        value = parse_int(field, raw, expected)
        if value in interval or (or_minus_one and value == -1):
            return value
        raise _reject(field, expected, raw)

    return validate


def number(interval: Interval) -> Validator:
    """`float` with `Value: (0, 1]` and the like."""
    expected = f"a number in {interval}"

    def validate(field: str, raw: Any) -> float:
        value = parse_float(field, raw, expected)
        if value in interval:
            return value
        raise _reject(field, expected, raw)

    return validate


def choice(values: tuple[str, ...]) -> Validator:
    """`str` with `Value: {a, b, c}`."""
    expected = "one of: " + ", ".join(values)

    def validate(field: str, raw: Any) -> str:
        value = raw.strip() if isinstance(raw, str) else raw
        if value in values:
            return value
        raise _reject(field, expected, raw)

    validate.choices = values  # type: ignore[attr-defined]  # named by a "required" error too
    return validate


def boolean() -> Validator:
    def validate(field: str, raw: Any) -> bool:
        return parse_bool(field, raw, "True or False")

    return validate


def path() -> Validator:
    """A data location; where it may point is the stage's allow-list's business, not this table's."""
    expected = f"a path or s3:// URI of at most {_MAX_PATH_LENGTH} characters"

    def validate(field: str, raw: Any) -> str:
        value = parse_str(field, raw, expected)
        if len(value) > _MAX_PATH_LENGTH or any(ord(char) < 32 for char in value):
            raise _reject(field, expected, raw)
        return value

    return validate


def int_list(count: Interval, element: Interval) -> Validator:
    """`List[int]` with `#Elements: [a, b]`; element bounds that depend on other arguments are
    checked after every argument is resolved."""
    if count.low == count.high:
        size = f"exactly {_fmt(count.low)}"
    elif math.isinf(count.high):
        size = f"at least {_fmt(count.low)}"
    else:
        size = f"{_fmt(count.low)} to {_fmt(count.high)}"
    expected = f"a list of {size} integers in {element} such as [6, 8]"

    def validate(field: str, raw: Any) -> list[int]:
        values = parse_int_list(field, raw, expected)
        if len(values) in count and all(value in element for value in values):
            return values
        raise _reject(field, expected, raw)

    return validate


def prob_and_pair(pair: Interval, *, integers: bool = False, ordered: bool = True) -> Validator:
    """`Tuple[float, Tuple[float, float]]`: `(prob, (min, max))` with prob in [0, 1], both pair
    values in `pair` and min <= max; with `integers`, `(prob, (width, height))`."""
    kind = "integers" if integers else "numbers"
    names = "(min, max)" if ordered else "(width, height)"
    order = ", min <= max" if ordered else ""
    example = "(224, 224)" if integers else f"({_fmt(pair.low)}, {_fmt(pair.high)})"
    expected = f"(prob, {names}) with prob in {UNIT} and {kind} in {pair}{order}, e.g. (0.5, {example})"

    def validate(field: str, raw: Any) -> list[Any]:
        outer = parse_sequence(field, raw, 2, expected)
        prob = outer[0]
        inner = outer[1] if isinstance(outer[1], (list, tuple)) and len(outer[1]) == 2 else None
        if not is_number(prob) or prob not in UNIT or inner is None:
            raise _reject(field, expected, raw)
        if integers:
            if not all(isinstance(v, int) and not isinstance(v, bool) for v in inner):
                raise _reject(field, expected, raw)
            low, high = int(inner[0]), int(inner[1])
        else:
            if not all(is_number(v) and not math.isnan(v) for v in inner):
                raise _reject(field, expected, raw)
            low, high = float(inner[0]), float(inner[1])
        if low not in pair or high not in pair or (ordered and low > high):
            raise _reject(field, expected, raw)
        return [float(prob), [low, high]]

    return validate


def clip_grad() -> Validator:
    """`Tuple[str, float]` or None: `('norm', 10)` clips by norm, `('value', 1)` by value."""
    expected = f"None or (base, max) with base one of: value, norm and max in {POSITIVE}, e.g. ('norm', 10)"

    def validate(field: str, raw: Any) -> list[Any] | None:
        if raw is None or (isinstance(raw, str) and raw.strip() in ("None", "")):
            return None
        base, limit = parse_sequence(field, raw, 2, expected)
        if (
            base not in ("value", "norm")
            or not is_number(limit)
            or math.isnan(limit)
            or limit not in POSITIVE
        ):
            raise _reject(field, expected, raw)
        return [base, float(limit)]

    return validate


def devices() -> Validator:
    """`Optional[List[int]]`: None = every device there is, empty = CPU only. The API does not
    know how many devices a job gets, so `[0, #Devices)` is checked only when the caller knows."""
    expected = "None, empty (CPU) or a list of distinct device indices >= 0 such as [0, 1]"

    def validate(field: str, raw: Any) -> list[int] | None:
        values = parse_optional_int_list(field, raw, expected)
        if values is not None and (any(v < 0 for v in values) or len(set(values)) != len(values)):
            raise _reject(field, expected, raw)
        return values

    return validate


def job_and_epoch() -> Validator:
    """`("<job id>", <epoch>)`: a job id (letters, digits, '-', '_') and an epoch >= 1."""
    expected = (
        'None or ("<job id>", <epoch >= 1>), e.g. ("20200106173410-49c73c67-8e0e-4061-a782-39b8b1cc8d8a", 2)'
    )

    def validate(field: str, raw: Any) -> tuple[str, int] | None:
        if raw is None or (isinstance(raw, str) and raw.strip() in ("None", "")):
            return None
        job_id, epoch = parse_sequence(field, raw, 2, expected)
        if not isinstance(job_id, str) or not _JOB_ID_RE.fullmatch(job_id):
            raise _reject(field, expected, raw)
        if not isinstance(epoch, int) or isinstance(epoch, bool) or epoch < 1:
            raise _reject(field, expected, raw)
        return job_id, epoch

    return validate


# ---------------------------------------------------------------- defaults


def by_task(classification: Any, detection: Any, instance_segmentation: Any) -> Default:
    """The spec's `task? classification: ... detection: ...` defaults."""
    table = {
        "classification": classification,
        "detection": detection,
        "instance_segmentation": instance_segmentation,
    }
    return lambda task, algorithm: copy.deepcopy(table[task])


def by_algorithm(**table: Any) -> Default:
    """The spec's `algorithm? faster_rcnn: ... fpn: ...` defaults."""
    return lambda task, algorithm: copy.deepcopy(table.get(algorithm))


# ---------------------------------------------------------------- the table


@dataclass(frozen=True)
class Arg:
    name: str
    type: str
    default: Default
    required: bool
    overwritable_resume: bool
    overwritable_finetune: bool
    validator: Validator
    tasks: frozenset[str] = frozenset(TASKS)

    def default_for(self, task: str, algorithm: str | None) -> Any:
        return self.default(task, algorithm) if callable(self.default) else copy.deepcopy(self.default)

    def overwritable(self, kind: str) -> bool:
        return self.overwritable_resume if kind == RESUME else self.overwritable_finetune


_CLS = frozenset({"classification"})
_DET = frozenset({"detection"})
_INS = frozenset({"instance_segmentation"})
_DET_INS = _DET | _INS
_PROB = number(UNIT)


def _aug(name: str, default: list[Any], pair: Interval) -> Arg:
    return Arg(name, "Tuple[float, Tuple[float, float]]", default, False, True, True, prob_and_pair(pair))


# fmt: off
ARGS: tuple[Arg, ...] = (
    # name, type, default, required, overwritable resume, overwritable fine-tune, validator, tasks
    Arg("task", "str", None, True, False, False, choice(TASKS)),
    Arg("data_dir", "str", None, True, False, True, path()),
    Arg("resume_job_id_and_epoch", "str", None, False, True, False, job_and_epoch()),
    Arg("finetune_job_id_and_epoch", "str", None, False, False, True, job_and_epoch()),
    Arg("num_workers", "int", 2, False, True, True, integer(NON_NEGATIVE)),
    Arg("visible_devices", "Optional[List[int]]", None, False, True, True, devices()),
    Arg("needs_freeze_bn", "bool", by_task(False, True, True), False, True, True, boolean()),
    Arg("image_resized_width", "int", by_task(224, -1, -1), False, True, True, integer(POSITIVE, or_minus_one=True)),
    Arg("image_resized_height", "int", by_task(224, -1, -1), False, True, True, integer(POSITIVE, or_minus_one=True)),
    Arg("image_min_side", "int", by_task(-1, 600, 800), False, True, True, integer(POSITIVE, or_minus_one=True)),
    Arg("image_max_side", "int", by_task(-1, 1000, 1333), False, True, True, integer(POSITIVE, or_minus_one=True)),
    Arg("aug_strategy", "str", "all", False, True, True, choice(("all", "one", "some"))),
    Arg("aug_hflip_prob", "float", 0.5, False, True, True, _PROB),
    Arg("aug_vflip_prob", "float", 0.0, False, True, True, _PROB),
    Arg("aug_rotate90_prob", "float", 0.0, False, True, True, _PROB),
    _aug("aug_crop_prob_and_min_max", [0.0, [0.0, 1.0]], UNIT),
    _aug("aug_zoom_prob_and_min_max", [0.0, [-1.0, 1.0]], SIGNED_UNIT),
    _aug("aug_scale_prob_and_min_max", [0.0, [-1.0, 1.0]], SIGNED_UNIT),
    _aug("aug_translate_prob_and_min_max", [0.0, [-1.0, 1.0]], SIGNED_UNIT),
    _aug("aug_rotate_prob_and_min_max", [0.0, [-1.0, 1.0]], SIGNED_UNIT),
    _aug("aug_shear_prob_and_min_max", [0.0, [-1.0, 1.0]], SIGNED_UNIT),
    _aug("aug_blur_prob_and_min_max", [0.0, [0.0, 1.0]], UNIT),
    _aug("aug_sharpen_prob_and_min_max", [0.0, [0.0, 1.0]], UNIT),
    _aug("aug_color_prob_and_min_max", [0.0, [-1.0, 1.0]], SIGNED_UNIT),
    _aug("aug_brightness_prob_and_min_max", [0.0, [-1.0, 1.0]], SIGNED_UNIT),
    _aug("aug_grayscale_prob_and_min_max", [0.0, [0.0, 1.0]], UNIT),
    _aug("aug_contrast_prob_and_min_max", [0.0, [-1.0, 1.0]], SIGNED_UNIT),
    _aug("aug_noise_prob_and_min_max", [0.0, [0.0, 1.0]], UNIT),
    Arg("aug_resized_crop_prob_and_width_height", "Tuple[float, Tuple[int, int]]", [0.0, [224, 224]], False, True, True, prob_and_pair(POSITIVE, integers=True, ordered=False)),
    Arg("batch_size", "int", by_task(8, 2, 1), False, True, True, integer(AT_LEAST_ONE)),
    Arg("learning_rate", "float", by_task(0.008, 0.002, 0.001), False, False, True, number(UNIT_OPEN_LOW)),
    Arg("momentum", "float", 0.9, False, False, True, number(UNIT_OPEN_LOW)),
    Arg("weight_decay", "float", 0.0005, False, False, True, number(UNIT_OPEN_LOW)),
    Arg("clip_grad_base_and_max", "Tuple[str, float]", None, False, True, True, clip_grad()),
    # Elements also in [0, num_epochs_to_finish]: checked once both are known.
    Arg("step_lr_sizes", "List[int]", by_task([6, 8], [10, 14], [20, 28]), False, True, True, int_list(Interval(0, 5), NON_NEGATIVE)),
    Arg("step_lr_gamma", "float", 0.1, False, True, True, number(UNIT)),
    Arg("num_batches_to_display", "int", 20, False, True, True, integer(AT_LEAST_ONE)),
    # Also <= num_epochs_to_finish: checked once both are known.
    Arg("num_epochs_to_validate", "int", 1, False, True, True, integer(AT_LEAST_ONE)),
    Arg("num_epochs_to_finish", "int", by_task(10, 16, 32), False, True, True, integer(AT_LEAST_ONE)),
    Arg("max_num_checkpoints", "int", 5, False, True, True, integer(AT_LEAST_ONE)),
    # For classification task
    Arg("algorithm", "str", None, True, False, False, choice(ALGORITHMS["classification"]), _CLS),
    Arg("pretrained", "bool", True, False, False, False, boolean(), _CLS),
    Arg("num_frozen_levels", "int", 2, False, True, True, integer(LEVELS), _CLS),
    Arg("eval_center_crop_ratio", "float", 1.0, False, True, True, number(UNIT_OPEN_LOW), _CLS),
    # For detection task
    Arg("algorithm", "str", None, True, False, False, choice(ALGORITHMS["detection"]), _DET),
    Arg("backbone", "str", None, True, False, False, choice(DETECTION_BACKBONES), _DET),
    # Elements also in [2, image_max_side] when image_max_side != -1: checked once both are known.
    Arg("anchor_sizes", "List[int]", by_algorithm(faster_rcnn=[128, 256, 512], fpn=[128]), False, False, False, int_list(Interval(1, 5), Interval(2, INF)), _DET),
    # For instance segmentation task (the spec lists only `algorithm`; the rest below is shared
    # with detection, mask_rcnn taking fpn's defaults -- see the module docstring).
    Arg("algorithm", "str", None, True, False, False, choice(ALGORITHMS["instance_segmentation"]), _INS),
    Arg("backbone_pretrained", "bool", True, False, False, False, boolean(), _DET_INS),
    Arg("backbone_num_frozen_levels", "int", 2, False, True, True, integer(LEVELS), _DET_INS),
    Arg("train_rpn_pre_nms_top_n", "int", by_algorithm(faster_rcnn=12000, fpn=2000, mask_rcnn=2000), False, True, True, integer(AT_LEAST_ONE), _DET_INS),
    Arg("train_rpn_post_nms_top_n", "int", by_algorithm(faster_rcnn=2000, fpn=2000, mask_rcnn=2000), False, True, True, integer(AT_LEAST_ONE), _DET_INS),
    Arg("eval_rpn_pre_nms_top_n", "int", by_algorithm(faster_rcnn=6000, fpn=1000, mask_rcnn=1000), False, True, True, integer(AT_LEAST_ONE), _DET_INS),
    Arg("eval_rpn_post_nms_top_n", "int", by_algorithm(faster_rcnn=1000, fpn=1000, mask_rcnn=1000), False, True, True, integer(AT_LEAST_ONE), _DET_INS),
    Arg("num_anchor_samples_per_batch", "int", 256, False, True, True, integer(AT_LEAST_ONE), _DET_INS),
    Arg("num_proposal_samples_per_batch", "int", 128, False, True, True, integer(AT_LEAST_ONE), _DET_INS),
    Arg("num_detections_per_image", "int", 100, False, True, True, integer(AT_LEAST_ONE), _DET_INS),
    Arg("proposal_nms_threshold", "float", 0.7, False, True, True, number(UNIT), _DET_INS),
    Arg("detection_nms_threshold", "float", 0.5, False, True, True, number(UNIT), _DET_INS),
)
# fmt: on

_COMMON_VIEW = (
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
)
# The keys (and their order) of the spec's "Query hyper-parameters" response per task.
VIEW_KEYS = {
    "classification": _COMMON_VIEW + ("pretrained", "num_frozen_levels", "eval_center_crop_ratio"),
    "detection": _COMMON_VIEW
    + (
        "anchor_sizes",
        "backbone_pretrained",
        "backbone_num_frozen_levels",
        "proposal_nms_threshold",
        "detection_nms_threshold",
    ),
    "instance_segmentation": _COMMON_VIEW,
}


NAMES = tuple(dict.fromkeys(arg.name for arg in ARGS))  # every task's arguments, in the spec's order


def check_argument_names(form: Mapping[str, Any], extra: tuple[str, ...] = ()) -> None:
    """A 400 naming every field of `form` that is neither an argument of some task nor one of
    the route's `extra` fields, each with the closest known name."""
    argument_names.check_known(form, (*NAMES, *extra))


def ignored_arguments(task: str, form: Mapping[str, Any]) -> list[str]:
    """The arguments of `form` that belong to another task than `task`: accepted, unused."""
    own = {arg.name for arg in arguments_for(task)}
    return [name for name in form if name in NAMES and name not in own]


def arguments_for(task: str) -> list[Arg]:
    """The rows that apply to `task`, in the spec's order."""
    return [arg for arg in ARGS if task in arg.tasks]


def argument(task: str, name: str) -> Arg:
    for arg in ARGS:
        if arg.name == name and task in arg.tasks:
            return arg
    raise KeyError(f"{name} is not an argument of {task}")


# ---------------------------------------------------------------- resolution


def parse_source(form: Mapping[str, Any]) -> tuple[str, str, int] | None:
    """`(kind, job_id, epoch)` of the job to resume or fine-tune from, or None for a new job.
    The caller looks the job up and passes its record to `resolve_train_args`."""
    found = []
    for kind, name in _SOURCE_ARGS.items():
        if name in form:
            parsed = _argument_any_task(name).validator(name, form[name])
            if parsed is not None:
                found.append((kind, *parsed))
    if len(found) > 1:
        raise ValidationError(
            "finetune_job_id_and_epoch",
            "cannot be given together with 'resume_job_id_and_epoch': resume a job or fine-tune from it, not both",
        )
    return found[0] if found else None


DEFAULTED = "defaulted_arguments"


def defaulted(hyperparameters: Mapping[str, Any]) -> frozenset[str]:
    """The arguments the user left to the spec's default (a resumed job inherits the source's
    list with its values). The trainer adapts some of those defaults to the machine
    (`num_workers` from the CPU count); a value the user sent, even the default's, is kept."""
    return frozenset(hyperparameters.get(DEFAULTED) or ())


def resolve_train_args(
    form: Mapping[str, Any], source_job: Mapping[str, Any] | None = None, *, device_count: int | None = None
) -> dict[str, Any]:
    """Validates a `POST /train` form and returns
    `{"task", "data_dir", "resume", "finetune", "hyperparameters"}`, where `resume`/`finetune`
    are None or `{"job_id", "epoch"}` and `hyperparameters` holds every argument of the task
    (typed, defaults or the source job's values applied) in the spec's order.

    `source_job` (`{"job_id", "task", "data_dir", "hyperparameters"}`) is required exactly
    when the form names one, i.e. when `parse_source(form)` is not None. `device_count`, when
    known, bounds `visible_devices` to `[0, device_count)`."""
    source = parse_source(form)
    if (source is None) != (source_job is None):
        raise ValueError("source_job must be given exactly when the form resumes or fine-tunes a job")
    kind = source[0] if source else None
    inherited: dict[str, Any] = {}
    if source is not None:
        if source_job.get("job_id") not in (None, source[1]):
            raise ValueError(f"source_job is {source_job.get('job_id')!r}, the form names {source[1]!r}")
        inherited = dict(source_job.get("hyperparameters") or {})
        for name in ("task", "data_dir"):
            if source_job.get(name) is not None:
                inherited[name] = source_job[name]

    origin: dict[str, str] = {}
    task = _resolve(_argument_any_task("task"), form, None, None, kind, inherited, origin)
    algorithm = _resolve(argument(task, "algorithm"), form, task, None, kind, inherited, origin)
    values: dict[str, Any] = {"task": task, "algorithm": algorithm}
    for arg in arguments_for(task):
        if arg.name not in values and arg.name not in _SOURCE_ARGS.values():
            values[arg.name] = _resolve(arg, form, task, algorithm, kind, inherited, origin)
    _check_cross_fields(task, values, origin, device_count)

    hyperparameters = {
        arg.name: values[arg.name] for arg in arguments_for(task) if arg.name not in _TOP_LEVEL
    }
    source_defaulted = set(inherited.get(DEFAULTED) or ())
    hyperparameters[DEFAULTED] = [
        name
        for name in hyperparameters
        if origin.get(name) == "default" or (origin.get(name) == "inherited" and name in source_defaulted)
    ]
    where = {"job_id": source[1], "epoch": source[2]} if source else None
    return {
        "task": task,
        "data_dir": values["data_dir"],
        "resume": where if kind == RESUME else None,
        "finetune": where if kind == FINETUNE else None,
        "hyperparameters": hyperparameters,
    }


def _argument_any_task(name: str) -> Arg:
    return argument(TASKS[0], name)


def _resolve(
    arg: Arg,
    form: Mapping[str, Any],
    task: str | None,
    algorithm: str | None,
    kind: str | None,
    inherited: Mapping[str, Any],
    origin: dict[str, str],
) -> Any:
    """One argument: the form's value, else the source job's, else the default."""
    name = arg.name
    if name in form:
        value = arg.validator(name, form[name])
        origin[name] = "given"
        if kind and not arg.overwritable(kind) and inherited.get(name) is not None:
            previous = arg.validator(name, inherited[name])
            if value != previous:
                raise ValidationError(
                    name,
                    f"cannot be changed when {_VERB[kind]} a job (the source job has "
                    f"{quote(_show(previous))}); got {quote(form[name])}",
                )
        return value
    if kind and name in inherited:
        origin[name] = "inherited"
        return arg.validator(name, inherited[name])
    if arg.required:
        raise ValidationError(name, "required" + _allowed(arg))
    origin[name] = "default"
    return arg.default_for(task, algorithm)


def _allowed(arg: Arg) -> str:
    """`; one of: a, b` for a required choice (`task`, `algorithm`, `backbone`): the error says what to send."""
    values = getattr(arg.validator, "choices", None)
    return "; one of: " + ", ".join(values) if values else ""


def _show(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _blame(first: str, second: str, origin: Mapping[str, str]) -> str:
    """Which of two conflicting arguments the message names: the one the user gave, `first`
    when the user gave both or neither."""
    if origin.get(second) == "given" and origin.get(first) != "given":
        return second
    return first


def _check_cross_fields(
    task: str, values: dict[str, Any], origin: Mapping[str, str], device_count: int | None
) -> None:
    min_side, max_side = values["image_min_side"], values["image_max_side"]
    if min_side != -1 and max_side != -1 and min_side > max_side:
        if _blame("image_min_side", "image_max_side", origin) == "image_max_side":
            raise _reject("image_max_side", f"-1 or an integer in [image_min_side={min_side}, Inf]", max_side)
        raise _reject("image_min_side", f"-1 or an integer in (0, image_max_side={max_side}]", min_side)

    finish = values["num_epochs_to_finish"]
    if values["num_epochs_to_validate"] > finish:
        if _blame("num_epochs_to_validate", "num_epochs_to_finish", origin) == "num_epochs_to_finish":
            raise _reject(
                "num_epochs_to_finish",
                f"an integer in [num_epochs_to_validate={values['num_epochs_to_validate']}, Inf]",
                finish,
            )
        raise _reject(
            "num_epochs_to_validate",
            f"an integer in [1, num_epochs_to_finish={finish}]",
            values["num_epochs_to_validate"],
        )

    steps = values["step_lr_sizes"]
    if origin.get("step_lr_sizes") == "default":
        values["step_lr_sizes"] = [step for step in steps if step <= finish]
    elif any(step > finish for step in steps):
        if _blame("step_lr_sizes", "num_epochs_to_finish", origin) == "num_epochs_to_finish":
            raise _reject(
                "num_epochs_to_finish",
                f"an integer in [{max(steps)}, Inf] (step_lr_sizes is {steps})",
                finish,
            )
        raise _reject(
            "step_lr_sizes", f"a list of 0 to 5 integers in [0, num_epochs_to_finish={finish}]", steps
        )

    anchors = values.get("anchor_sizes")
    if anchors is not None and max_side != -1 and any(size > max_side for size in anchors):
        if _blame("anchor_sizes", "image_max_side", origin) == "image_max_side":
            raise _reject(
                "image_max_side",
                f"-1 or an integer >= every anchor size (anchor_sizes is {anchors})",
                max_side,
            )
        raise _reject("anchor_sizes", f"a list of 1 to 5 integers in [2, image_max_side={max_side}]", anchors)

    chosen = values["visible_devices"]
    if device_count is not None and chosen is not None and any(index >= device_count for index in chosen):
        raise _reject(
            "visible_devices",
            f"None, empty (CPU) or a list of distinct device indices in [0, {device_count})",
            chosen,
        )


# ---------------------------------------------------------------- views


def hyperparameters_view(task: str, hyperparameters: Mapping[str, Any]) -> dict[str, Any]:
    """The spec's "Query hyper-parameters" body for `task`: exactly its keys, in its order. A
    key an older job lacks shows the current default."""
    view = {}
    for name in VIEW_KEYS[task]:
        if name in hyperparameters:
            view[name] = hyperparameters[name]
        else:
            view[name] = argument(task, name).default_for(task, hyperparameters.get("algorithm"))
    return view


def to_sagemaker_hyperparameters(
    hyperparameters: Mapping[str, Any], max_keys: int = _SAGEMAKER_MAX_KEYS
) -> dict[str, str]:
    """SageMaker takes at most 100 string hyper-parameters of at most 256 characters; what does
    not fit is skipped here because the full configuration travels in job.json. Strings stay
    as they are; everything else is JSON (`[6, 8]`, `true`, `null`)."""
    out: dict[str, str] = {}
    for name, value in hyperparameters.items():
        if len(out) >= max_keys:
            break
        text = value if isinstance(value, str) else json.dumps(value)
        if len(name) <= _SAGEMAKER_MAX_LENGTH and len(text) <= _SAGEMAKER_MAX_LENGTH:
            out[name] = text
    return out


def resolve_job_hyperparameters(task: str, hyperparameters: Mapping[str, Any]) -> dict[str, Any]:
    """The trainer's view of job.json's arguments, by the API's own rules.

    The API writes fully resolved arguments (`resolve_train_args`); the trainer re-checks
    them with the same validators and cross-field rules, and a job.json written by hand or
    by an older API gets its missing arguments from the same defaults, never a second copy.
    Raises ArgumentError naming the argument.
    """
    if task not in TASKS:
        raise ValidationError("task", f"must be one of {{{', '.join(TASKS)}}}; got {quote(str(task))}")
    given = dict(hyperparameters)
    if given.get("task", task) != task:
        raise ValidationError("task", f"is {quote(str(given['task']))} but the job's task is {quote(task)}")
    algorithm = given.get("algorithm")
    values: dict[str, Any] = dict(given)
    origin: dict[str, str] = {}
    listed = given.get(DEFAULTED) or []
    if not isinstance(listed, list) or not all(isinstance(name, str) for name in listed):
        raise ValidationError(DEFAULTED, f"must be a list of argument names; got {quote(_show(listed))}")
    for arg in arguments_for(task):
        if arg.name in _TOP_LEVEL or arg.name in _SOURCE_ARGS.values():
            continue
        if arg.name in given:
            values[arg.name] = arg.validator(arg.name, given[arg.name])
            origin[arg.name] = "default" if arg.name in listed else "given"
        elif arg.required:
            raise ValidationError(arg.name, "required")
        else:
            values[arg.name] = arg.default_for(task, algorithm)
            origin[arg.name] = "default"
    _check_cross_fields(task, values, origin, None)
    values[DEFAULTED] = [name for name in values if origin.get(name) == "default"]
    return values


def resolve_preview_args(task: str, form: Mapping[str, Any]) -> dict[str, Any]:
    """The aug preview's arguments: the given ones checked by their rows, the defaults for the
    rest, so the preview runs the training pipeline exactly as a job with them would."""
    values: dict[str, Any] = {}
    origin: dict[str, str] = {}
    for arg in arguments_for(task):
        if arg.name in _TOP_LEVEL or arg.name in _SOURCE_ARGS.values():
            continue
        if arg.name in form:
            values[arg.name] = arg.validator(arg.name, form[arg.name])
            origin[arg.name] = "given"
        elif not arg.required:
            values[arg.name] = arg.default_for(task, form.get("algorithm"))
            origin[arg.name] = "default"
    _check_cross_fields(task, values, origin, None)
    return values
